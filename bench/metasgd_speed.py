"""Seconds per meta-training iteration of Chapter_14_MetaSGD-VPG.py (20 tasks x (20 adaptation + 20 validation
episodes of 100 steps), one Adam step) with each way of collecting episodes, in one run:

- upstream: the book's (learn2learn's example's) collection: `l2l.gym.AsyncVectorEnv` of `num_workers`
  subprocess Particles2D-v1 envs, cherry's `Torch` wrapper and `Runner`, one policy call per step of the workers;
- lockstep: the script's default: the 20 episodes of a task side by side as tensors, one policy call per step
  for all of them.

The loss, the baseline and the outer step are the same code in both rows.

    python bench/metasgd_speed.py [--iterations 10] [--upstream-iterations 2] [--out docs/metasgd_speed.json]
"""

from __future__ import annotations

import argparse
import time

import torch
from benchlib import report

from common.runtime import seed_everything
from tests.conftest import load_script

msgd = load_script("Chapter_14_MetaSGD-VPG.py")


def seconds_per_iteration(collector: str, device: str, threads: int, iterations: int, num_workers: int) -> float:
    torch.set_num_threads(threads)
    seed_everything(0)
    config = msgd.Config(collector=collector, device=device, threads=threads, num_workers=num_workers)
    device = torch.device(device)
    runner = msgd.make_runner(config, device)
    _, meta_learner, baseline, opt = msgd.make_learners(config, device)
    tasks = msgd.task_sampler(0)
    try:
        msgd.meta_step(meta_learner, opt, tasks.sample_tasks(config.meta_bsz), runner, baseline, config)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            msgd.meta_step(meta_learner, opt, tasks.sample_tasks(config.meta_bsz), runner, baseline, config)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / iterations
    finally:
        if hasattr(runner, "close"):
            runner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations of the lockstep rows")
    parser.add_argument("--upstream-iterations", type=int, default=2, help="timed iterations of the upstream row (about a minute each)")
    parser.add_argument("--num-workers", type=int, default=2, help="subprocess envs of the upstream row (the book: 2)")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    upstream = seconds_per_iteration("upstream", "cpu", 1, args.upstream_iterations, args.num_workers)
    rows.append(dict(collector="upstream", device="cpu", threads=1, s_per_iteration=upstream, minutes_for_200=upstream * 200 / 60, speedup=1.0))
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for threads in ((1, 2) if device == "cpu" else (1,)):
            s = seconds_per_iteration("lockstep", device, threads, args.iterations, args.num_workers)
            rows.append(dict(collector="lockstep", device=device, threads=threads, s_per_iteration=s, minutes_for_200=s * 200 / 60,
                             speedup=upstream / s))
    report("metasgd_speed", dict(meta_bsz=20, adapt_bsz=20, adapt_steps=1, max_steps=100, num_workers=args.num_workers,
                                 iterations=args.iterations, upstream_iterations=args.upstream_iterations), rows,
           ["collector", "device", "threads", "s_per_iteration", "minutes_for_200", "speedup"], args.out)


if __name__ == "__main__":
    main()
