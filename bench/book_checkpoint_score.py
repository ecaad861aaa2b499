"""Fidelity check of our MiniPacman: the book's published A2C checkpoint (actor_critic_regular, trained in the
book's own environment) and a uniform random policy, each over 100 episodes of regular mode in ours (10 envs,
the first 10 episodes of each, sampled actions). In the book's environment the checkpoint scores 24.8 and
random play 9.3 (200 episodes, measured with the book's code).

    python bench/book_checkpoint_score.py --book-checkpoints DIR     # or CH14_BOOK_CHECKPOINTS=DIR
"""

from __future__ import annotations

import argparse

from common.minipacman import MiniPacman, episode_returns
from common.runtime import load_checkpoint

import numpy as np
import torch
from benchlib import add_book_checkpoints_option, book_checkpoint, report

from Chapter_14_Imagine_A2C import ActorCritic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_book_checkpoints_option(parser)
    parser.add_argument("--out")
    args = parser.parse_args()
    checkpoint = book_checkpoint(args.book_checkpoints, "actor_critic_regular")
    torch.manual_seed(0)
    model = ActorCritic(MiniPacman.observation_space.shape, MiniPacman.action_space.n)
    load_checkpoint(checkpoint, model)
    rng = np.random.default_rng(0)
    rows = []
    with torch.no_grad():
        for name, policy in (
            ("book's actor_critic_regular", lambda obs: model.act(torch.from_numpy(obs)).squeeze(1).numpy()),
            ("uniform random", lambda obs: rng.integers(5, size=len(obs))),
        ):
            r = episode_returns(policy)
            rows.append(
                dict(
                    policy=name,
                    episodes=len(r),
                    mean_return=float(r.mean()),
                    ci95=float(1.96 * r.std() / np.sqrt(len(r))),
                )
            )
    report(
        "book_checkpoint_score",
        dict(mode="regular", frame_cap=1000, actions="sampled"),
        rows,
        ["policy", "episodes", "mean_return", "ci95"],
        args.out,
    )


if __name__ == "__main__":
    main()
