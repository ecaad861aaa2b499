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
from pathlib import Path

import numpy as np
import torch
from benchlib import ROOT, report

from tests.conftest import load_script

img = load_script("Chapter_14_Imagination.py")
BOOK_MODEL = ROOT.parent / "shared" / "book-checkpoints" / "env_model_regular"


def oracle_next(env, action: int, samples: int, seed: int) -> tuple[torch.Tensor, list[float]]:
    """The next frames and rewards of `samples` copies of `env` (a MiniPacman) stepped with `action`."""
    frames, rewards = [], []
    for k in range(samples):
        twin = copy.deepcopy(env)
        twin._rng.seed(seed * 1000 + k)
        frame, reward, *_ = twin.step(action)
        frames.append(torch.from_numpy(frame))
        rewards.append(reward)
    return torch.stack(frames), rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours", default="checkpoints/env_model_regular")
    parser.add_argument("--book", default=str(BOOK_MODEL))
    parser.add_argument("--agent", default="checkpoints/actor_critic_regular")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=10**6 + 1, help="the held-out seed of Chapter_14_Imagination.py's default run")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    config = img.Config(actor_critic=args.agent, device="cpu", vec_env="sync")
    agent = img.load_actor_critic(config, device)
    classes = img.RewardClasses("regular", device)
    torch.manual_seed(0)

    envs = img.make_envs(config)
    columns = {name: [] for name in ("states", "actions", "rewards", "next_states", "dones")}
    oracle_pixels, oracle_rewards = [], []
    states, _ = envs.reset(seed=args.seed)
    states = torch.from_numpy(states)
    try:
        for t in range(args.steps):
            with torch.no_grad():
                actions = agent.act(states).view(-1)
            for i, env in enumerate(envs.envs):
                frames, rewards = oracle_next(env.unwrapped, int(actions[i]), args.samples, seed=t * len(envs.envs) + i)
                oracle_pixels.append(img.pix_to_target(frames).view(args.samples, -1).mode(0).values)
                oracle_rewards.append(classes(torch.tensor(rewards)).mode().values)
            next_states, rewards, terminated, truncated, info = envs.step(actions.numpy())
            dones = terminated | truncated
            targets = torch.from_numpy(next_states).clone()
            for i in np.flatnonzero(dones):
                targets[i] = torch.from_numpy(info["final_obs"][i])
            for name, value in zip(columns, (states, actions, torch.from_numpy(rewards).float(), targets, torch.from_numpy(dones))):
                columns[name].append(value)
            states = torch.from_numpy(next_states)
    finally:
        envs.close()
    data = {name: torch.stack(column) for name, column in columns.items()}

    next_states = data["next_states"].flatten(0, 1)
    target_pixels = img.pix_to_target(next_states).view(len(next_states), -1)
    target_rewards = classes(data["rewards"].flatten(0, 1))
    hits = torch.stack(oracle_pixels) == target_pixels
    rows = [dict(predictor="oracle (the game's hidden state)", pixel=float(hits.float().mean()), frame=float(hits.all(1).float().mean()),
                 reward=float((torch.stack(oracle_rewards) == target_rewards).float().mean()), transitions=len(target_pixels))]
    for name, path in (("our env model", args.ours), ("the book's env model", args.book)):
        if Path(path).exists():
            scores = img.one_step_scores(img.load_env_model(path, "regular", device).eval(), data, classes)
            rows.append(dict(predictor=name, pixel=scores["pixel_accuracy"], frame=scores["frame_accuracy"],
                             reward=scores["reward_accuracy"], transitions=scores["transitions"]))
    report("env_model_ceiling", dict(mode="regular", steps=args.steps, num_envs=config.num_envs, seed=args.seed, samples=args.samples,
                                     agent=Path(args.agent).name), rows, ["predictor", "pixel", "frame", "reward", "transitions"], args.out)


if __name__ == "__main__":
    main()
