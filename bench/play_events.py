"""What a trained MiniPacman agent does in its games: per episode its return, length, food, power pills and ghosts
eaten, and whether it died; for an A2C run or an I2A run (copy-model included) of the scripts, from its run directory.

The agent plays `--episodes` fresh games (seeds 2 * 10**6 + i, sampled actions, as in training), 16 at a time.
An I2A agent is rebuilt from the run's config.json and state_dict (its imagination comes with it).

    python bench/play_events.py --run-dir runs/i2a_hunt/i2a_d1_hunt_s1 --episodes 64 --out docs/hunt_events.json
    python bench/play_events.py --run-dir runs/i2a_hunt/a2c_hunt_s1 --episodes 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from benchlib import ROOT, machine

sys.path.insert(0, str(ROOT))


def load_agent(run_dir: Path):
    """(the agent, its mode, its frame cap) from a run directory of Chapter_14_Imagine_A2C.py or Chapter_14_I2A.py."""
    from common.runtime import load_checkpoint

    import torch

    config = json.loads((run_dir / "config.json").read_text())
    mode = config["mode"]
    if (run_dir / f"i2a_{mode}").is_file():
        import Chapter_14_I2A as i2a

        fields = {k: v for k, v in config.items() if k in i2a.Config.__dataclass_fields__}
        cfg = i2a.Config(**dict(fields, device="cpu", run_dir="", overwrite=False))
        agent = i2a.build_agent(cfg, torch.device("cpu"))[0]
        load_checkpoint(run_dir / f"i2a_{mode}", agent, "")
    else:
        from common.minipacman import MiniPacman

        from Chapter_14_Imagine_A2C import ActorCritic

        agent = ActorCritic(MiniPacman.observation_space.shape, MiniPacman.action_space.n)
        load_checkpoint(run_dir / f"actor_critic_{mode}", agent, "")
    return agent.eval(), mode, config.get("frame_cap", 1000)


def play(agent, mode: str, frame_cap: int, episodes: int, num_envs: int = 16) -> list[dict]:
    from common.minipacman import MiniPacman

    import torch

    envs = [MiniPacman(mode, frame_cap) for _ in range(min(num_envs, episodes))]
    states, tallies, started = [None] * len(envs), [None] * len(envs), 0

    def new_game(i: int) -> None:  # env i starts the next game (seed 2 * 10**6 + its number) with a fresh tally
        nonlocal started
        states[i] = envs[i].reset(seed=2 * 10**6 + started)[0]
        tallies[i] = dict(ret=0.0, length=0, food=0, pill=0, ghost_eaten=0, killed=0)
        started += 1

    for i in range(len(envs)):
        new_game(i)
    done, active = [], list(range(len(envs)))
    while active:
        with torch.no_grad():
            actions = agent.act(torch.from_numpy(np.stack([states[i] for i in active]))).view(-1).tolist()
        still = []
        for i, action in zip(active, actions):
            states[i], reward, terminated, truncated, info = envs[i].step(action)
            t = tallies[i]
            t["ret"] += reward
            t["length"] += 1
            for key in ("food", "pill", "ghost_eaten", "killed"):
                t[key] += info[key]
            if terminated or truncated:
                done.append(dict(t, ret=round(t["ret"], 2)))
                if started == episodes:
                    continue  # this env is finished
                new_game(i)
            still.append(i)
        active = still
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--run-dir", nargs="+", required=True, help="run directories of the A2C or I2A script")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--out", help="the JSON record")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    rows = []
    for run_dir in map(Path, args.run_dir):
        torch.manual_seed(0)
        agent, mode, frame_cap = load_agent(run_dir)
        start = time.perf_counter()
        games = play(agent, mode, frame_cap, args.episodes)
        mean = {k: round(float(np.mean([g[k] for g in games])), 3) for k in games[0]}
        rows.append(
            dict(
                run_dir=str(run_dir),
                mode=mode,
                episodes=len(games),
                seconds=round(time.perf_counter() - start, 1),
                mean=mean,
                died=round(float(np.mean([g["killed"] > 0 for g in games])), 3),
                games=games,
            )
        )
        print(
            f"{run_dir.name:24s} {mode:8s} {len(games)} games: "
            + ", ".join(f"{k} {v}" for k, v in mean.items())
            + f", died {rows[-1]['died']}",
            flush=True,
        )
    record = dict(benchmark="play_events", machine=machine(), settings=vars(args), rows=rows)
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
