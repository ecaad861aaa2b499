"""Collect runs of bench/hunt_probe.py into one JSON record and one figure (docs/hunt_collapse.md).

Each run is a `<tag>.jsonl` in --runs (one row per `--log-every` updates). The JSON keeps, per run, its settings
(from runs.jsonl), its final figures and its curve (frames, last-100 return, window return, episode length, share
of episodes that reach the frame cap, pills and ghosts eaten per episode, entropy, share of moves that leave
pacman where he was). The figure has one panel per measure, one line per run.

    python bench/hunt_probe_report.py --runs runs/hunt_probe --tags s005_e005_long s005_e005_long_seed2 \\
        --out docs/hunt_scaled
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CURVE = ["frames", "last100", "ret", "length", "truncated", "pills", "ghosts", "entropy", "no_move"]
PANELS = [
    ("last100", "mean return, last 100 episodes"),
    ("length", "episode length (steps)"),
    ("truncated", "share of episodes reaching the 1,000-step cap"),
    ("pills", "power pills eaten per episode"),
    ("ghosts", "ghosts eaten per episode"),
    ("entropy", "policy entropy (ln 5 = 1.61)"),
]


def load(runs: Path, tag: str) -> dict:
    rows = [json.loads(line) for line in (runs / f"{tag}.jsonl").read_text().splitlines() if line.strip()]
    settings = {}
    index = runs / "runs.jsonl"
    if index.is_file():
        for line in index.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("tag") == tag:
                settings = dict(mode=entry.get("mode"), seed=entry.get("seed"), change=entry.get("change"))
    last = rows[-1]
    final = {k: last.get(k) for k in ("update", "frames", "last100", "length", "truncated", "pills", "ghosts")}
    final["entropy"] = last.get("entropy")
    final["seconds"] = last.get("seconds")
    curve = [{k: row.get(k) for k in CURVE} for row in rows]
    return dict(tag=tag, **settings, final=final, curve=curve)


def plot(records: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (key, panel) in zip(axes.flat, PANELS):
        for record in records:
            frames = [row["frames"] / 1e6 for row in record["curve"]]
            values = [row[key] if row[key] is not None else float("nan") for row in record["curve"]]
            ax.plot(frames, values, label=f"{record.get('mode')} seed {record.get('seed')}")
        ax.set(title=panel, xlabel="million frames")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--runs", default="runs/hunt_probe", help="the folder bench/hunt_probe.py wrote (--out)")
    parser.add_argument("--tags", nargs="+", required=True)
    parser.add_argument("--out", required=True, help="path prefix: writes <out>.json and <out>.png")
    parser.add_argument("--title", default="A2C on MiniPacman: bench/hunt_probe.py runs")
    args = parser.parse_args()
    records = [load(Path(args.runs), tag) for tag in args.tags]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(dict(benchmark="hunt_probe_report", runs=records), indent=1) + "\n")
    plot(records, f"{args.out}.png", args.title)
    print("| run | frames | last-100 return | episode length | reach the cap | pills / ep | ghosts / ep | entropy |")
    print("|---|---|---|---|---|---|---|---|")
    for r in records:
        f = r["final"]
        print(
            f"| {r['tag']} | {f['frames']:,} | {f['last100']:.2f} | {f['length']:.0f} | {f['truncated']:.2f} | "
            f"{f['pills']:.2f} | {f['ghosts']:.3f} | {f['entropy']:.2f} |"
        )
    print(f"wrote {args.out}.json and {args.out}.png")


if __name__ == "__main__":
    main()
