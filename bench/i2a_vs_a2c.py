"""I2A against the model-free A2C agent at the same number of frames and seed: reads the run directories of
Chapter_14_I2A.py and Chapter_14_Imagine_A2C.py (run with the same --mode, --seed and --num-updates) and writes
one table (JSON and text) and one PNG of both learning curves per mode.

    python bench/i2a_vs_a2c.py --pair regular runs/Chapter_14_I2A/<run> runs/Chapter_14_Imagine_A2C/<run> \\
                               [--pair hunt ...] [--out docs/i2a_vs_a2c]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from benchlib import report


def load(run: str) -> tuple[dict, dict, list[dict]]:
    folder = Path(run)
    config = json.loads((folder / "config.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    with open(folder / "metrics.csv", newline="") as f:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    return config, summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", nargs=3, action="append", metavar=("MODE", "I2A_RUN", "A2C_RUN"), required=True)
    parser.add_argument("--out", help="path prefix: writes <out>.json and <out>.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    fig, axes = plt.subplots(1, len(args.pair), figsize=(5.5 * len(args.pair), 3.8), squeeze=False)
    for ax, (mode, i2a_run, a2c_run) in zip(axes[0], args.pair):
        for name, run in (("I2A", i2a_run), ("A2C", a2c_run)):
            config, summary, metrics = load(run)
            if config["mode"] != mode:
                raise SystemExit(f"{run} is a {config['mode']} run, not {mode}")
            rows.append(
                dict(
                    mode=mode,
                    agent=name,
                    seed=config["seed"],
                    frames=summary["frames"],
                    mean_return_last_100=summary["mean_return_last_100"],
                    seconds=summary["seconds"],
                )
            )
            ax.plot([r["frames"] / 1e6 for r in metrics], [r["mean_return_last_100"] for r in metrics], label=name)
        ax.set(title=f"MiniPacman {mode}", xlabel="million frames", ylabel="mean return of the last 100 episodes")
        ax.legend(fontsize=8)
    frames = {r["frames"] for r in rows}
    fig.suptitle(
        f"I2A against A2C, same frames and seed ({', '.join(f'{f:,}' for f in sorted(frames))} frames)", fontsize=10
    )
    fig.tight_layout()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(f"{args.out}.png", dpi=110, bbox_inches="tight")
    report(
        "i2a_vs_a2c",
        dict(pairs=[p[0] for p in args.pair]),
        rows,
        ["mode", "agent", "seed", "frames", "mean_return_last_100", "seconds"],
        f"{args.out}.json" if args.out else None,
    )


if __name__ == "__main__":
    main()
