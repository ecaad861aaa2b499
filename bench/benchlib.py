"""What every benchmark prints: the machine, then its rows as JSON and as a table."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
REPO_CHECKPOINTS = ROOT / "checkpoints"  # where the scripts save the checkpoints the next script needs


BOOK_CHECKPOINTS_ENV = "CH14_BOOK_CHECKPOINTS"
BOOK_REPOSITORY = "github.com/PacktPublishing/Hands-On-Reinforcement-Learning-for-Games, folder Chapter14/Chapter_14"


def add_book_checkpoints_option(parser) -> None:
    """--book-checkpoints DIR: the folder holding the book's published actor_critic_regular and env_model_regular."""
    parser.add_argument(
        "--book-checkpoints",
        default=os.environ.get(BOOK_CHECKPOINTS_ENV, ""),
        help=f"folder of the book's published checkpoints (default: ${BOOK_CHECKPOINTS_ENV}); "
        f"they come from {BOOK_REPOSITORY}",
    )


def book_checkpoint(folder: str, name: str) -> Path:
    """The book's checkpoint `name` in `folder`; when it is not there, one line naming the fix and exit status 2."""
    path = Path(folder) / name if folder else None
    if path is None or not path.is_file():
        where = f"in {folder}" if folder else f"given (no --book-checkpoints DIR, no ${BOOK_CHECKPOINTS_ENV})"
        print(
            f"error: the book's {name} is not {where}: download it from {BOOK_REPOSITORY}, then pass "
            f"--book-checkpoints DIR or set {BOOK_CHECKPOINTS_ENV}=DIR",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


def load_script(name: str):
    """Import a script by its path from the repository (works for names such as Chapter_14_MetaSGD-VPG.py too)."""
    module_name = Path(name).stem.replace("-", "_")
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def machine() -> dict:
    """Where a figure was measured. The CPU's name comes with its widest vector instructions (AVX-512 with native
    bfloat16, AVX-512, AVX2): the same seed gives the same numbers only on the same kind (docs/speed.md), and
    I2A imagines in bfloat16 only where the CPU has it."""
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        for line in lines:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
        if "avx512_bf16" in flags:
            cpu += " (AVX-512, native bfloat16)"
        elif "avx512f" in flags:
            cpu += " (AVX-512)"
        elif "avx2" in flags:
            cpu += " (AVX2)"
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def leave_glibc_malloc_alone() -> None:
    """For a row measured without `keep_freed_memory` (common/runtime.py): tune_process() will not call it."""
    import common.runtime

    common.runtime.keep_freed_memory = lambda: False


def fresh_process_row(script: str, args: list[str]) -> dict:
    """Run a benchmark script again in a fresh process (`args` should make it print one JSON row last)."""
    child = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def timed(fn, repeat: int, warmup: int = 0, sync: bool = False) -> float:
    """Seconds per call of fn, after `warmup` calls (sync: wait for CUDA before reading the clock)."""
    for _ in range(warmup):
        fn()
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    if sync:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat


def report(name: str, settings: dict, rows: list[dict], columns: list[str], out: str | None = None) -> dict:
    """Print the JSON record and a plain table; also write the JSON to `out` when given."""
    record = {"benchmark": name, "machine": machine(), "settings": settings, "rows": rows}
    text = json.dumps(record, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    widths = [max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns]
    print()
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))
    return record


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


# Two-sided 95% Student's t quantiles by degrees of freedom (n - 1); beyond 10, the normal quantile (slightly narrow).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """The mean of `values` and the half-width of its 95% confidence interval (None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T95.get(n - 1, 1.96) * sd / math.sqrt(n)


def read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def child_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) the running process `pid` has used so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_polling(command: list[str], env: dict, curve_file: Path, stderr_file: Path):
    """Run `command`, whose curve file (a CSV it rewrites whole and atomically at each point) is polled every 0.2 s:
    each new row is stamped with the wall and CPU seconds used so far (at most 0.2 s late). Returns the rows, their
    (wall, CPU) stamps, and the whole run's wall and CPU seconds (getrusage of the finished child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(stderr_file, "w") as stderr:  # tqdm's progress bar; kept for errors
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        stamps: list[tuple[float, float | None]] = []
        while child.poll() is None:
            time.sleep(0.2)
            new_rows = len(read_csv(curve_file)) - len(stamps)
            stamps += [(time.perf_counter() - start, child_cpu_seconds(child.pid))] * new_rows
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{Path(stderr_file).read_text()[-3000:]}")
    rows = read_csv(curve_file)
    stamps += [(wall, cpu_total)] * (len(rows) - len(stamps))  # rows written in the last 0.2 s
    return rows, stamps, wall, cpu_total


def process_times(text: str) -> dict:
    """ "W wall C cpu" (run_one), "W wall U user S sys" (GNU time -f) or GNU time -v's report."""
    if "Elapsed (wall clock)" in text:
        fields = dict(line.strip().rsplit(": ", 1) for line in text.splitlines() if ": " in line)
        clock = [float(x) for x in fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")]
        wall = sum(x * 60**i for i, x in enumerate(reversed(clock)))
        cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
        return dict(process_wall_s=round(wall, 2), process_cpu_s=round(cpu, 2))
    numbers = [float(w) for w in text.split() if w.replace(".", "", 1).isdigit()]
    return dict(process_wall_s=numbers[0], process_cpu_s=round(sum(numbers[1:3]), 2)) if len(numbers) >= 2 else {}


def run_logged(command: list[str], run_dir: Path) -> None:
    """Run a training script to the end: its output in <run_dir>.log, its wall and CPU seconds (the whole process
    tree) in <run_dir>.time, which `process_times` reads; a failed run stops the sweep, naming its log."""
    print(f"running {' '.join(command[1:])}", file=sys.stderr, flush=True)
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    log = run_dir.parent / f"{run_dir.name}.log"
    with open(log, "w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, MPLBACKEND="Agg"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{run_dir.name} failed (exit {result.returncode}); see {log}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    (run_dir.parent / f"{run_dir.name}.time").write_text(f"{time.perf_counter() - start:.2f} wall {cpu:.2f} cpu\n")
