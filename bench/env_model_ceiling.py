"""How accurate can a one-step environment model of MiniPacman be at all? The ceiling set by the game's own
randomness, beside the environment models of Chapter_14_Imagination.py (ours and the book's), on the same
held-out transitions.

MiniPacman's ghosts move at random: at level 1 a ghost moves on a step with probability 0.5 (a coin flip that no
model can call), at a junction it sometimes picks its way at random. The "oracle" here knows the game's whole
hidden state (every ghost's heading, the power timer, the level) and predicts, for each pixel and the reward,
the outcome most frequent among `--samples` copies of the game stepped with the same action and fresh random
numbers: the best any predictor of the next frame can do. A model that sees only the frame knows less (a
ghost's heading is not in the picture), so its ceiling is at most the oracle's.

    python bench/env_model_ceiling.py [--ours checkpoints/env_model_regular] [--agent checkpoints/actor_critic_regular]
                                      [--steps 200] [--samples 64] [--out docs/env_model_ceiling.json]
"""

from __future__ import annotations

import argparse
import copy
from functools import partial
from pathlib import Path

from common.vec_env import make_vec_env

import gymnasium as gym
import torch
from benchlib import REPO_CHECKPOINTS, add_book_checkpoints_option, load_script, report

from Chapter_14_Imagine_A2C import make_env

img = load_script("Chapter_14_Imagination.py")


class Oracle(gym.Wrapper):
    """Before each step of the game it wraps, the per-pixel (colour class) and reward-class outcome most frequent
    among `samples` copies of the game stepped with the same action and fresh random numbers."""

    def __init__(self, env, index: int, num_envs: int, samples: int, classes):
        super().__init__(env)
        self.index, self.num_envs, self.samples, self.classes = index, num_envs, samples, classes
        self.pixels, self.rewards = [], []

    def step(self, action):
        frames, rewards = [], []
        for k in range(self.samples):
            twin = copy.deepcopy(self.env.unwrapped)
            twin._rng.seed((len(self.pixels) * self.num_envs + self.index) * 1000 + k)
            frame, reward, *_ = twin.step(int(action))
            frames.append(torch.from_numpy(frame))
            rewards.append(reward)
        self.pixels.append(img.pix_to_target(torch.stack(frames)).view(self.samples, -1).mode(0).values)
        self.rewards.append(self.classes(torch.tensor(rewards)).mode().values)
        return self.env.step(action)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours", default=str(REPO_CHECKPOINTS / "env_model_regular"))
    add_book_checkpoints_option(parser)  # optional here: the book's model is scored when its folder is given
    parser.add_argument("--agent", default=str(REPO_CHECKPOINTS / "actor_critic_regular"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument(
        "--seed", type=int, default=10**6 + 1, help="the held-out seed of Chapter_14_Imagination.py's default run"
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    config = img.Config(actor_critic=args.agent, device="cpu")
    agent, _ = img.load_actor_critic(config, device)
    classes = partial(img.rewards_to_target, "regular")
    torch.manual_seed(0)

    oracles = [
        Oracle(make_env(config.mode, config.frame_cap), i, config.num_envs, args.samples, classes)
        for i in range(config.num_envs)
    ]
    envs = make_vec_env([lambda oracle=oracle: oracle for oracle in oracles], "sync")
    try:
        data = img.collect(
            envs, args.steps, agent, device, seed=args.seed
        )  # the transitions Chapter_14_Imagination.py scores on
    finally:
        envs.close()
    oracle_pixels = [
        torch.stack(column) for column in zip(*(oracle.pixels for oracle in oracles))
    ]  # time-major, like data
    oracle_rewards = [torch.stack(column) for column in zip(*(oracle.rewards for oracle in oracles))]

    next_states = data["next_states"].flatten(0, 1)
    target_pixels = img.pix_to_target(next_states).view(len(next_states), -1)
    target_rewards = classes(data["rewards"].flatten(0, 1))
    hits = torch.cat(oracle_pixels) == target_pixels
    rows = [
        dict(
            predictor="oracle (the game's hidden state)",
            pixel=float(hits.float().mean()),
            frame=float(hits.all(1).float().mean()),
            reward=float((torch.cat(oracle_rewards) == target_rewards).float().mean()),
            transitions=len(target_pixels),
        )
    ]
    book = Path(args.book_checkpoints) / "env_model_regular" if args.book_checkpoints else None
    for name, path in (("our env model", args.ours), ("the book's env model", book)):
        if path and Path(path).exists():
            scores = img.one_step_scores(img.load_env_model(path, "regular", device).eval(), data, "regular")
            rows.append(
                dict(
                    predictor=name,
                    pixel=scores["pixel_accuracy"],
                    frame=scores["frame_accuracy"],
                    reward=scores["reward_accuracy"],
                    transitions=scores["transitions"],
                )
            )
    report(
        "env_model_ceiling",
        dict(
            mode="regular",
            steps=args.steps,
            num_envs=config.num_envs,
            seed=args.seed,
            samples=args.samples,
            agent=Path(args.agent).name,
        ),
        rows,
        ["predictor", "pixel", "frame", "reward", "transitions"],
        args.out,
    )


if __name__ == "__main__":
    main()
