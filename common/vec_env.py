"""SubprocVecEnv: the book's vector of environments in worker processes, on gymnasium's AsyncVectorEnv.

The book's meaning is kept: `envs = SubprocVecEnv([make_env for _ in range(16)])`, and a sub-env whose
episode ends in a `step` resets itself inside that same step, so the observation returned for it is the
first one of its next episode. The real last observation of the finished episode is in
`info["final_obs"][i]` (where `info["_final_obs"][i]` is True). The step returns gymnasium's five values:
observations, rewards, terminated, truncated, info.

gymnasium does the process plumbing: a worker that raises surfaces as an exception here, and `close()` ends
every worker. `make_vec_env(env_fns, "sync")` gives the same semantics in this process, which is faster for a
cheap environment on few cores (bench/a2c_speed.py).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from functools import partial

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.vector.async_vector_env import AsyncState

VEC_ENVS = ("subproc", "sync")


class SubprocVecEnv(AsyncVectorEnv):
    """`num_envs` environments, each in its own process, reset inside the step that ends their episode."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], context: str | None = None):
        env_fns = [partial(quiet_worker, env_fn) for env_fn in env_fns]
        super().__init__(env_fns, autoreset_mode=AutoresetMode.SAME_STEP, context=context)

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        if self._state != AsyncState.DEFAULT:  # stopped in the middle of a step (Ctrl+C): its answers are lost
            self._state, terminate = AsyncState.DEFAULT, True
        super().close_extras(timeout, terminate)


def quiet_worker(env_fn: Callable[[], gym.Env]) -> gym.Env:
    """Runs in each worker process before its environment is made: Ctrl+C and a hangup, which reach the whole
    terminal's process group, are left to the main process, which closes the workers itself; SIGTERM ends a
    worker at once, without the main process's handler (inherited through fork) and its traceback."""
    if multiprocessing.parent_process() is not None:  # a worker (AsyncVectorEnv also makes one env in the main process)
        for signum in (signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return env_fn()


def make_vec_env(env_fns: list[Callable[[], gym.Env]], kind: str = "subproc") -> gym.vector.VectorEnv:
    """`subproc`: SubprocVecEnv (worker processes); `sync`: the same semantics, stepped in this process."""
    if kind == "subproc":
        return SubprocVecEnv(env_fns)
    if kind == "sync":
        return SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
    raise ValueError(f"unknown vector env {kind!r}: use {' or '.join(VEC_ENVS)}")
