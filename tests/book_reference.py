"""The book's own code for the pieces whose bugs we test, transcribed from the chapter's fragments and made to
run on today's Python (`raise RESET` kept: it is one of the bugs). The tests show that each check fails on
these and passes on ours. Nothing here is used by the scripts."""

from __future__ import annotations

import random

import numpy as np
import torch


class BookEnv:
    """Chapter_14_wo_HER.py / Chapter_14_HER.py, `Env`, as printed in the book."""

    def __init__(self, num_bits):
        self.num_bits = num_bits

    def reset(self):
        self.done = False
        self.num_steps = 0
        self.state = np.random.randint(2, size=self.num_bits)
        self.target = np.random.randint(2, size=self.num_bits)
        return self.state, self.target

    def step(self, action):
        if self.done:
            raise RESET  # noqa: F821  (the book's undefined name)
        self.state[action] = 1 - self.state[action]
        if self.num_steps > self.num_bits + 1:
            self.done = True
        self.num_steps += 1
        if np.sum(self.state == self.target) == self.num_bits:
            self.done = True
            return np.copy(self.state), 0, self.done, {}
        else:
            return np.copy(self.state), -1, self.done, {}


def book_get_action(model, state, goal, num_bits, epsilon=0.1):
    """The book's `get_action`: the epsilon argument is never read."""
    if random.random() < 0.1:
        return random.randrange(num_bits)
    state = torch.FloatTensor(state).unsqueeze(0)
    goal = torch.FloatTensor(goal).unsqueeze(0)
    q_value = model(state, goal)
    return q_value.max(1)[1].item()


def book_hindsight(episode, action, num_bits, new_goals):
    """The book's hindsight block. `episode` is its list of (state, reward, done, next_state, goal) and `action`
    the loop variable left over from the episode, i.e. the episode's last action. Returns what it pushes:
    (state, action, reward, next_state, done, goal) tuples."""
    pushed = []
    for state, reward, done, next_state, goal in episode:
        for t in np.random.choice(num_bits, new_goals):
            try:
                episode[t]
            except IndexError:
                continue
            new_goal = episode[t][-2]
            if np.sum(next_state == new_goal) == num_bits:
                reward = 0
            else:
                reward = -1
            pushed.append((state, action, reward, next_state, done, new_goal))
    return pushed
