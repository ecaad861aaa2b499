"""RolloutStorage: the book's buffer of `num_steps` steps of `num_envs` environments for A2C, on the device.

The book's interface: `states[0].copy_(first_state)`, `insert(step, state, action, reward, mask)`,
`compute_returns(next_value, gamma)`, `after_update()`. One addition for correct returns:
`insert(..., truncation_value=v)`, where v is the critic's value of the real last observation of each
sub-env whose episode was cut by the frame cap (0 elsewhere). The return then bootstraps through a
truncation (the episode did not really end there) and stops at a real termination (mask 0, no value).

Also what the A2C and I2A loops share: `EpisodeStats` (returns of finished episodes) and `truncation_values`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch


class RolloutStorage:
    def __init__(self, num_steps: int, num_envs: int, state_shape, device: torch.device | str = "cpu"):
        self.num_steps = num_steps
        self.states = torch.zeros(num_steps + 1, num_envs, *state_shape, device=device)
        self.rewards = torch.zeros(num_steps, num_envs, 1, device=device)
        self.masks = torch.ones(num_steps + 1, num_envs, 1, device=device)  # 0: the episode ended before this state
        self.truncation_values = torch.zeros(num_steps, num_envs, 1, device=device)
        self.actions = torch.zeros(num_steps, num_envs, 1, dtype=torch.long, device=device)
        self.returns = torch.zeros(num_steps + 1, num_envs, 1, device=device)

    def insert(self, step: int, state, action, reward, mask, truncation_value=None) -> None:
        """Store step `step`: the state after it, the action and reward of it, and its mask (0 where the
        episode ended in this step, by termination or truncation)."""
        self.states[step + 1].copy_(state)
        self.actions[step].copy_(action)
        self.rewards[step].copy_(reward)
        self.masks[step + 1].copy_(mask)
        if truncation_value is None:
            self.truncation_values[step].zero_()
        else:
            self.truncation_values[step].copy_(truncation_value)

    def after_update(self) -> None:
        """The last state and mask of this rollout start the next one."""
        self.states[0].copy_(self.states[-1])
        self.masks[0].copy_(self.masks[-1])

    def compute_returns(self, next_value: torch.Tensor, gamma: float) -> torch.Tensor:
        """Discounted returns, bootstrapped with `next_value` after the last step, with the value of the real
        last observation at a truncation, and with nothing after a termination."""
        self.returns[-1] = next_value
        for step in reversed(range(self.num_steps)):
            following = self.returns[step + 1] * self.masks[step + 1] + self.truncation_values[step]
            self.returns[step] = self.rewards[step] + gamma * following
        return self.returns[:-1]


class EpisodeStats:
    """The running return and length of each env's episode, and those of the last 100 finished episodes."""

    def __init__(self, num_envs: int):
        self.episode_rewards = np.zeros(num_envs)
        self.episode_lengths = np.zeros(num_envs, dtype=np.int64)
        self.finished_returns: deque = deque(maxlen=100)
        self.finished_lengths: deque = deque(maxlen=100)
        self.all_returns: list[tuple[int, float]] = []  # (update, return) of every finished episode

    def update(self, reward: np.ndarray, done: np.ndarray, i_update: int) -> None:
        self.episode_rewards += reward
        self.episode_lengths += 1
        for i in np.flatnonzero(done):
            self.finished_returns.append(self.episode_rewards[i])
            self.finished_lengths.append(self.episode_lengths[i])
            self.all_returns.append((i_update, float(self.episode_rewards[i])))
        self.episode_rewards[done] = 0
        self.episode_lengths[done] = 0

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.finished_returns)) if self.finished_returns else float("nan")

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.finished_lengths)) if self.finished_lengths else float("nan")


@torch.no_grad()
def truncation_values(value_of, info: dict, truncated: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """For `RolloutStorage.insert`: the critic's value (`value_of(states)`) of the real last observation of each
    env whose episode the frame cap cut in this step, 0 for the others; None when no episode was cut."""
    if not truncated.any():
        return None
    final = torch.from_numpy(np.stack(info["final_obs"][truncated])).to(device)
    values = torch.zeros(len(truncated), 1, device=device)
    values[torch.from_numpy(truncated).to(device), 0] = value_of(final).view(-1)
    return values
