"""Seconds per meta-training iteration of Chapter_14_MetaSGD-VPG.py (20 tasks x (20 adaptation + 20 validation
episodes of 100 steps), one Adam step) with each way of collecting episodes, in one run:

- upstream: the book's (learn2learn's example's) collection: `l2l.gym.AsyncVectorEnv` of `num_workers`
  subprocess Particles2D-v1 envs, cherry's `Torch` wrapper and `Runner`, one policy call per step of the workers;
- lockstep: the script's way (`LockstepRunner`): the 20 episodes of a task side by side as tensors, one policy
  call per step for all of them.

The upstream collector lives here only (`UpstreamRunner`): the script does not need it.

The loss, the baseline and the outer step are the same code in both rows.

    python bench/metasgd_speed.py [--iterations 10] [--upstream-iterations 2] [--out docs/metasgd_speed.json]
"""

from __future__ import annotations

import argparse
import time

from common.runtime import seed_everything

import cherry as ch
import learn2learn as l2l
import torch
from benchlib import load_script, report

msgd = load_script("Chapter_14_MetaSGD-VPG.py")


class UpstreamRunner:
    """The book's collection: learn2learn's `AsyncVectorEnv` of `num_workers` subprocess Particles2D-v1 envs,
    cherry's `Torch` wrapper and `Runner`, then the flat episodes regrouped into the script's `Episodes` batch,
    so the script's loss, baseline and outer step run unchanged on them."""

    def __init__(self, num_workers: int, seed: int):
        import gym

        self.vec_env = l2l.gym.AsyncVectorEnv([lambda: gym.make("Particles2D-v1") for _ in range(num_workers)])
        self.vec_env.seed(seed)
        self.env = ch.envs.Torch(self.vec_env)

    def set_task(self, task: dict) -> None:
        self.env.set_task(task)
        self.env.reset()

    def run(self, policy, episodes: int) -> msgd.Episodes:
        replay = ch.envs.Runner(self.env).run(lambda state: policy(state.float()).detach(), episodes=episodes)
        return episodes_from_replay(replay)

    def close(self) -> None:
        self.vec_env.close()


def episodes_from_replay(replay) -> msgd.Episodes:
    """Cherry's flat, episode after episode, replay -> the padded time-major `Episodes` the loss takes."""
    dones = replay.done().view(-1)
    ends = (dones > 0).nonzero().view(-1).tolist()
    starts = [0] + [e + 1 for e in ends[:-1]]
    length = max(e - s + 1 for s, e in zip(starts, ends))
    fields = [replay.state(), replay.action(), replay.reward().view(-1), dones, replay.next_state()]
    padded = []
    for i, field in enumerate(fields):
        out = torch.zeros((length, len(ends)) + field.shape[1:], dtype=torch.float32)
        for b, (s, e) in enumerate(zip(starts, ends)):
            out[: e - s + 1, b] = field[s : e + 1].float().view((e - s + 1,) + field.shape[1:])
            if i == 3:
                out[e - s + 1 :, b] = 1.0
        padded.append(out)
    mask = torch.zeros(length, len(ends), dtype=torch.bool)
    for b, (s, e) in enumerate(zip(starts, ends)):
        mask[: e - s + 1, b] = True
    return msgd.Episodes(*padded, mask)


def seconds_per_iteration(collector: str, device: str, threads: int, iterations: int, num_workers: int) -> float:
    torch.set_num_threads(threads)
    seed_everything(0)
    config = msgd.Config(device=device, threads=threads)
    device = torch.device(device)
    runner = (
        UpstreamRunner(num_workers, seed=0)
        if collector == "upstream"
        else msgd.LockstepRunner(config.adapt_bsz, device)
    )
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
    parser.add_argument(
        "--upstream-iterations",
        type=int,
        default=2,
        help="timed iterations of the upstream row (~30 s each)",
    )
    parser.add_argument("--num-workers", type=int, default=2, help="subprocess envs of the upstream row (the book: 2)")
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    upstream = seconds_per_iteration("upstream", "cpu", 1, args.upstream_iterations, args.num_workers)
    rows.append(
        dict(
            collector="upstream",
            device="cpu",
            threads=1,
            s_per_iteration=upstream,
            minutes_for_200=upstream * 200 / 60,
            speedup=1.0,
        )
    )
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for threads in (1, 2) if device == "cpu" else (1,):
            s = seconds_per_iteration("lockstep", device, threads, args.iterations, args.num_workers)
            rows.append(
                dict(
                    collector="lockstep",
                    device=device,
                    threads=threads,
                    s_per_iteration=s,
                    minutes_for_200=s * 200 / 60,
                    speedup=upstream / s,
                )
            )
    report(
        "metasgd_speed",
        dict(
            meta_bsz=20,
            adapt_bsz=20,
            adapt_steps=1,
            max_steps=100,
            num_workers=args.num_workers,
            iterations=args.iterations,
            upstream_iterations=args.upstream_iterations,
        ),
        rows,
        ["collector", "device", "threads", "s_per_iteration", "minutes_for_200", "speedup"],
        args.out,
    )


if __name__ == "__main__":
    main()
