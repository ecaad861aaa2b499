"""Can a reward be predicted from the frame and the action at all? The environment model's reward classes against
the best any predictor could do, transition by transition (issue 15: why ghosts eaten are never predicted).

Held-out games are played as `Chapter_14_Imagination.py` plays them (the agent, the first `--scripted-games` games by
MiniPacman's scripted player; seeds 10**6 + seed + i). Before each step the game is copied `--replays` times and
each copy takes the same action with fresh step-level randomness (the ghosts' moves): the share of copies that gave
each reward class is P(class | the game's full state, the action). The full state holds more than the frame does
(each ghost's heading, the power pill's timer to the step), so a predictor that only sees the frame can do no better
than a classifier that answers the most likely class under that P: its accuracy per class ("best possible") is an
upper bound for the model's. Beside it, the model's own accuracy per class, on the same transitions, and the
probability it gives to the true class.

    python bench/env_model_events.py --mode hunt --env-model runs/i2a_hunt/chain_hunt_s1/env_model_hunt \\
        --actor-critic runs/i2a_hunt/chain_hunt_s1/actor_critic_hunt --scripted-games 8 --out docs/env_model_events
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from benchlib import ROOT, machine

sys.path.insert(0, str(ROOT))


def play(mode: str, num_envs: int, steps: int, scripted: int, actor_critic, replays: int, seed: int, frame_cap: int):
    """Held-out play with, for every transition, the frame, the action, the reward class it gave and the share of
    `replays` copies of the game (same action, fresh randomness) that gave each class."""
    from common.minipacman import MiniPacman, reward_classes

    import torch

    values = np.array(reward_classes(mode))
    envs = [MiniPacman(mode, frame_cap) for _ in range(num_envs)]
    states = np.stack([env.reset(seed=10**6 + seed + i)[0] for i, env in enumerate(envs)])
    rng = np.random.default_rng(seed)
    out = dict(states=[], actions=[], classes=[], p=[])
    for _ in range(steps):
        with torch.no_grad():
            actions = actor_critic.act(torch.from_numpy(states)).view(-1).numpy()
        actions[:scripted] = [env.scripted_action() for env in envs[:scripted]]
        next_states = []
        for env, state, action in zip(envs, states, actions):
            counts = np.zeros(len(values))
            for _ in range(replays):
                twin = copy.deepcopy(env)
                twin._rng.seed(int(rng.integers(2**63)))  # fresh randomness for the ghosts' moves
                counts[np.abs(values - twin.step(action)[1]).argmin()] += 1
            obs, reward, terminated, truncated, _ = env.step(action)
            out["states"].append(state)
            out["actions"].append(int(action))
            out["classes"].append(int(np.abs(values - reward).argmin()))
            out["p"].append(counts / replays)
            next_states.append(env.reset()[0] if terminated or truncated else obs)
        states = np.stack(next_states)
    return {k: np.array(v) for k, v in out.items()}, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--mode", default="hunt")
    parser.add_argument("--env-model", required=True, help="the environment model (Chapter_14_Imagination.py)")
    parser.add_argument("--actor-critic", required=True, help="the agent that plays the other games")
    parser.add_argument("--scripted-games", type=int, default=8)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="held-out steps of every game (the script's 200)")
    parser.add_argument("--replays", type=int, default=32, help="copies of the game per transition")
    parser.add_argument("--frame-cap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="path prefix: writes <out>.json")
    args = parser.parse_args()

    import torch

    from Chapter_14_Imagination import load_actor_critic, load_env_model, onehot_actions

    torch.set_num_threads(1)
    device = torch.device("cpu")
    model = load_env_model(args.env_model, args.mode, device).eval()
    agent, _ = load_actor_critic(argparse.Namespace(actor_critic=args.actor_critic), device)
    torch.manual_seed(args.seed)  # after building the models: the same games whichever model is scored
    start = time.perf_counter()
    data, values = play(
        args.mode, args.num_envs, args.steps, args.scripted_games, agent, args.replays, args.seed, args.frame_cap
    )
    with torch.no_grad():
        states = torch.from_numpy(data["states"])
        planes = onehot_actions(torch.from_numpy(data["actions"]), model.num_actions, model.in_shape)
        probs = torch.cat(
            [model(torch.cat([s, a], 1))[1].softmax(1) for s, a in zip(states.split(512), planes.split(512))]
        )
    probs = probs.numpy()
    truth, p = data["classes"], data["p"]
    best = p.argmax(1)  # the best classifier that knew the full state: the most likely class under P
    rows = []
    for c, value in enumerate(values):
        of_class = truth == c
        if not of_class.any():
            continue
        sure = of_class & (p[:, c] >= 0.99)  # transitions where the full state settles the reward
        rows.append(
            dict(
                reward=float(value),
                count=int(of_class.sum()),
                best_possible_accuracy=float((best[of_class] == c).mean()),
                share_certain=float(sure.sum() / of_class.sum()),
                mean_p_true_class=float(p[of_class, c].mean()),
                model_accuracy=float((probs[of_class].argmax(1) == c).mean()),
                model_accuracy_where_certain=float((probs[sure].argmax(1) == c).mean()) if sure.any() else None,
                model_mean_prob_true_class=float(probs[of_class, c].mean()),
                model_predicted_count=int((probs.argmax(1) == c).sum()),
            )
        )
    record = dict(
        benchmark="env_model_events",
        machine=machine(),
        settings=dict(vars(args), held_out="seeds 10**6 + seed + i, as Chapter_14_Imagination.py's"),
        seconds=round(time.perf_counter() - start, 1),
        transitions=len(truth),
        rows=rows,
    )
    if args.out:
        Path(f"{args.out}.json").parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    cols = [
        "reward",
        "count",
        "best_possible_accuracy",
        "share_certain",
        "model_accuracy",
        "model_mean_prob_true_class",
    ]
    print("  ".join(cols))
    for r in rows:
        print("  ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
