"""What every benchmark prints: the machine, then its rows as JSON and as a table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
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
    """For a row measured without `keep_freed_memory` (common/runtime.py): setup() will not call it."""
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
