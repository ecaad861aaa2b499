"""The HER paper's Figure 1 on this hardware: final greedy success rate of DQN with and without hindsight on
bit flipping with n bits, at a fixed budget per n.

Each run is one `python Chapter_14_HER.py` / `python Chapter_14_wo_HER.py` at its defaults (the HER paper's
schedule: 16 episodes then 40 gradient steps of batch 128 per cycle, episode length n), with
`--max-frames = frames_per_bit * n` and the given seed, on the CPU with one torch thread; `--workers` runs
go side by side. Results are written after every run, so an interrupted sweep keeps what it finished, and a
second call with the same --out skips the runs already there.

    python bench/her_bits.py --out docs/her_bits.json --png docs/her_bits.png          # 8 sizes, 1 seed
    python bench/her_bits.py --seeds 1 2 3 --out docs/her_bits.json --png docs/her_bits.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchlib import ROOT, machine, report

SCRIPTS = {True: "Chapter_14_HER.py", False: "Chapter_14_wo_HER.py"}


def run_one(num_bits: int, hindsight: bool, seed: int, frames_per_bit: int) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            sys.executable,
            str(ROOT / SCRIPTS[hindsight]),
            "--num-bits",
            str(num_bits),
            "--max-frames",
            str(frames_per_bit * num_bits),
            "--seed",
            str(seed),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--run-dir",
            run_dir,
        ]
        result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, MPLBACKEND="Agg"))
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
        summary = json.loads(Path(run_dir, "summary.json").read_text())
        curve = [line.split(",") for line in Path(run_dir, "metrics.csv").read_text().splitlines()]
    header, rows = curve[0], curve[1:]
    greedy = [float(r[header.index("greedy_success_rate")]) for r in rows]
    frames = [int(r[header.index("frames")]) for r in rows]
    solved_at = next((f for f, g in zip(frames, greedy) if g >= 0.99), None)
    return dict(
        num_bits=num_bits,
        hindsight=hindsight,
        seed=seed,
        success_rate=summary["success_rate"],
        mean_return=summary["mean_return"],
        frames=summary["frames"],
        gradient_steps=summary["gradient_steps"],
        seconds=summary["seconds"],
        frames_to_99=solved_at,
    )


def plot(rows: list[dict], path: str, frames_per_bit: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for hindsight, label, colour in ((False, "DQN", "tab:blue"), (True, "DQN + HER", "tab:red")):
        mine = [r for r in rows if r["hindsight"] == hindsight]
        bits = sorted({r["num_bits"] for r in mine})
        mean = [
            sum(r["success_rate"] for r in mine if r["num_bits"] == n) / sum(1 for r in mine if r["num_bits"] == n)
            for n in bits
        ]
        ax.plot(bits, mean, "o-", color=colour, label=label)
        ax.scatter([r["num_bits"] for r in mine], [r["success_rate"] for r in mine], color=colour, alpha=0.35, s=14)
    seeds = len({r["seed"] for r in rows})
    ax.set(
        xlabel="number of bits n",
        ylabel="greedy success rate (100 fresh episodes)",
        ylim=(-0.03, 1.03),
        title=f"Bit flipping, {frames_per_bit:,} x n frames per run, {seeds} seed(s)",
    )
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[5, 10, 15, 20, 25, 30, 40, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--frames-per-bit", type=int, default=40_000, help="budget: max_frames = this x n")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="JSON record (also read back to skip finished runs)")
    parser.add_argument("--png", default=None)
    args = parser.parse_args()

    rows: list[dict] = []
    if args.out and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        if old["settings"]["frames_per_bit"] == args.frames_per_bit:
            rows = old["rows"]
    done = {(r["num_bits"], r["hindsight"], r["seed"]) for r in rows}
    todo = [
        (n, h, s)
        for s in args.seeds
        for n in sorted(args.bits, reverse=True)
        for h in (True, False)
        if (n, h, s) not in done
    ]
    settings = dict(
        frames_per_bit=args.frames_per_bit,
        budget="max_frames = frames_per_bit * num_bits",
        schedule="script defaults: 16 episodes + 40 steps of batch 128 per cycle, episode length n, "
        "epsilon 0.1, gamma 0.98, buffer 1e6, k=5 future goals",
        threads_per_run=1,
        workers=args.workers,
    )

    def save() -> None:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            ordered = sorted(rows, key=lambda r: (r["num_bits"], r["hindsight"], r["seed"]))
            Path(args.out).write_text(
                json.dumps(
                    {"benchmark": "her_bits", "machine": machine(), "settings": settings, "rows": ordered}, indent=2
                )
                + "\n"
            )

    with ThreadPoolExecutor(args.workers) as pool:
        for row in pool.map(lambda job: run_one(*job, args.frames_per_bit), todo):
            rows.append(row)
            save()
            print(
                f"n={row['num_bits']:>2} {'HER' if row['hindsight'] else 'DQN'} seed {row['seed']}: "
                f"success {row['success_rate']:.2f} in {row['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    rows.sort(key=lambda r: (r["num_bits"], r["hindsight"], r["seed"]))
    report(
        "her_bits",
        settings,
        rows,
        ["num_bits", "hindsight", "seed", "success_rate", "mean_return", "frames", "frames_to_99", "seconds"],
    )
    save()
    if args.png:
        plot(rows, args.png, args.frames_per_bit)


if __name__ == "__main__":
    main()
