"""The I2A paper's MiniPacman comparison: A2C, copy-model I2A and I2A at the same frames and seeds, per task.

For each mode and seed, in this order, every run with the scripts' defaults but the options below:
1. `Chapter_14_Imagine_A2C.py`: the model-free agent (the A2C row), whose play also trains step 2's model;
2. `Chapter_14_Imagination.py`: the environment model of that mode, trained on step 1's agent;
3. `Chapter_14_I2A.py --rollout-depth d` for each d of --depths: imagining with step 2's model;
4. `Chapter_14_I2A.py --copy-model`: the same agent imagining nothing (the paper's control for network size).
Every agent of a mode learns with the same reward scale and entropy bonus: the mode's (`MODE_SETTINGS` of
Chapter_14_Imagine_A2C.py, the scripts' defaults) unless --reward-scale or --entropy-coef is given. A mode and seed's
models stay in <work>/chain_<mode>_s<seed>, so no run reads another seed's models. Runs are made
in this process, one after another (CPU seconds from the process clock); a run whose summary.json is in <work> is
not made again, so a sweep can be stopped and resumed, or extended (`--modes hunt --depths 3 --agents i2a`).
Writes <out>.json (every run; per mode and agent the mean return of the last 100 episodes +- 95% CI over seeds;
per mode each I2A minus A2C and minus copy-model I2A, paired by seed, +- 95% CI)
and <out>.png (the paper's layout: one panel per task, each agent's mean curve over seeds with a band).

    python bench/i2a_vs_a2c.py --modes regular hunt ambush --seeds 1 2 3 --out docs/i2a_vs_a2c
    python bench/i2a_vs_a2c.py --modes avoid rush --seeds 1 --out docs/i2a_vs_a2c          # same --work: adds
    python bench/i2a_vs_a2c.py --modes hunt --seeds 1 2 3 --depths 3 --agents i2a --out docs/i2a_vs_a2c
    python bench/i2a_vs_a2c.py --quick --work /tmp/quick --out /tmp/quick/table          # tiny: checks the CLI
    python bench/i2a_vs_a2c.py --modes hunt --num-updates 30000 --work runs/i2a_vs_a2c_long --out docs/i2a_vs_a2c_long
    python bench/i2a_vs_a2c.py --modes hunt --reward-scale 1 --entropy-coef 0.01 \
        --work runs/i2a_vs_a2c_book --out docs/i2a_vs_a2c_book    # the book's settings on hunt (another --work)
    python bench/i2a_vs_a2c.py --modes regular --no-run --keep docs/i2a_seeds.json --out docs/i2a_seeds
    python bench/i2a_vs_a2c.py --modes hunt --seeds 1 --num-updates 20000 --work runs/hunt --out docs/i2a_vs_a2c_hunt

`--keep FILE [FILE ...]` carries over the runs (figures and curves) of earlier records for every (mode, agent, seed)
that <work> does not hold (the first record holding it gives it), so runs made on another day or machine, whose run
directories are gone, and today's make one table and one figure; each run keeps the CPU it ran on (`cpu`, where it
was recorded). `--at-frames F` scores every longer run by its logged row at F frames (and cuts its curve there), so
runs of different lengths compare at equal frames.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

from benchlib import ROOT, load_script, machine, mean_ci

MODES = ["regular", "avoid", "hunt", "ambush", "rush"]
AGENTS = ["a2c", "copy", "i2a"]
LABELS = {"a2c": "A2C", "copy": "copy-model I2A", "i2a": "I2A"}
QUICK = dict(num_updates=4, num_envs=2, log_every=2, env_model_updates=3, frame_cap=10)  # --quick: seconds


def agent_order(agent: str) -> tuple:
    """A2C first, then copy-model I2A, then I2A by rollout depth: the paper's order."""
    return (agent != LABELS["a2c"], agent != LABELS["copy"], agent)


def done(run_dir: Path) -> bool:
    path = run_dir / "summary.json"
    return path.is_file() and not json.loads(path.read_text()).get("interrupted")


def run(label: str, script, run_dir: Path, **fields) -> None:
    """One run of `script` (a loaded Chapter_14 module) in this process, unless it is already done."""
    if done(run_dir):
        return
    print(f"{label}: {run_dir}", file=sys.stderr, flush=True)
    start, cpu = time.perf_counter(), time.process_time()
    script.main(script.Config(run_dir=str(run_dir), overwrite=True, **fields))
    times = dict(wall_s=round(time.perf_counter() - start, 2), cpu_s=round(time.process_time() - cpu, 2))
    times["cpu"] = machine()["cpu"]  # same seed, same numbers only on the same kind of CPU (docs/speed.md)
    (run_dir / "process_times.json").write_text(json.dumps(times) + "\n")


def sweep(args, work: Path) -> None:
    a2c = load_script("Chapter_14_Imagine_A2C.py")
    img = load_script("Chapter_14_Imagination.py")
    i2a = load_script("Chapter_14_I2A.py")
    common = dict(device=args.device, num_envs=args.num_envs, **({"threads": args.threads} if args.threads else {}))
    loop = dict(num_updates=args.num_updates, log_every=args.log_every, gif_frames=0, frame_cap=args.frame_cap)
    # every agent learns with the same settings: the mode's (None: each Config fills in MODE_SETTINGS) unless given
    loop.update(reward_scale=args.reward_scale, entropy_coef=args.entropy_coef)
    for mode in args.modes:
        for seed in args.seeds:
            chain = str(work / f"chain_{mode}_s{seed}")
            same = dict(common, mode=mode, seed=seed, checkpoint_dir=chain)
            needs_model = "i2a" in args.agents
            if "a2c" in args.agents or needs_model:
                run(f"A2C {mode} seed {seed}", a2c, work / f"a2c_{mode}_s{seed}", **same, **loop)
            if needs_model:
                model_loop = dict(num_updates=args.env_model_updates) if args.env_model_updates else {}
                # the model's data and reward head: the mode's (None: MODEL_SETTINGS of the script) unless given
                model_loop.update(scripted_games=args.scripted_games, reward_head=args.reward_head)
                quick = dict(test_steps=6, eval_every=0) if args.quick else {}
                run(
                    f"environment model {mode} seed {seed}",
                    img,
                    work / f"envmodel_{mode}_s{seed}",
                    **same,
                    **model_loop,
                    **quick,
                )
                for depth in args.depths:
                    run(
                        f"I2A depth {depth} {mode} seed {seed}",
                        i2a,
                        work / f"i2a_d{depth}_{mode}_s{seed}",
                        **same,
                        **loop,
                        rollout_depth=depth,
                    )
            if "copy" in args.agents:
                run(
                    f"copy-model I2A {mode} seed {seed}",
                    i2a,
                    work / f"copy_{mode}_s{seed}",
                    **same,
                    **loop,
                    copy_model=True,
                )


def collect(work: Path, modes: list[str]) -> list[dict]:
    """Every finished run in `work` of the given modes: its agent, seed, final figures and curve."""
    rows = []
    for summary_path in sorted(work.glob("*/summary.json")):
        name = summary_path.parent.name
        kind = name.split("_")[0]
        if kind not in ("a2c", "copy", "i2a") or not done(summary_path.parent):
            continue
        config = json.loads((summary_path.parent / "config.json").read_text())
        if config["mode"] not in modes:
            continue
        summary = json.loads(summary_path.read_text())
        agent = f"I2A depth {config['rollout_depth']}" if kind == "i2a" else LABELS[kind]
        with open(summary_path.parent / "metrics.csv", newline="") as f:
            logged = list(csv.DictReader(f))
        curve = [(float(r["frames"]), float(r["mean_return_last_100"])) for r in logged]
        lengths = [(float(r["frames"]), float(r["mean_length_last_100"])) for r in logged]
        times_path = summary_path.parent / "process_times.json"
        rows.append(
            dict(
                mode=config["mode"],
                agent=agent,
                seed=config["seed"],
                frames=summary["frames"],
                mean_return_last_100=summary["mean_return_last_100"],
                entropy_last=summary.get("entropy_last"),
                reward_scale=config.get("reward_scale", 1.0),
                entropy_coef=config.get("entropy_coef"),
                seconds=summary["seconds"],
                **(json.loads(times_path.read_text()) if times_path.is_file() else {}),
                run_dir=str(summary_path.parent),
                mean_length_last_100=lengths[-1][1] if lengths else None,
                curve=curve,
                length_curve=lengths,
            )
        )
    return rows


def cut(row: dict, frames: int) -> dict:
    """A run longer than `frames` as it stood then: its logged row at `frames` (a run of that length gives the same
    numbers: nothing in A2C or I2A depends on the total number of updates) and its curve up to there."""
    if row["frames"] <= frames:
        return row
    at = [value for f, value in row["curve"] if f == frames]
    if not at:
        raise SystemExit(f"{row['agent']} {row['mode']} seed {row['seed']} logged no row at {frames} frames")
    curve = [(f, value) for f, value in row["curve"] if f <= frames]
    lengths = [(f, value) for f, value in row.get("length_curve", []) if f <= frames]
    length = dict(mean_length_last_100=lengths[-1][1], length_curve=lengths) if lengths else {}
    return dict(
        row,
        frames=frames,
        mean_return_last_100=at[0],
        scored_at=frames,
        run_frames=row["frames"],
        curve=curve,
        **length,
    )


def table(rows: list[dict]) -> list[dict]:
    """Per mode and agent: mean return of the last 100 episodes +- 95% CI over seeds."""
    out = []
    for mode in MODES:
        agents = sorted({r["agent"] for r in rows if r["mode"] == mode}, key=agent_order)
        for agent in agents:
            mine = sorted((r for r in rows if r["mode"] == mode and r["agent"] == agent), key=lambda r: r["seed"])
            finite = [r["mean_return_last_100"] for r in mine if math.isfinite(r["mean_return_last_100"])]
            mean, ci = mean_ci(finite) if finite else (float("nan"), None)
            logged = [r for r in mine if r.get("mean_length_last_100") is not None]
            survival = {}
            if logged:  # older records kept no episode length
                lengths = [r["mean_length_last_100"] for r in logged]
                length_mean, length_ci = mean_ci(lengths)
                survival = dict(
                    mean_length=length_mean, length_ci95=length_ci, per_seed_length=[round(v, 1) for v in lengths]
                )
            out.append(
                dict(
                    mode=mode,
                    agent=agent,
                    seeds=[r["seed"] for r in mine],
                    frames=sorted({r["frames"] for r in mine}),
                    mean_return=mean,
                    ci95=ci,
                    per_seed=[round(r["mean_return_last_100"], 2) for r in mine],
                    **survival,  # the mean episode length of the last 100 episodes, where the runs logged it
                )
            )
    return out


def paired(rows: list[dict]) -> list[dict]:
    """Per mode, each I2A against A2C and against copy-model I2A on the seeds both ran on the same CPU (a seed's
    chain is one CPU's: another CPU gives another run, docs/speed.md): the mean of the per-seed differences of return
    +- 95% CI (the goal: above zero beyond the CI)."""
    out = []
    for mode in MODES:
        by_agent = {}
        for r in rows:
            if r["mode"] == mode:
                by_agent.setdefault(r["agent"], {})[r["seed"]] = r
        for agent in sorted(by_agent, key=agent_order):
            if not agent.startswith("I2A"):
                continue
            for reference in (LABELS["a2c"], LABELS["copy"]):
                mine, theirs = by_agent[agent], by_agent.get(reference, {})
                seeds = sorted(s for s in set(mine) & set(theirs) if mine[s].get("cpu") == theirs[s].get("cpu"))
                if not seeds:
                    continue
                diffs = [mine[s]["mean_return_last_100"] - theirs[s]["mean_return_last_100"] for s in seeds]
                mean, ci = mean_ci(diffs)
                out.append(dict(mode=mode, agent=agent, minus=reference, seeds=seeds, mean_difference=mean, ci95=ci))
    return out


def plot(rows: list[dict], path: str) -> None:
    """The paper's layout: one panel per task; per agent the mean curve over seeds, shaded between the lowest and
    the highest seed. A second row shows the mean episode length (survival) where the runs logged it (records made
    before 2026-12-06 did not keep it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    panels = [("curve", "mean return of the last 100 episodes")]
    if any(r.get("length_curve") for r in rows):
        panels.append(("length_curve", "mean episode length, last 100"))
    fig, axes = plt.subplots(
        len(panels), len(modes), figsize=(4.2 * len(modes), 3.4 * len(panels)), squeeze=False, sharex="col"
    )
    for row_axes, (key, ylabel) in zip(axes, panels):
        for ax, mode in zip(row_axes, modes):
            for agent in sorted({r["agent"] for r in rows if r["mode"] == mode}, key=agent_order):
                curves = [r[key] for r in rows if r["mode"] == mode and r["agent"] == agent and r.get(key)]
                if not curves:
                    continue
                length = min(len(c) for c in curves)
                frames = np.array([f for f, _ in curves[0][:length]]) / 1e6
                values = np.array([[v for _, v in c[:length]] for c in curves])
                line = ax.plot(frames, np.nanmean(values, 0), label=f"{agent} ({len(curves)} seeds)")[0]
                if len(curves) > 1:
                    ax.fill_between(frames, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
            ax.set(title=mode if key == "curve" else "")
            if not ax.lines:
                ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="gray")
        row_axes[0].set_ylabel(ylabel)
    for ax in axes[-1]:
        ax.set_xlabel("million frames")
    for ax in axes[0]:
        if ax.lines:
            ax.legend(fontsize=7)  # per task: its agents and their numbers of seeds
    agents = sorted({r["agent"] for r in rows}, key=agent_order)
    fig.suptitle(f"MiniPacman: {', '.join(agents)} (mean over seeds; band: lowest to highest seed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["regular", "hunt", "ambush"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=AGENTS)
    parser.add_argument("--depths", nargs="+", type=int, default=[1], help="I2A rollout depths")
    parser.add_argument("--num-updates", type=int, default=10_000, help="A2C and I2A updates of 80 frames each")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--frame-cap", type=int, default=1000, help="steps after which an episode is cut")
    parser.add_argument("--reward-scale", type=float, help="every agent's (default: the mode's, MODE_SETTINGS)")
    parser.add_argument("--entropy-coef", type=float, help="every agent's (default: the mode's, MODE_SETTINGS)")
    parser.add_argument("--env-model-updates", type=int, default=0, help="0: the environment model's default")
    parser.add_argument(
        "--scripted-games", type=int, help="the env model's games played by the scripted player (default: the mode's)"
    )
    parser.add_argument("--reward-head", choices=["flat", "pooled"], help="the env model's (default: the mode's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: each script's default)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "i2a_vs_a2c"), help="where the runs and models go")
    parser.add_argument("--no-run", action="store_true", help="only collect the runs already in --work")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the command line only")
    parser.add_argument("--keep", nargs="+", default=[], help="earlier records whose runs count where <work> has none")
    parser.add_argument("--out", help="path prefix: writes <out>.json and <out>.png")
    parser.add_argument("--at-frames", type=int, help="score longer runs by their logged row at this many frames")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not args.no_run:
        sweep(args, work)
    rows = collect(work, args.modes)
    kept_notes = {}
    for keep in args.keep:  # the first record that holds a (mode, agent, seed) gives it
        have = {(r["mode"], r["agent"], r["seed"]) for r in rows}
        earlier = json.loads(Path(keep).read_text())
        kept_notes[keep] = {k: earlier[k] for k in ("machine", "made_by") if k in earlier}
        rows += [
            r for r in earlier["runs"] if r["mode"] in args.modes and (r["mode"], r["agent"], r["seed"]) not in have
        ]
    if not rows:
        raise SystemExit(f"no finished runs of {', '.join(args.modes)} in {work}")
    if args.at_frames:
        rows = [cut(r, args.at_frames) for r in rows]
    summary, differences = table(rows), paired(rows)
    record = dict(
        benchmark="i2a_vs_a2c",
        machine=machine(),
        load_average=os.getloadavg(),
        settings=dict(
            num_updates=args.num_updates,
            num_envs=args.num_envs,
            env_model_updates=args.env_model_updates,
            scripted_games=args.scripted_games,
            reward_head=args.reward_head,
        ),
        **({"kept_from": args.keep, "kept_records": kept_notes} if args.keep else {}),
        table=summary,
        paired=differences,
        runs=rows,
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps(record, indent=2) + "\n")
        plot(rows, f"{args.out}.png")
    print(f"{'mode':8s} {'agent':16s} {'seeds':10s} {'mean return +- 95% CI':24s} {'episode length':16s} per seed")
    for r in summary:
        ci = f" +- {r['ci95']:.1f}" if r["ci95"] is not None else ""
        length = f"{r['mean_length']:.0f}" if "mean_length" in r else "-"
        score = f"{r['mean_return']:.1f}{ci}"
        print(f"{r['mode']:8s} {r['agent']:16s} {str(r['seeds']):10s} {score:24s} {length:16s} {r['per_seed']}")
    for d in differences:
        ci = f" +- {d['ci95']:.1f}" if d["ci95"] is not None else ""
        pair = f"{d['agent']} minus {d['minus']} (paired, seeds {d['seeds']})"
        print(f"{d['mode']:8s} {pair}: {d['mean_difference']:+.1f}{ci}")


if __name__ == "__main__":
    main()
