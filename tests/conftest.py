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


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    """Bad input: exit status 2 and one line on stderr that contains `message`."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr, result.stderr
