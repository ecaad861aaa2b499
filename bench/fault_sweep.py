"""A sweep of absurd options, wrong files and a diverging run through every script's command line: how many are
refused in one line (exit status 2, or 1 for a run that diverges), how many end in a traceback, how many leave a
run directory, a temporary file or a changed shared checkpoint behind. The goals: all refused, no traceback,
nothing half-written, no shared checkpoint damaged.

    python bench/fault_sweep.py [--workers 2] [--out docs/fault_sweep.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common.runtime import RunDir, save_checkpoint

import torch
from benchlib import ROOT, load_script, report

A2C, IMG, I2A = "Chapter_14_Imagine_A2C.py", "Chapter_14_Imagination.py", "Chapter_14_I2A.py"
HER, DQN, LEARN, MSGD = "Chapter_14_HER.py", "Chapter_14_wo_HER.py", "Chapter_14_learn.py", "Chapter_14_MetaSGD-VPG.py"
SCRIPTS = [A2C, IMG, I2A, HER, DQN, LEARN, MSGD]


def files(folder: Path) -> dict:
    """Shared checkpoints and wrong files the cases use: a good agent and model, a NaN model, a folder, junk."""
    a2c, img = load_script(A2C), load_script(IMG)
    shared = folder / "checkpoints"
    save_checkpoint(a2c.ActorCritic((3, 15, 19), 5).state_dict(), shared / "actor_critic_regular")
    save_checkpoint(img.new_env_model("regular", torch.device("cpu")).state_dict(), shared / "env_model_regular")
    nan = img.new_env_model("regular", torch.device("cpu")).state_dict()
    nan["image_fc.weight"][0, 0] = float("nan")
    save_checkpoint(nan, folder / "nan_model")
    (folder / "a_folder").mkdir()
    (folder / "junk").write_bytes(b"not a checkpoint at all")
    (folder / "a_file").write_text("x")
    earlier = folder / "earlier_run"
    RunDir("x", load_script(DQN).Config(run_dir=str(earlier))).log(epoch=1)
    return dict(
        shared=shared,
        nan=folder / "nan_model",
        folder=folder / "a_folder",
        junk=folder / "junk",
        file=folder / "a_file",
        earlier=earlier,
    )


def cases(f: dict) -> list[tuple[str, list[str], int]]:
    """(script, options, expected exit status)."""
    shared = ["--checkpoint-dir", str(f["checkpoints"])]
    out = []
    for script in SCRIPTS:
        extra = shared if script in (IMG, I2A) else []
        for bad in (
            ["--seed", "1000000000000"],
            ["--threads", "1000000000000"],
            ["--lr", "inf"],
            ["--lr", "nan"],
            ["--device", "gpu"],
            ["--num", "5"],
            ["--run-dir", str(f["file"])],
            ["--run-dir", str(f["earlier"])],
            ["--nonsense"],
        ):
            if script == MSGD and bad[0] == "--lr":
                bad = ["--meta-lr", bad[1]]
            out.append((script, [*bad, *extra], 2))
    out += [
        (A2C, ["--eps", "-1"], 2),
        (A2C, ["--alpha", "nan"], 2),
        (A2C, ["--max-grad-norm", "nan"], 2),
        (A2C, ["--entropy-coef", "nan"], 2),
        (A2C, ["--value-loss-coef", "-1"], 2),
        (A2C, ["--num-envs", "100000"], 2),
        (A2C, ["--num-steps", "1000000000"], 2),
        (A2C, ["--checkpoint-dir", str(f["file"])], 2),
        (A2C, ["--mode", "nope"], 2),
        (A2C, ["--vec-env", "threads"], 2),
        (A2C, ["--gamma", "1.5"], 2),
        (I2A, ["--distil-coef", "nan"], 2),
        (I2A, ["--env-model", str(f["checkpoints"] / "actor_critic_regular")], 2),
        (I2A, ["--env-model", str(f["folder"])], 2),
        (I2A, ["--env-model", str(f["nan"])], 2),
        (I2A, ["--env-model", str(f["junk"])], 2),
        (I2A, ["--env-model", "/no/such/model"], 2),
        (I2A, ["--bf16", "maybe", *shared], 2),
        (I2A, ["--rollout-depth", "0", *shared], 2),
        (I2A, ["--num-envs", "100000", *shared], 2),
        (I2A, ["--mode", "hunt", *shared], 2),
        (IMG, ["--reward-coef", "inf", *shared], 2),
        (IMG, ["--actor-critic", "/no/such/agent"], 2),
        (IMG, ["--actor-critic", str(f["folder"])], 2),
        (IMG, ["--actor-critic", str(f["junk"])], 2),
        (IMG, ["--test-steps", "3", "--open-loop", "5", *shared], 2),
        (IMG, ["--mode", "rush", *shared], 2),
        (HER, ["--buffer-size", "10", "--batch-size", "128"], 2),
        (HER, ["--max-steps", "1000000000000"], 2),
        (HER, ["--max-steps", "1000000", "--max-frames", "1000"], 2),
        (HER, ["--new-goals", "-1"], 2),
        (HER, ["--new-goals", "100000000"], 2),
        (HER, ["--epsilon", "1.5"], 2),
        (DQN, ["--buffer-size", "1000000000000"], 2),
        (DQN, ["--buffer-size", "2000000000", "--num-bits", "60"], 2),
        (LEARN, ["--data-dir", str(f["file"])], 2),
        (LEARN, ["--ways", "1"], 2),
        (LEARN, ["--dataset", "nope"], 2),
        (LEARN, ["--dataset", "digits", "--shots", "1000"], 2),
        (LEARN, ["--maml-lr", "nan"], 2),
        (MSGD, ["--adapt-bsz", "1000000000000"], 2),
        (MSGD, ["--meta-bsz", "0"], 2),
        (MSGD, ["--tau", "2"], 2),
        (
            A2C,
            [
                "--lr",
                "1e12",
                "--max-grad-norm",
                "1e12",
                "--num-updates",
                "300",
                "--num-envs",
                "2",
                "--log-every",
                "5",
                *shared,
            ],
            1,
        ),
    ]
    return out


def run_case(case, folder: Path, index: int, shared_before: dict) -> dict:
    script, options, expected = case
    run_dir = folder / f"case{index}"
    if "--run-dir" not in options:
        options = [*options, "--run-dir", str(run_dir)]
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *options, "--device", "cpu"]
        if "--device" not in options
        else [sys.executable, str(ROOT / script), *options],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    messages = [line for line in lines if "%|" not in line]  # progress bars are not messages
    temporary = [str(p) for p in folder.rglob("*.tmp")]
    return dict(
        script=script,
        options=" ".join(o if len(o) < 40 else "..." + o[-30:] for o in options[:4]),
        expected=expected,
        exit=result.returncode,
        one_line=len(messages) == 1,
        traceback="Traceback" in result.stderr,
        run_dir_left=run_dir.exists() and expected == 2,
        temporary_files=len(temporary),
        message=messages[-1][-160:] if messages else "",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        f = files(folder)
        before = {p.name: p.read_bytes() for p in f["checkpoints"].iterdir()}
        all_cases = cases(f)
        with ThreadPoolExecutor(args.workers) as pool:
            rows = list(pool.map(lambda ic: run_case(ic[1], folder, ic[0], before), enumerate(all_cases)))
        damaged = [name for name, data in before.items() if (f["checkpoints"] / name).read_bytes() != data]
        extra = sorted(p.name for p in f["checkpoints"].iterdir() if p.name not in before)
    refused = sum(r["exit"] == r["expected"] and r["one_line"] and not r["traceback"] for r in rows)
    summary = dict(
        cases=len(rows),
        refused_in_one_line=refused,
        tracebacks=sum(r["traceback"] for r in rows),
        run_dirs_left=sum(r["run_dir_left"] for r in rows),
        temporary_files=max(r["temporary_files"] for r in rows),
        shared_checkpoints_damaged=len(damaged),
        files_added_to_shared=extra,
    )
    report(
        "fault_sweep",
        summary,
        [r for r in rows if not (r["exit"] == r["expected"] and r["one_line"])] or rows[:3],
        ["script", "options", "expected", "exit", "one_line", "traceback", "run_dir_left", "message"],
        args.out,
    )
    print(summary)


if __name__ == "__main__":
    main()
