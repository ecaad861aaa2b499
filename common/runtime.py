"""The runtime every script of the chapter shares, kept small so each script stays readable on its own.

- `RunConfig`: the fields every hyperparameter dataclass has (seed, device, run directory, --show, threads).
- `parse_config(Config)`: one `--field-name` option per dataclass field (also `--field_name`, the field's own
  spelling; no abbreviations); the help text is the field's comment.
- `setup(config)`: resolve the device ("auto" | "cpu" | "cuda" | "cuda:N"), set torch's threads, seed everything.
- `tune_process()`: the process-wide CPU tuning each script's `main` calls visibly (denormals, glibc's malloc).
- `REPO`: the repository folder; default outputs (runs/, checkpoints/, data/) live there, wherever you run from.
- `RunDir`: config.json, metrics.csv, PNG plots, summary.json and checkpoints, each written atomically
  (a temporary file, then a rename), so Ctrl+C never leaves a half-written file.
- `save_checkpoint` / `load_checkpoint`: atomic save, `torch.load(..., weights_only=True)`, NaN refused;
  `publish_checkpoint`: the shared copy in checkpoints/ for the next script, the previous one kept, with a
  provenance file beside it.
- `UsageError` and `cli(main, Config)`: bad input ends with one line naming the problem and the fix, exit 2;
  a diverged run (`Diverged`) one line and exit 1; Ctrl+C, SIGTERM and SIGHUP one line and exit 130, 143, 129,
  after the script has written what it learnt so far (`RunDir.stop`, `RunDir.finish`).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import dataclasses
import errno
import io
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.options import REPO, build_parser, description_of, field_comments  # noqa: F401 (the command line)

import numpy as np
import torch


class UsageError(Exception):
    """Bad input from the user: the message names the problem and the fix, in one line."""


class Diverged(Exception):
    """Training produced NaN or infinity: the message says where, and what to change."""


class Interrupted(KeyboardInterrupt):
    """Ctrl+C (SIGINT), SIGTERM or SIGHUP: the script saves what it learnt so far in its run directory, then stops."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def require(condition: bool, message: str) -> None:
    """Raise a UsageError with `message` unless `condition` holds (for validating hyperparameters)."""
    if not condition:
        raise UsageError(message)


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_numbers(config: Any) -> None:
    """What holds for every number of every script: floats are finite, integers fit in 32 bits (a seed, a size or a
    count beyond that is a typo, and would fail deep inside NumPy or torch)."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, bool):
            continue
        if isinstance(value, float):
            require(math.isfinite(value), f"{option(field.name)} must be a finite number, got {value}")
        elif isinstance(value, int):
            require(abs(value) <= 2**31 - 1, f"{option(field.name)} {value} is out of range (at most 2147483647)")


def check_ranges(config: Any, positive=(), non_negative=(), at_least_1=(), fraction=()) -> None:
    """The usual ranges of hyperparameters, by field name: > 0, >= 0, >= 1, and within [0, 1]."""
    rules = [
        (positive, lambda v: v > 0, "must be positive"),
        (non_negative, lambda v: v >= 0, "must be >= 0"),
        (at_least_1, lambda v: v >= 1, "must be at least 1"),
        (fraction, lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    ]
    for names, holds, what in rules:
        for name in names:
            value = getattr(config, name)
            require(holds(value), f"{option(name)} {what}, got {value}")


def require_memory(nbytes: float, what: str) -> None:
    """Refuse settings whose largest allocation (`nbytes`, a rough upper bound) cannot fit in the memory free now."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that tells
        return
    require(
        nbytes < 0.8 * free,
        f"{what} needs about {nbytes / 2**30:,.1f} GB and {free / 2**30:,.1f} GB are free: make it smaller",
    )


def check_finite(values: dict[str, float], where: str, fix: str) -> None:
    """Stop the run (`Diverged`) when a logged loss is NaN or infinite."""
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise Diverged(f"{', '.join(bad)} became {values[bad[0]]} at {where}: the run diverged; {fix}")


def finite_state(state_dict: dict) -> bool:
    """True when every floating-point tensor of a state_dict is finite."""
    return all(
        bool(torch.isfinite(v).all()) for v in state_dict.values() if torch.is_tensor(v) and v.is_floating_point()
    )


# ----------------------------------------------------------------------------------------------------------
# Hyperparameters and the command line
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunConfig:
    """Fields shared by every script's hyperparameter dataclass (the scripts' own fields follow them)."""

    seed: int = 1  # random seed: the same seed on the same kind of CPU gives the same numbers (docs/speed.md)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    run_dir: str = ""  # where outputs go; empty: runs/<script>/<date-time> in this repository
    show: bool = False  # also open the plots in a window at the end
    threads: int = 0  # CPU threads for torch; 0 leaves torch's default
    tune_process: bool = True  # flush denormal floats and keep freed memory in glibc's heap (speed; process-wide)
    overwrite: bool = False  # let --run-dir name a folder that holds an earlier run: it is emptied first

    def __post_init__(self) -> None:
        check_numbers(self)
        require(
            isinstance(self.seed, int) and self.seed >= 0, f"--seed must be a non-negative integer, got {self.seed}"
        )
        check_device_spec(self.device)
        cores = os.cpu_count() or 1
        require(
            0 <= self.threads <= 4 * cores,
            f"--threads must be 0 (torch's default) to {4 * cores} ({cores} cores here), got {self.threads}",
        )


def repo_path(value: str, default: str) -> Path:
    """A path option: as given (relative to the current folder), or `default` inside the repository when empty."""
    return Path(value) if value else REPO / default


def parse_config(
    config_cls: type, argv: list[str] | None = None, description: str | None = None, prog: str | None = None
):
    """Build `config_cls` from the command line; values out of range raise UsageError (see `cli`)."""
    args = build_parser(config_cls, description, prog).parse_args(argv)
    return config_cls(**vars(args))


def cli(main: Callable[[Any], dict], config_cls: type, doc: str | None = None, argv: list[str] | None = None) -> dict:
    """Run `main(config)` from the command line. Bad input: one line and exit status 2, nothing written. A diverged
    run: one line and exit 1. Ctrl+C, SIGTERM, SIGHUP: one line and exit 130, 143, 129, once the script has saved
    what it learnt so far in its run directory. A full or read-only disk: one line naming the file, exit 1."""
    prog = Path(sys.argv[0]).name if argv is None else "error"
    description = description_of(doc)
    catch_signals()
    try:
        config = parse_config(config_cls, argv, description, prog)
        return main(config)
    except UsageError as error:
        RunDir.discard_unused()
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except Diverged as error:
        where = f" The run so far is in {RunDir.current.path}/." if RunDir.current else ""
        print(f"{prog}: stopped: {error}.{where} Shared checkpoints were left as they were.", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as error:
        signum = getattr(error, "signum", signal.SIGINT)
        run = RunDir.current
        kept = "nothing was written" if run is None else f"the run so far is in {run.path}/"
        if run is not None and run.stopped is not None:
            kept += " (summary.json marked interrupted)"
        print(
            f"\n{prog}: interrupted ({signal.Signals(signum).name}): {kept}; shared checkpoints untouched.",
            file=sys.stderr,
        )
        sys.exit(128 + signum)
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        print(
            f"{prog}: error: cannot write {error.filename}: {error.strerror}; free some space or choose another "
            f"folder (--run-dir, --checkpoint-dir)",
            file=sys.stderr,
        )
        sys.exit(1)
    except MemoryError:
        print(f"{prog}: error: out of memory: use smaller sizes (buffer, batch, environments)", file=sys.stderr)
        sys.exit(1)


DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.ENAMETOOLONG, errno.EDQUOT, errno.EACCES, errno.ENOTDIR, errno.EISDIR}


_HELD = {"depth": 0, "signum": None}  # inside `signals_held`: how deep, and the signal that arrived meanwhile


def catch_signals() -> None:
    """SIGTERM and SIGHUP stop a run the way Ctrl+C does (`Interrupted`). SIGINT too, unless this process was
    started with it ignored (a background job): then it stays ignored."""

    def interrupt(signum, frame):
        if _HELD["depth"]:  # in the middle of writing a file: stop as soon as it is written
            _HELD["signum"] = _HELD["signum"] or signum
            return
        raise Interrupted(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, interrupt)


# ----------------------------------------------------------------------------------------------------------
# Device and seeds
# ----------------------------------------------------------------------------------------------------------


def check_device_spec(spec: str) -> None:
    require(
        isinstance(spec, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", spec) is not None,
        f"--device {spec!r} is not a device: use auto, cpu, cuda or cuda:N",
    )


def resolve_device(spec: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for CUDA without one is a UsageError."""
    check_device_spec(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {spec}: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto"
        )
    device = torch.device(spec)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise UsageError(f"--device {spec}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


BF16_CHOICES = ("auto", "on", "off")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively: CUDA compute capability 8.0 or more, or a CPU that torch
    reports with AVX-512 BF16 or AMX. Elsewhere bfloat16 is emulated, and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(check() for check in checks if check is not None)
    return False


def resolve_bf16(choice: str, device: torch.device) -> bool:
    """--bf16 auto|on|off: auto is on where the device runs bfloat16 natively (`native_bf16`)."""
    return choice == "on" or (choice == "auto" and native_bf16(device))


def setup(config: RunConfig) -> tuple[torch.device, np.random.Generator]:
    """What every script does first: resolve the device, set torch's CPU threads, seed everything, choose the
    plotting backend. Returns the device and a NumPy generator for the script's own randomness."""
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    use_display(config.show)
    return device, seed_everything(config.seed)


def tune_process() -> None:
    """Process-wide CPU settings that make training faster and change no result worth a digit (docs/speed.md):

    - Denormal floats (below 1e-38) make CPU arithmetic many times slower; once a loss nears 0 (MAML's
      second-order terms, a solved task) they appear in the gradients. Flushing them to 0 costs no accuracy.
    - glibc's malloc keeps freed blocks for reuse (`keep_freed_memory`) instead of returning them to the system.

    Every script's `main` calls it unless `tune_process=False` (`--no-tune-process`), e.g. from a notebook that
    wants its interpreter left as it is."""
    for dtype in (np.float16, np.float32, np.float64):
        np.finfo(dtype)  # cached now: NumPy warns if it first measures its float types with denormals flushed
    torch.set_flush_denormal(True)
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed blocks of up to 32 MB instead of giving them back to the system.

    By default a block over 128 KB (an activation of a convolution over a batch of frames) is mapped fresh
    from the system and unmapped when freed, so every forward pass pays page faults on new, zeroed memory
    (measured in docs/speed.md). Elsewhere than glibc (macOS, Windows, musl), nothing to do.
    True when glibc took the settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mmap = mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's largest allowed value
    trim = mallopt(M_TRIM_THRESHOLD, 512 << 20)  # free memory kept at the heap's top before it is returned
    return mmap == 1 and trim == 1


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for the script's own randomness."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------------------
# Files: atomic writes, checkpoints, the run directory
# ----------------------------------------------------------------------------------------------------------


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def signals_held():
    """Ctrl+C, SIGTERM or SIGHUP arriving inside this block stops the run when the block ends, not in its middle."""
    _HELD["depth"] += 1
    try:
        yield
    finally:
        _HELD["depth"] -= 1
        if not _HELD["depth"] and _HELD["signum"] is not None:
            signum, _HELD["signum"] = _HELD["signum"], None
            raise Interrupted(signum)


def atomic_write(path: str | os.PathLike, write: Callable[[io.IOBase], None], binary: bool = False) -> Path:
    """Write through `write(file)` into a temporary file beside `path`, then rename it over `path`: an error, a full
    disk or a signal leaves the old file (or none) and no temporary file. A failed write names `path`. A signal
    that arrives meanwhile is held until the file is in place: raised right after the temporary file was created,
    before the clean-up could know its name, it would leave that file behind."""
    with signals_held():
        return _atomic_write(Path(path), write, binary)


def _atomic_write(path: Path, write: Callable[[io.IOBase], None], binary: bool) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": "", "encoding": "utf-8"})) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    return path


def save_checkpoint(state_dict: dict, path: str | os.PathLike) -> Path:
    """Save a state_dict atomically (never a half-written checkpoint, even on Ctrl+C)."""
    cpu_state = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state_dict.items()}
    return atomic_write(path, lambda f: torch.save(cpu_state, f), binary=True)


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module | None = None, hint: str = "") -> dict:
    """Load a state_dict with `weights_only=True`; a missing, unreadable, incompatible or non-finite file is a
    UsageError. Prints where the checkpoint comes from when its provenance file is beside it."""
    path = Path(path)
    fix = f" {hint}" if hint else ""
    if path.is_dir():
        raise UsageError(f"checkpoint {path} is a folder, not a checkpoint file.{fix}")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} not found.{fix}")
    try:
        with warnings.catch_warnings():  # the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise UsageError(
            f"checkpoint {path} cannot be read as a torch state_dict ({type(error).__name__}).{fix}"
        ) from None
    if not isinstance(state, dict):
        raise UsageError(f"checkpoint {path} holds a {type(state).__name__}, not a state_dict.{fix}")
    if not finite_state(state):
        raise UsageError(f"checkpoint {path} holds NaN or infinite values (a run that diverged).{fix}")
    if model is not None:
        load_state(model, state, path, hint)
    origin = read_provenance(path)
    if origin:
        print(f"loaded {path}: {describe(origin)}", flush=True)
    return state


def load_state(model: torch.nn.Module, state: dict, path: str | os.PathLike, hint: str = "") -> None:
    """`model.load_state_dict(state)`; a state_dict that does not fit (names, shapes) is a UsageError."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise UsageError(f"checkpoint {path} does not fit this model ({detail}).{' ' + hint if hint else ''}") from None


def provenance_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_provenance(path: str | os.PathLike) -> dict:
    try:
        return json.loads(provenance_path(path).read_text())
    except (OSError, ValueError):
        return {}


def describe(origin: dict) -> str:
    """One line from a provenance record: which script made the checkpoint, how long it trained, what it reached."""
    parts = [origin.get("script", "?"), origin.get("trained", ""), origin.get("result", ""), origin.get("date", "")]
    return ", ".join(part for part in parts if part)


def publish_checkpoint(state_dict: dict, path: str | os.PathLike, **provenance: Any) -> Path:
    """Save the shared copy a later script loads (checkpoints/<name>), at the end of a healthy run only. The copy it
    replaces is kept as <name>.previous; <name>.json records `provenance` (script, trained, result) and the date;
    the screen says what replaced what. A model with NaN or infinite values is refused (`Diverged`)."""
    path = Path(path)
    if not finite_state(state_dict):
        raise Diverged(f"the trained model holds NaN or infinite values, so {path} was not replaced")
    origin = {**{k: str(v) for k, v in provenance.items()}, "date": time.strftime("%Y-%m-%d %H:%M")}
    new = save_checkpoint(state_dict, path.with_name(f".{path.name}.new"))
    previous = path.with_name(path.name + ".previous")
    if path.exists():
        before = read_provenance(path)
        os.replace(path, previous)
        if provenance_path(path).exists():
            os.replace(provenance_path(path), provenance_path(previous))
        print(
            f"{path}: replaced by this run's; the one before ({describe(before) or 'no record'}) is kept as "
            f"{previous.name}",
            flush=True,
        )
    os.replace(new, path)
    atomic_write(provenance_path(path), lambda f: json.dump(origin, f, indent=2))
    return path


def writable_folder(path: Path, what: str) -> Path:
    """Make sure `path` is a folder this run can write in (created if needed), before any training: otherwise
    bad input, one line."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file: give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise UsageError(f"{what} {path} is not writable ({error.strerror}): choose another folder") from None
    return path


class RunDir:
    """One run's outputs: config.json, metrics.csv, PNG plots, summary.json, checkpoints; all atomic.

    If the run is stopped (Ctrl+C, SIGTERM, SIGHUP), the script calls `stop(error)`, saves what it learnt so far,
    and `finish` writes summary.json marked `"interrupted": true`, then lets the interruption end the process."""

    current: RunDir | None = None  # this process's run, for cli's messages

    def __init__(self, script: str, config: Any, **resolved: Any):
        """`resolved`: what the run really used where the config leaves a choice (the device, checkpoint paths);
        config.json records it beside the config, with the run directory's absolute path."""
        if config.run_dir:
            path = Path(config.run_dir)
            if path.exists() and not path.is_dir():
                raise UsageError(f"--run-dir {path} is a file: give a folder")
            if path.is_dir() and any(path.iterdir()):
                if not (path / "config.json").exists():
                    raise UsageError(f"--run-dir {path} holds files that are not a run's: give a new or empty folder")
                if not getattr(config, "overwrite", False):
                    raise UsageError(
                        f"--run-dir {path} holds an earlier run: give a new folder, or add --overwrite "
                        f"to empty it first"
                    )
                for child in path.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise UsageError(f"--run-dir {path} cannot be made ({error.strerror}): choose another folder") from None
        else:
            try:
                path = new_run_dir(REPO / "runs" / script)
            except OSError as error:
                raise UsageError(f"{REPO / 'runs'} cannot be written ({error.strerror}): give --run-dir") from None
        self.path = path
        self.show = bool(getattr(config, "show", False)) and displayed()
        self.rows: list[dict] = []
        self.stopped: KeyboardInterrupt | None = None
        self.last_checkpoint = time.monotonic()
        resolved = {"run_dir": str(path.resolve()), **{k: str(v) for k, v in resolved.items()}}
        try:
            self.write_json("config.json", {**dataclasses.asdict(config), "resolved": resolved})
        except OSError as error:
            raise UsageError(f"--run-dir {path} cannot be written ({error.strerror}): choose another folder") from None
        RunDir.current = self

    @classmethod
    def discard_unused(cls) -> None:
        """After bad input found once the run directory existed: remove it if it holds nothing but config.json."""
        run = cls.current
        if run is not None and not run.rows and [p.name for p in run.path.iterdir()] == ["config.json"]:
            (run.path / "config.json").unlink()
            with contextlib.suppress(OSError):
                run.path.rmdir()
            cls.current = None

    def stop(self, error: KeyboardInterrupt) -> None:
        """Ctrl+C or a signal arrived during training: the script saves what it has, then `finish` ends the run."""
        self.stopped = error

    def checkpoint_due(self, every_s: float = 300.0) -> bool:
        """True once every `every_s` seconds (five minutes): time to save the model so far in the run directory."""
        now = time.monotonic()
        if now - self.last_checkpoint < every_s:
            return False
        self.last_checkpoint = now
        return True

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: dict) -> Path:
        return atomic_write(self.file(name), lambda f: json.dump(data, f, indent=2, default=str))

    def log(self, **metrics: Any) -> None:
        """Append one row to metrics.csv (rewritten whole and atomically: small, and never half-written)."""
        self.rows.append(metrics)
        columns = list(dict.fromkeys(k for row in self.rows for k in row))

        def write(f):
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_write(self.file("metrics.csv"), write)

    def save_figure(self, fig, name: str) -> Path:
        """Save a matplotlib figure as PNG atomically, then close it (it stays open only with --show)."""
        import matplotlib.pyplot as plt

        tidy_axes(fig)
        path = atomic_write(
            self.file(name), lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), binary=True
        )
        if not self.show:
            plt.close(fig)
        return path

    def save_checkpoint(self, state_dict: dict, name: str) -> Path:
        return save_checkpoint(state_dict, self.file(name))

    def finish(self, summary: dict, headline: str | Callable[[], str]) -> dict:
        """Write summary.json, print the one-line summary (`headline`, or what it returns when it is a function),
        and open the plots when --show was given. A stopped run's summary is marked `"interrupted": true`, and the
        interruption then goes on to end the process (its headline is not made: the final figures are missing)."""
        if self.stopped is not None:
            summary = {**summary, "interrupted": True}
            self.write_json("summary.json", summary)
            raise self.stopped
        self.write_json("summary.json", summary)
        print(f"{headline() if callable(headline) else headline} | files in {self.path}/")
        if self.show:
            show_plots()
        return summary


def new_run_dir(parent: Path) -> Path:
    """parent/<date-time>, or <date-time>-2, -3... : created here, so two runs started together never share one."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while True:
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def tidy_axes(fig) -> None:
    """Plots that stay readable for short runs and long ones: at most six ticks on an axis, no offset notation, a
    nearly flat curve not blown up into noise, and a note in a panel with fewer than two points to draw."""
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        if ax.images:  # pictures (imagined frames, digits): no ticks to tidy
            continue
        for line in ax.lines:
            if len(line.get_xdata()) < 20 and line.get_marker() in (None, "", "None"):
                line.set_marker("o")  # a few points: visible each, even a single one
                line.set_markersize(3)
        points = max((len(line.get_xdata()) for line in ax.lines), default=0)
        points += sum(len(collection.get_offsets()) for collection in ax.collections)
        if points < 2:
            ax.text(
                0.5, 0.5, "too short a run for a curve", transform=ax.transAxes, ha="center", va="center", color="grey"
            )
        if ax.get_xscale() == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(6))
        if ax.get_yscale() == "linear":
            ax.ticklabel_format(axis="y", useOffset=False)
            low, high = ax.get_ylim()
            middle, least = (low + high) / 2, 0.02 * max(1.0, abs(low + high) / 2)
            if high - low < least:  # a flat curve: show it flat, not its rounding noise
                ax.set_ylim(middle - least / 2, middle + least / 2)


def known(**values: str) -> dict[str, str]:
    """A progress bar's live values, leaving out those not measured yet (formatted as 'nan')."""
    return {name: value for name, value in values.items() if value != "nan"}


def use_display(show: bool) -> None:
    """Plots are written to files without a display; a window opens only with --show (and a display: without one,
    it says so once and writes the files as usual)."""
    import matplotlib

    if (
        show
        and sys.platform.startswith("linux")
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    ):
        print("--show: no display here (DISPLAY is not set): the plots are written as PNG files only", file=sys.stderr)
        show = False
    if not show:
        matplotlib.use("Agg")


def displayed() -> bool:
    """Whether plots can open in a window (matplotlib is not on its file-only backend)."""
    import matplotlib

    return matplotlib.get_backend().lower() != "agg"


def show_plots() -> None:
    import matplotlib.pyplot as plt

    if displayed():
        plt.show()
