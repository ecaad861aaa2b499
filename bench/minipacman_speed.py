"""MiniPacman steps per second under a random policy: one env, and 16 envs stepped together by each vector env
(sync: one process; subproc: SubprocVecEnv's worker processes). The book's implementation does about 640
steps per second for one env on a quiet 2-core machine of this kind (measured with the book's code).

    python bench/minipacman_speed.py [--steps 20000] [--out docs/minipacman_speed.json]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

from common.minipacman import MiniPacman
from common.vec_env import make_vec_env

import numpy as np
from benchlib import report

BOOK_STEPS_PER_S = 640


def single(mode: str, steps: int) -> float:
    env = MiniPacman(mode, 1000)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(5, size=steps)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector(kind: str, num_envs: int, steps: int) -> float:
    envs = make_vec_env([partial(MiniPacman, "regular", 1000) for _ in range(num_envs)], kind)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    batches = max(1, steps // num_envs)
    start = time.perf_counter()
    for _ in range(batches):
        envs.step(rng.integers(5, size=num_envs))
    seconds = time.perf_counter() - start
    envs.close()
    return batches * num_envs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for mode in ("regular", "hunt"):
        sps = single(mode, args.steps)
        rows.append(dict(what=f"one env, {mode}", steps_per_s=sps, vs_book=sps / BOOK_STEPS_PER_S))
    for kind in ("sync", "subproc"):
        sps = vector(kind, 16, args.steps)
        rows.append(dict(what=f"16 envs, {kind}", steps_per_s=sps, vs_book=sps / BOOK_STEPS_PER_S))
    report(
        "minipacman_speed",
        dict(steps=args.steps, policy="uniform random", book_steps_per_s=BOOK_STEPS_PER_S),
        rows,
        ["what", "steps_per_s", "vs_book"],
        args.out,
    )


if __name__ == "__main__":
    main()
