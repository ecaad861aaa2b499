"""Shared test helpers: import a script by file name, run a script through its command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

from bench.benchlib import load_script  # noqa: F401  (import a script by its file name; the tests take it from here)

matplotlib.use("Agg")  # tests never open windows

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The book's published checkpoints (actor_critic_regular, env_model_regular): tests that need them skip without them.
BOOK_CHECKPOINTS = Path(os.environ.get("CH14_BOOK_CHECKPOINTS", ROOT.parent / "shared" / "book-checkpoints"))


def run_script(name: str, *args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python <name> <args>` the way a reader does; output captured as text."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(ROOT / name), *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The script's command-line entry point (`cli`) in this process, for bad input that stops before training:
    the same parsing, checks, messages and exit status as `run_script`, without starting an interpreter."""
    import contextlib
    import io
    import signal

    from common.runtime import RunDir, cli

    module = load_script(name)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    out, err, folder, code = io.StringIO(), io.StringIO(), os.getcwd(), 0
    try:
        os.chdir(cwd or ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli(module.main, module.Config, module.__doc__, argv=list(args))
    except SystemExit as exit_info:
        code = exit_info.code
    finally:
        os.chdir(folder)
        RunDir.current = None
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    """Bad input: exit status 2 and one line on stderr that contains `message`."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr, result.stderr
