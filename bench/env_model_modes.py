"""The environment model of `Chapter_14_Imagination.py` per MiniPacman mode: one-step and open-loop accuracy, and
the reward-class accuracy class by class (the rare classes, a ghost eaten or a power pill, are the ones that matter
to an imagining agent and the hardest to learn).

Each run is `python Chapter_14_Imagination.py --mode M --scripted-games K --reward-balance B --reward-head H --seed S
<args>` with the given agent (`--actor-critic`: it plays the games that the scripted player does not), in
`<work>/<M>_model_k<K>_b<B>_<H>_s<S>` (B as Python prints it: 0.5, 1.0).
A run whose summary.json is in <work> is not run again, so a sweep can be stopped and resumed; `--no-run` only
collects.

    python bench/env_model_modes.py --actor-critic checkpoints/actor_critic_regular --modes hunt ambush rush \\
        --scripted-games 8 --reward-balance 0 0.5 --work runs/env_model_modes --out docs/env_model_modes.json
    python bench/env_model_modes.py --actor-critic <the book's actor_critic_regular> --modes hunt \
        --reward-head flat pooled --seeds 1 2 --work runs/reward_head --out docs/env_model_reward_head.json
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import product
from pathlib import Path

from benchlib import ROOT, process_times, report, run_logged

MODES = ["regular", "avoid", "hunt", "ambush", "rush"]


def run_dir(work: Path, mode: str, scripted: int, balance: float, head: str, seed: int) -> Path:
    return work / f"{mode}_model_k{scripted}_b{balance}_{head}_s{seed}"  # hunt_model_k8_b0.5_flat_s1


def run_one(folder: Path, mode: str, scripted: int, balance: float, head: str, seed: int, args) -> None:
    command = [sys.executable, str(ROOT / "Chapter_14_Imagination.py"), "--mode", mode]
    command += ["--scripted-games", str(scripted), "--reward-balance", str(balance), "--reward-head", head]
    command += ["--num-updates", str(args.num_updates), "--seed", str(seed), "--actor-critic", args.actor_critic]
    command += ["--checkpoint-dir", f"{folder}_checkpoints", "--run-dir", str(folder), "--overwrite"]
    run_logged(command, folder)


def collect(folder: Path, mode: str, scripted: int, balance: float, head: str, seed: int) -> dict | None:
    path = folder / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    if summary.get("interrupted"):
        return None
    row = dict(mode=mode, scripted_games=scripted, reward_balance=balance, reward_head=head, seed=seed)
    for key in ("pixel_accuracy", "frame_accuracy", "reward_accuracy", "transitions", "updates", "seconds"):
        row[key] = summary.get(key)
    for key, value in summary.items():
        if key.startswith("open_loop_") and key != "open_loop" and not key.endswith("rollouts"):
            row[key] = value
    row["reward_class_accuracy"] = summary.get("reward_class_accuracy")
    row["by_class"] = ", ".join(
        f"{c['reward']:g}: {c['accuracy']:.2f} ({c['count']})" for c in summary.get("reward_class_accuracy") or []
    )
    timing = folder.parent / f"{folder.name}.time"
    if timing.is_file():
        row.update(process_times(timing.read_text()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--actor-critic", required=True, help="the agent that plays (an actor_critic_<mode> file)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["hunt", "ambush", "rush"])
    parser.add_argument("--scripted-games", nargs="+", type=int, default=[8], help="games of 16 scripted")
    parser.add_argument("--reward-balance", nargs="+", type=float, default=[0.0])
    parser.add_argument("--num-updates", type=int, default=3000)
    parser.add_argument("--reward-head", nargs="+", choices=["flat", "pooled"], default=["flat"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--work", default=str(ROOT / "runs" / "env_model_modes"), help="where the runs go")
    parser.add_argument("--no-run", action="store_true", help="only collect the runs already in --work")
    parser.add_argument("--out", help="the JSON record")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    runs = product(args.modes, args.scripted_games, args.reward_balance, args.reward_head, args.seeds)
    for mode, scripted, balance, head, seed in runs:
        folder = run_dir(work, mode, scripted, balance, head, seed)
        if not args.no_run and collect(folder, mode, scripted, balance, head, seed) is None:
            run_one(folder, mode, scripted, balance, head, seed, args)
        row = collect(folder, mode, scripted, balance, head, seed)
        if row is not None:
            rows.append(row)
    settings = dict(
        script="Chapter_14_Imagination.py",
        actor_critic=args.actor_critic,
        num_updates=args.num_updates,
        seeds=args.seeds,
        held_out="the script's: test_steps steps of num_envs games, seeds 10**6 + seed..., played the same way",
    )
    columns = ["mode", "scripted_games", "reward_balance", "reward_head", "seed", "pixel_accuracy", "frame_accuracy"]
    columns += ["reward_accuracy"]
    columns += ["open_loop_5_pixel_accuracy", "open_loop_5_reward_accuracy", "by_class", "process_cpu_s"]
    report("env_model_modes", settings, rows, columns, args.out)


if __name__ == "__main__":
    main()
