"""Thread settings alone and beside one busy process: updates per second of a short I2A run (the script most bound by
convolutions, the only one whose default uses 2 threads) and of a short A2C run, with 1 thread, 2 threads whose
OpenMP workers wait the way libgomp does by default (spinning first), and 2 threads that wait passively
(OMP_WAIT_POLICY=PASSIVE, what the scripts now set: an idle worker sleeps instead of spinning, which matters
when another process wants the core). Each row is a fresh process; the busy process is a Python
loop that keeps one core at 100%.

    python bench/threads_busy.py [--updates 30] [--env-model PATH] [--out docs/threads_busy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchlib import REPO_CHECKPOINTS, ROOT, report

VARIANTS = [
    ("1 thread", 1, False),
    ("2 threads, OpenMP's default wait", 2, False),
    ("2 threads, passive wait", 2, True),
]


def run(script: str, updates: int, threads: int, passive: bool, extra: list[str]) -> dict:
    # common/ sets PASSIVE unless the variable is set: an empty value leaves OpenMP (libgomp) its own default
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE" if passive else "")
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            str(ROOT / script),
            "--num-updates",
            str(updates),
            "--log-every",
            str(updates),
            "--threads",
            str(threads),
            "--device",
            "cpu",
            "--gif-frames",
            "0",
            "--run-dir",
            f"{tmp}/run",
            "--checkpoint-dir",
            f"{tmp}/ck",
            *extra,
        ]
        start = os.times()
        subprocess.run(command, env=env, check=True, capture_output=True, cwd=ROOT)
        end = os.times()
        summary = json.loads(open(f"{tmp}/run/summary.json").read())
    return dict(
        updates_per_s=summary["updates"] / summary["seconds"],
        cpu_s=round(end.children_user + end.children_system - start.children_user - start.children_system, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=30, help="I2A updates per row (A2C runs 20 times as many)")
    parser.add_argument("--env-model", default=str(REPO_CHECKPOINTS / "env_model_regular"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    workloads = [
        ("I2A", "Chapter_14_I2A.py", args.updates, ["--env-model", args.env_model]),
        ("A2C", "Chapter_14_Imagine_A2C.py", 20 * args.updates, []),
    ]
    rows = []
    for condition in ("alone", "beside one busy process"):
        busy = None
        if condition != "alone":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1)
        try:
            for name, script, updates, extra in workloads:
                for label, threads, passive in VARIANTS:
                    results = [run(script, updates, threads, passive, extra) for _ in range(args.repeats)]
                    best = max(results, key=lambda r: r["updates_per_s"])
                    rows.append(
                        dict(
                            script=name,
                            condition=condition,
                            threads=label,
                            updates_per_s=round(best["updates_per_s"], 2),
                            worst=round(min(r["updates_per_s"] for r in results), 2),
                            cpu_s=best["cpu_s"],
                        )
                    )
        finally:
            if busy is not None:
                busy.kill()
    report(
        "threads_busy",
        dict(
            updates_i2a=args.updates, updates_a2c=20 * args.updates, repeats=args.repeats, load_before=os.getloadavg()
        ),
        rows,
        ["script", "condition", "threads", "updates_per_s", "worst", "cpu_s"],
        args.out,
    )


if __name__ == "__main__":
    main()
