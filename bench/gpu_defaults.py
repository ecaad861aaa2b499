"""The scripts' default runs on a GPU, side by side, each stopped (SIGTERM) at a time cap if it has not finished:
updates per second and the time a whole default run takes there (measured, or from the rate when capped).

The MiniPacman chain needs an agent and an environment model: a short A2C run (--chain-a2c-updates) trains the
agent that plays for the environment model's default run, whose model the I2A default run then imagines with.
Speed does not depend on how good they are. Scripts whose dependencies are missing (learn2learn and cherry for
MAML and Meta-SGD) are left out and listed. Every run is `--device cuda`, and all run at once: the times are
those of runs sharing one GPU and the machine's cores with the others, as the JSON says.

    python bench/gpu_defaults.py --out docs/gpu_defaults.json [--cap 400]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from benchlib import ROOT, report

# script, arguments besides --device/--run-dir, the count the rate is per, and the default's total of it
DEFAULTS = {
    "wo_HER": ("Chapter_14_wo_HER.py", [], "frames", 200_000),
    "HER": ("Chapter_14_HER.py", [], "frames", 200_000),
    "A2C": ("Chapter_14_Imagine_A2C.py", ["--gif-frames", "0"], "updates", 30_000),
    "MAML (digits)": ("Chapter_14_learn.py", ["--dataset", "digits"], "iterations", 1000),
    "MetaSGD-VPG": ("Chapter_14_MetaSGD-VPG.py", [], "iterations", 400),
}


DEVICE = "cuda"


def run(name: str, script: str, args: list[str], folder: Path, cap: float, results: dict) -> None:
    """One run, stopped with SIGTERM (the scripts then save an interrupted summary) after `cap` seconds."""
    run_dir = folder / name.replace(" ", "_").replace("(", "").replace(")", "")
    command = [sys.executable, str(ROOT / script), *args, "--device", DEVICE, "--run-dir", str(run_dir)]
    start = time.perf_counter()
    with open(folder / f"{run_dir.name}.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    last = (folder / f"{run_dir.name}.log").read_text().replace("\r", "\n").strip().splitlines()[-1:]
    results[name] = dict(
        summary=summary,
        wall_s=round(time.perf_counter() - start, 1),
        exit=process.returncode,
        last_line=last[0][-300:] if last else "",
    )


def row(name: str, result: dict, unit: str, total: int) -> dict:
    summary = result["summary"]
    done = summary.get(unit, summary.get("updates", 0)) or 0
    seconds = summary.get("seconds", 0) or 0
    rate = done / seconds if seconds else float("nan")
    return dict(
        run=name,
        finished=not summary.get("interrupted", False) and result["exit"] == 0,
        done=done,
        unit=unit,
        seconds=seconds,
        per_s=round(rate, 2),
        default_total=total,
        default_minutes=round(total / rate / 60, 1) if rate == rate and rate > 0 else None,
        last_line=result["last_line"],
        result=next(
            (
                summary[k]
                for k in (
                    "success_rate",
                    "mean_return_last_100",
                    "pixel_accuracy",
                    "meta_test_accuracy",
                    "return_after_1_steps",
                )
                if k in summary
            ),
            None,
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cap", type=float, default=400, help="seconds after which a run is stopped")
    parser.add_argument("--chain-a2c-updates", type=int, default=2000)
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run of this script")
    parser.add_argument("--out")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE != "cpu" and not torch.cuda.is_available():
        print("error: no CUDA device here: this benchmark measures the GPU", file=sys.stderr)
        sys.exit(2)
    has_l2l = all(importlib.util.find_spec(m) for m in ("learn2learn", "cherry"))
    results: dict = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        threads = [
            threading.Thread(target=run, args=(name, script, list(extra), folder, args.cap, results))
            for name, (script, extra, _, _) in DEFAULTS.items()
            if has_l2l or name not in ("MAML (digits)", "MetaSGD-VPG")
        ]

        def chain() -> None:
            """Each step reads the model the step before saved in its run directory (there even when capped)."""
            checkpoints = ["--checkpoint-dir", str(folder / "checkpoints")]  # the repository's are left alone
            a2c_args = ["--num-updates", str(args.chain_a2c_updates), "--gif-frames", "0", *checkpoints]
            run("A2C agent for the chain", "Chapter_14_Imagine_A2C.py", a2c_args, folder, args.cap, results)
            agent = folder / "A2C_agent_for_the_chain" / "actor_critic_regular"
            left = args.cap - (time.perf_counter() - start)
            model_args = ["--actor-critic", str(agent), *checkpoints]
            run("environment model", "Chapter_14_Imagination.py", model_args, folder, max(30.0, left / 3), results)
            env_model = folder / "environment_model" / "env_model_regular"
            left = args.cap - (time.perf_counter() - start)
            i2a_args = ["--gif-frames", "0", "--env-model", str(env_model), *checkpoints]
            run("I2A", "Chapter_14_I2A.py", i2a_args, folder, max(60.0, left), results)

        threads.append(threading.Thread(target=chain))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    units = {name: (unit, total) for name, (_, _, unit, total) in DEFAULTS.items()}
    units.update(
        {
            "A2C agent for the chain": ("updates", args.chain_a2c_updates),
            "environment model": ("updates", 5000),
            "I2A": ("updates", 10_000),
        }
    )
    rows = [row(name, results[name], *units[name]) for name in units if name in results]
    missing = [] if has_l2l else ["MAML (digits)", "MetaSGD-VPG: learn2learn and cherry are not installed here"]
    report(
        "gpu_defaults",
        dict(
            cap_s=args.cap,
            side_by_side=len(rows),
            device=torch.cuda.get_device_name(0) if DEVICE != "cpu" else "cpu (a dry run)",
            cpu_cores=os.cpu_count(),
            not_run=missing,
        ),
        rows,
        ["run", "finished", "done", "unit", "seconds", "per_s", "default_minutes", "result"],
        args.out,
    )


if __name__ == "__main__":
    main()
