"""DQN with hindsight experience replay (HER) on the bit-flipping task: "Using hindsight experience replay".

The same DQN as Chapter_14_wo_HER.py (it imports `Env`, `Model`, `ReplayBuffer`, `get_action`,
`compute_td_error` and the training loop from there), plus the book's new block: after each episode, every
transition is stored again with goals the episode did reach. A failed attempt at one goal is a successful
attempt at another, so the network sees reward 0 long before it ever reaches a real target.

Relabelling follows the HER paper's 'future' strategy: for each transition (s_t, a_t, s_t+1) of an episode,
`new_goals` goals are drawn from the states the same episode reached at step t or later; each copy keeps its
own action a_t, and its reward and termination are recomputed for the new goal.

Run it:
    python Chapter_14_HER.py                       # the defaults: 11 bits, 200,000 frames
    python Chapter_14_HER.py --num-bits 30 --max-frames 1500000
    python Chapter_14_HER.py --help                # every hyperparameter

Time of the default run: about 45 s on a 2-core CPU. A network this small is slower on a GPU (about 3.5 minutes
on an H200 shared with other runs; docs/speed.md): use --device cpu there.
Writes (under runs/Chapter_14_HER/<date-time>/ or --run-dir): config.json, metrics.csv (one row per epoch:
success rate, mean return, TD loss, greedy success), learning_curve.png, summary.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.runtime import cli, require, require_memory

import numpy as np

from Chapter_14_wo_HER import Config as DQNConfig
from Chapter_14_wo_HER import Episodes, ReplayBuffer, train


@dataclass
class Config(DQNConfig):
    new_goals: int = 5  # hindsight goals per transition, the 'future' strategy's k (the book: 5; HER paper: 4)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.new_goals >= 0, f"--new-goals must be >= 0 (0 turns hindsight off), got {self.new_goals}")


def hindsight_transitions(episodes: Episodes, new_goals: int, rng: np.random.Generator):
    """The hindsight block: `new_goals` relabelled copies of every transition, goals from its own future.

    Returns (state, action, reward, next_state, terminated, goal), one row per relabelled transition.
    """
    t, i = np.nonzero(episodes.running)  # every real transition: step t of episode i
    t, i = np.repeat(t, new_goals), np.repeat(i, new_goals)
    length = episodes.running.sum(axis=0)[i]  # the length of the episode each transition belongs to
    future = t + (rng.random(len(t)) * (length - t)).astype(np.int64)  # uniform in t .. length - 1
    new_goal = episodes.next_state[future, i]  # a state the episode reached at step t or later

    next_state = episodes.next_state[t, i]
    reached = (next_state == new_goal).all(axis=1)
    reward = np.where(reached, 0.0, -1.0).astype(np.float32)  # recomputed for the new goal
    return episodes.state[t, i], episodes.action[t, i], reward, next_state, reached, new_goal


def main(config: Config) -> dict:
    rows = config.episodes_per_cycle * config.episode_length * config.new_goals  # relabelled per cycle
    require_memory(rows * (3 * config.num_bits + 16) * 4, "--new-goals' relabelled transitions")

    def hindsight(episodes: Episodes, replay_buffer: ReplayBuffer, rng: np.random.Generator) -> None:
        replay_buffer.push(*hindsight_transitions(episodes, config.new_goals, rng))

    return train(config, hindsight=hindsight if config.new_goals > 0 else None, script="Chapter_14_HER")


if __name__ == "__main__":
    cli(main, Config, __doc__)
