"""The README's headline results over seeds: each script's default run, repeated with other seeds, reported as the
mean +- 95% confidence interval (Student's t) with every seed's figure.

Each run is `python <script> <defaults> --seed S --run-dir <work>/<name>_s<S>`; the MiniPacman chain (A2C, then
the environment model trained on that seed's agent, then I2A imagining with that model) shares
`--checkpoint-dir <work>/chain_s<S>`, so seed S's I2A never reads another seed's models. A run whose summary.json
is already in <work> is not run again (a sweep can be stopped and resumed, or its runs made by hand with the same
names); a run that was interrupted is not counted. `--no-run` only collects.

    python bench/headline_seeds.py --work runs/headline_seeds --out docs/headline_seeds.json
    python bench/headline_seeds.py --only her woher --seeds 1 2 3 --work runs/headline_seeds
    python bench/headline_seeds.py --work runs/headline_seeds --no-run --out docs/headline_seeds.json
    python bench/headline_seeds.py --only learn_digits --keep docs/headline_seeds.json --out docs/headline_seeds.json

`--keep FILE` carries over the per-seed rows of an earlier record for every (headline, seed) that <work> does not
hold, so a sweep made on another day (whose run directories are gone) and today's runs make one record.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from benchlib import ROOT, machine, mean_ci, process_times, run_logged

# name: the script, its arguments besides the seed, whether it belongs to the MiniPacman chain, the headline
# metrics (summary.json keys; "frames_to_99" comes from metrics.csv), the seeds, the README's own run.
HEADLINES = {
    "woher": dict(script="Chapter_14_wo_HER.py", args=[], metrics=["success_rate", "frames_to_99"], seeds=[1, 2, 3]),
    "her": dict(script="Chapter_14_HER.py", args=[], metrics=["success_rate", "frames_to_99"], seeds=[1, 2, 3]),
    "learn_digits": dict(
        script="Chapter_14_learn.py", args=["--dataset", "digits"], metrics=["meta_test_accuracy"], seeds=[1, 2, 3]
    ),
    "metasgd": dict(
        script="Chapter_14_MetaSGD-VPG.py", args=[], metrics=["return_after_1_steps"], seeds=[42, 1, 2]
    ),  # 42: the book's seed, the script's default
    "a2c": dict(
        script="Chapter_14_Imagine_A2C.py", args=[], chain=True, metrics=["mean_return_last_100"], seeds=[1, 2, 3]
    ),
    "envmodel": dict(
        script="Chapter_14_Imagination.py",
        args=[],
        chain=True,
        metrics=["pixel_accuracy", "reward_accuracy", "open_loop_5_pixel_accuracy", "open_loop_5_reward_accuracy"],
        seeds=[1, 2, 3],
    ),
    "i2a": dict(script="Chapter_14_I2A.py", args=[], chain=True, metrics=["mean_return_last_100"], seeds=[1, 2, 3]),
}


# Runs published before this sweep existed, counted as their seed's run when <work> has none: where each figure is.
PUBLISHED = {
    ("metasgd", 42): dict(summary="docs/metasgd_summary.json"),
    ("learn_digits", 1): dict(meta_test_accuracy=0.977, source="docs/learn.md (its summary.json was not kept)"),
}


def frames_to_99(run_dir: Path) -> int | None:
    """The first logged frame count at which the greedy success rate reached 0.99 (HER scripts)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("greedy_success_rate") and float(row["greedy_success_rate"]) >= 0.99:
                return int(float(row["frames"]))
    return None


def run_one(name: str, spec: dict, seed: int, work: Path, threads: int | None) -> None:
    run_dir = work / f"{name}_s{seed}"
    command = [sys.executable, str(ROOT / spec["script"]), *spec["args"], "--seed", str(seed)]
    command += ["--run-dir", str(run_dir), "--overwrite"]
    if spec.get("chain"):
        command += ["--checkpoint-dir", str(work / f"chain_s{seed}")]
    if threads:
        command += ["--threads", str(threads)]
    run_logged(command, work / f"{name}_s{seed}")
    (work / f"{name}_s{seed}.machine.json").write_text(json.dumps(machine()) + "\n")  # the CPU the run had


def collect(name: str, spec: dict, seed: int, work: Path) -> dict | None:
    run_dir = work / f"{name}_s{seed}"
    path = run_dir / "summary.json"
    if not path.is_file():
        return published(name, spec, seed)
    summary = json.loads(path.read_text())
    if summary.get("interrupted"):
        return None
    row = dict(headline=name, seed=seed, run_dir=str(run_dir), seconds=summary.get("seconds"))
    for metric in spec["metrics"]:
        row[metric] = frames_to_99(run_dir) if metric == "frames_to_99" else summary[metric]
    timing = work / f"{name}_s{seed}.time"
    if timing.is_file():  # wall and CPU seconds of the whole process (run_one, or GNU time by hand)
        row.update(process_times(timing.read_text()))
    where = work / f"{name}_s{seed}.machine.json"
    if where.is_file():  # the same seed gives other numbers on another kind of CPU (docs/speed.md)
        row["cpu"] = json.loads(where.read_text())["cpu"]
    return row


def published(name: str, spec: dict, seed: int) -> dict | None:
    known = PUBLISHED.get((name, seed))
    if known is None:
        return None
    if "summary" in known:
        summary = json.loads((ROOT / known["summary"]).read_text())
        return dict(headline=name, seed=seed, source=known["summary"], **{m: summary[m] for m in spec["metrics"]})
    return dict(headline=name, seed=seed, **known)


def order(spec: dict, seed: int) -> int:
    """A headline's own seeds first, in its order (the published seed first), then any other seed."""
    return spec["seeds"].index(seed) if seed in spec["seeds"] else len(spec["seeds"]) + seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--work", default=str(ROOT / "runs" / "headline_seeds"), help="where the runs go")
    parser.add_argument("--only", nargs="+", choices=list(HEADLINES), help="these headlines (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, help="instead of each headline's own seeds")
    parser.add_argument("--threads", type=int, help="--threads for every run (default: each script's)")
    parser.add_argument("--no-run", action="store_true", help="only collect the runs already in --work")
    parser.add_argument("--out", help="the JSON record (per-seed figures, mean +- 95%% CI)")
    parser.add_argument("--keep", help="an earlier record whose rows count where <work> has no run")
    args = parser.parse_args()
    kept = []
    if args.keep:  # each kept row names its CPU: its own, or the earlier record's machine
        earlier = json.loads(Path(args.keep).read_text())
        kept = [dict(r, cpu=r.get("cpu") or earlier["machine"]["cpu"]) for r in earlier["runs"]]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = args.only or list(HEADLINES)
    rows, results = [], {}
    for name in HEADLINES:  # in the chain's order: a2c, envmodel, i2a for each seed
        spec = HEADLINES[name]
        seeds = (args.seeds or spec["seeds"]) if name in names else []
        for seed in seeds:
            if not args.no_run and collect(name, spec, seed, work) is None:
                run_one(name, spec, seed, work, args.threads)
            row = collect(name, spec, seed, work)
            if row is not None:
                rows.append(row)
        have = {r["seed"] for r in rows if r["headline"] == name}
        rows += [r for r in kept if r["headline"] == name and r["seed"] not in have]
        if name not in names and not any(r["headline"] == name for r in rows):
            continue
        done = sorted((r for r in rows if r["headline"] == name), key=lambda r: order(spec, r["seed"]))
        results[name] = {"script": spec["script"], "args": spec["args"], "seeds": [r["seed"] for r in done]}
        for metric in spec["metrics"]:
            values = [r[metric] for r in done if r[metric] is not None]
            if values:
                mean, ci = mean_ci([float(v) for v in values])
                results[name][metric] = dict(mean=mean, ci95=ci, n=len(values), values=values)
    record = dict(
        benchmark="headline_seeds", machine=machine(), load_average=os.getloadavg(), results=results, runs=rows
    )
    text = json.dumps(record, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    print()
    for name, result in results.items():
        for metric, value in result.items():
            if isinstance(value, dict):
                ci = f" +- {value['ci95']:.4g}" if value["ci95"] is not None else ""
                print(f"{name:13s} {metric:28s} {value['mean']:.4g}{ci} (n={value['n']}: {value['values']})")


if __name__ == "__main__":
    main()
