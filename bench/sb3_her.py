"""Our Chapter_14_HER.py against Stable-Baselines3's DQN + HerReplayBuffer on bit flipping, random goal per episode.

Both sides run the HER paper's schedule at the same settings: concat(state, goal) -> 256 ReLU -> one Q-value per
bit, Adam lr 1e-3, gamma 0.98, 16 episodes of length n then 40 gradient steps of batch 128 per cycle, soft target
update (polyak 0.05) once per cycle, epsilon 0.1 throughout, buffer 10^6, k = 5 'future' goals. One more SB3 row
at 11 bits uses SB3's documented HER example (n_sampled_goal=4, every other setting DQN's default).

Each run is a subprocess with one torch thread, ours and SB3's alternating: ours is `python Chapter_14_HER.py`,
SB3's is this script again (`--child`). Measured for each run: wall seconds and CPU seconds (getrusage of the
finished child), the greedy success rate on 100 fresh random-goal episodes every 50 cycles (ours: metrics.csv;
SB3: a callback every 50 x 16 episodes), the frames and CPU seconds to the first greedy success >= 0.99, and
the final greedy success. Results are written after every run; a second call with the same --out skips the runs
already there (and keeps every row it finds, rows marked `stopped_early` too: docs/sb3_her.md says which and why).

    pip install -r bench/requirements.txt
    python bench/sb3_her.py --out docs/sb3_her.json --png docs/sb3_her.png [--bits 11 25 40] [--seeds 1]
    python bench/sb3_her.py --bits 11 --seeds 1 2 3 --out docs/sb3_her.json --png docs/sb3_her.png
    python bench/sb3_her.py --quick          # tiny budgets: only checks that the command line works
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT, machine, report, run_polling

# Frames per run, both sides alike. docs/her_bits.json: ours reached greedy success >= 0.99 after about 11,700
# (11 bits, README), 123,000-134,000 (25) and 489,000-510,000 frames (40); each budget below is at least 1.5
# times that. 11 bits gets more, so its curve has more than a few points.
BUDGETS = {11: 40_000, 25: 210_000, 40: 770_000}
# A frame cap for SB3 where its full budget does not fit a session (it used 3 to 5 times ours' CPU seconds per frame
# here, docs/sb3_her.md); the table then says what it reached there. Empty: SB3 gets the same budget as ours.
SB3_CAPS: dict[int, int] = {}
QUICK_BUDGET = 2_000  # --quick: a few cycles, only to check the command line
DEFAULTS_BITS = 11  # the SB3-defaults row runs at this size only
DEFAULTS_BUDGET = 100_000  # its budget: DQN's defaults train less per frame, so more than ours needs
EPOCH_EPISODES = 50 * 16  # greedy evaluation every 50 cycles of 16 episodes, as ours does
EVAL_EPISODES = 100
COLUMNS = [
    "num_bits",
    "side",
    "seed",
    "budget",
    "frames",
    "frames_to_99",
    "cpu_s_to_99",
    "final_success",
    "wall_s",
    "cpu_s",
]


# ---------------------------------------------------------------------------------------------------------------
# The SB3 side: runs in a child process (`--child`), imports stable_baselines3 only there
# ---------------------------------------------------------------------------------------------------------------


def sb3_child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from stable_baselines3 import DQN, HerReplayBuffer
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.envs import BitFlippingEnv

    torch.set_num_threads(1)
    n, run_dir = args.num_bits, Path(args.run_dir)

    class RandomGoalBitFlippingEnv(BitFlippingEnv):
        """SB3's BitFlippingEnv keeps one goal (all ones) for ever; ours draws a new random goal every episode."""

        def reset(self, *, seed=None, options=None):
            _, info = super().reset(seed=seed, options=options)  # draws the random start state
            # The env's own MultiBinary space, seeded through DQN(seed=...) (older SB3 releases: obs_space).
            space = self._obs_space if hasattr(self, "_obs_space") else self.obs_space
            self.desired_goal = space.sample().astype(self.desired_goal.dtype)
            return self._get_obs(), info

    def greedy_success(model, seed: int) -> float:
        """Greedy success on EVAL_EPISODES fresh random-goal episodes, played side by side (as ours evaluates).

        The same dynamics as the env (flip bit a; success when state == goal; at most n steps) in numpy, so that
        one policy call serves all 100 episodes.
        """
        rng = np.random.default_rng(seed)
        state = rng.integers(0, 2, (EVAL_EPISODES, n)).astype(np.int8)
        goal = rng.integers(0, 2, (EVAL_EPISODES, n)).astype(np.int8)
        done = np.zeros(EVAL_EPISODES, dtype=bool)
        for _ in range(n):
            obs = {"observation": state, "achieved_goal": state, "desired_goal": goal}
            action, _ = model.predict(obs, deterministic=True)
            running = np.flatnonzero(~done)
            state[running, action[running]] ^= 1
            done |= (state == goal).all(axis=1)
        return float(done.mean())

    curve = []  # rows of (frames, episodes, greedy_success_rate)

    def log(model, episodes: int, seed: int) -> None:
        success = greedy_success(model, seed)
        curve.append(dict(frames=model.num_timesteps, episodes=episodes, greedy_success_rate=success))
        # Rewritten whole, then renamed: the parent polls this file and must never read half a file.
        tmp = run_dir / "curve.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(curve[0]))
            writer.writeheader()
            writer.writerows(curve)
        tmp.replace(run_dir / "curve.csv")

    class GreedyEval(BaseCallback):
        """Evaluate at the start of the rollout that follows every EPOCH_EPISODES-th episode.

        That is after the gradient steps of the 50th cycle, where ours evaluates too (`on_step` would be before them).
        """

        def __init__(self):
            super().__init__()
            self.episodes = 0
            self.next_eval = EPOCH_EPISODES

        def _on_step(self) -> bool:
            self.episodes += int(np.sum(self.locals["dones"]))
            return True

        def _on_rollout_start(self) -> None:
            if self.episodes >= self.next_eval:
                self.next_eval += EPOCH_EPISODES
                log(self.model, self.episodes, seed=10**6 + len(curve) + 1)

    env = RandomGoalBitFlippingEnv(n_bits=n, continuous=False, max_steps=n)  # episode length n, as ours
    her = dict(replay_buffer_class=HerReplayBuffer)
    if args.side == "sb3":
        # Ours' settings, one by one. SB3 DQN counts target_update_interval in env steps (`_on_step` runs after
        # every env.step; with n_envs=1 the polyak update happens every target_update_interval steps). A cycle is
        # 16 episodes of at most n steps, so 16 * n steps is one update per cycle while episodes run to their time
        # limit; once the agent reaches goals early, episodes get shorter and this updates less often than once
        # per cycle (ours updates after every cycle whatever its length). SB3 has no per-cycle option.
        model = DQN(
            "MultiInputPolicy",
            env,
            **her,
            replay_buffer_kwargs=dict(n_sampled_goal=5, goal_selection_strategy="future"),  # k = 5, 'future'
            policy_kwargs=dict(net_arch=[256]),  # one hidden layer of 256 ReLU units
            learning_rate=1e-3,
            gamma=0.98,
            batch_size=128,
            buffer_size=1_000_000,
            train_freq=(16, "episode"),
            gradient_steps=40,  # 16 episodes, then 40 gradient steps
            tau=0.05,
            target_update_interval=16 * n,  # polyak 0.05, once per 16 full-length episodes
            exploration_initial_eps=0.1,
            exploration_final_eps=0.1,
            exploration_fraction=1.0,  # epsilon 0.1 throughout
            learning_starts=0,  # trains after the first 16 episodes (train_freq), as ours does
            seed=args.seed,
            device="cpu",
            verbose=0,
        )
    else:
        # SB3's documented HER example (docs/modules/her.rst): only the HER buffer's two arguments are set.
        model = DQN(
            "MultiInputPolicy",
            env,
            **her,
            replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
            seed=args.seed,
            device="cpu",
            verbose=0,
        )
    callback = GreedyEval()
    model.learn(total_timesteps=args.frames, callback=callback)
    final = greedy_success(model, seed=2**31 - 1 - args.seed)  # the final figure, as ours: 100 fresh episodes
    if not curve or curve[-1]["frames"] != model.num_timesteps:
        log(model, callback.episodes, seed=10**6 + len(curve) + 1)
    (run_dir / "summary.json").write_text(json.dumps(dict(success_rate=final, frames=model.num_timesteps)))


# ---------------------------------------------------------------------------------------------------------------
# The parent: runs both sides as subprocesses, measures them the same way
# ---------------------------------------------------------------------------------------------------------------


def run_one(num_bits: int, side: str, seed: int, budget: int) -> dict:
    """One run in a subprocess; each new greedy-evaluation row is stamped with the child's wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = str(Path(tmp, "run"))  # a new folder, as our script asks (its stderr is kept beside it)
        Path(run_dir).mkdir()
        if side == "ours":
            command = [
                sys.executable,
                str(ROOT / "Chapter_14_HER.py"),
                "--num-bits",
                str(num_bits),
                "--max-frames",
                str(budget),
                "--seed",
                str(seed),
                "--threads",
                "1",
                "--device",
                "cpu",
                "--run-dir",
                run_dir,
            ]
            curve_file = Path(run_dir, "metrics.csv")
        else:
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                "--side",
                side,
                "--num-bits",
                str(num_bits),
                "--frames",
                str(budget),
                "--seed",
                str(seed),
                "--run-dir",
                run_dir,
            ]
            curve_file = Path(run_dir, "curve.csv")
        env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

        rows, stamps, wall, cpu_total = run_polling(command, env, curve_file, Path(tmp, "stderr.txt"))
        summary = json.loads(Path(run_dir, "summary.json").read_text())

    curve = [
        dict(
            frames=int(r["frames"]),
            greedy_success=float(r["greedy_success_rate"]),
            wall_s=round(w, 2),
            cpu_s=round(c if c is not None else cpu_total, 2),
        )
        for r, (w, c) in zip(rows, stamps)
    ]
    solved = next((p for p in curve if p["greedy_success"] >= 0.99), None)
    return dict(
        num_bits=num_bits,
        side=side,
        seed=seed,
        budget=budget,
        frames=int(summary["frames"]),
        frames_to_99=solved["frames"] if solved else None,
        cpu_s_to_99=solved["cpu_s"] if solved else None,
        wall_s_to_99=solved["wall_s"] if solved else None,
        final_success=float(summary["success_rate"]),
        wall_s=round(wall, 2),
        cpu_s=round(cpu_total, 2),
        curve=curve,
    )


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits = sorted({r["num_bits"] for r in rows})
    colours = {"ours": "tab:red", "sb3": "tab:blue", "sb3_defaults": "tab:gray"}
    labels = {
        "ours": "ours (Chapter_14_HER.py)",
        "sb3": "SB3 DQN + HER, matched",
        "sb3_defaults": "SB3, HER docs defaults",
    }
    fig, axes = plt.subplots(len(bits), 2, figsize=(11, 3.4 * len(bits)), squeeze=False)
    for row_axes, n in zip(axes, bits):
        for r in sorted((r for r in rows if r["num_bits"] == n), key=lambda r: (r["side"], r["seed"])):
            label = f"{labels[r['side']]}, seed {r['seed']}" + (", stopped early" if r.get("stopped_early") else "")
            frames = [p["frames"] for p in r["curve"]]
            row_axes[0].plot(
                frames,
                [p["greedy_success"] for p in r["curve"]],
                ".-",
                color=colours[r["side"]],
                alpha=0.8,
                label=label,
            )
            timed = [p for p in r["curve"] if p["cpu_s"] is not None]  # a stopped run's first points may lack it
            row_axes[1].plot(
                [p["cpu_s"] for p in timed],
                [p["greedy_success"] for p in timed],
                ".-",
                color=colours[r["side"]],
                alpha=0.8,
                label=label,
            )
        row_axes[0].set(
            xlabel="frames (environment steps)",
            ylabel="greedy success (100 episodes)",
            title=f"{n} bits: against frames",
            ylim=(-0.03, 1.03),
        )
        row_axes[1].set(xlabel="CPU seconds (one thread)", title=f"{n} bits: against CPU time", ylim=(-0.03, 1.03))
        row_axes[0].legend(fontsize=7)
        for ax in row_axes:
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[11, 25, 40])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--out", default=None, help="JSON record (also read back to skip finished runs)")
    parser.add_argument("--png", default=None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BUDGET:,} frames per run: checks the CLI only")
    # The child process of one SB3 run (used by run_one, not by hand):
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", default="sb3", choices=["sb3", "sb3_defaults"], help=argparse.SUPPRESS)
    parser.add_argument("--num-bits", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if importlib.util.find_spec("stable_baselines3") is None:
        print("stable_baselines3 is not installed: pip install -r bench/requirements.txt", file=sys.stderr)
        sys.exit(2)
    if args.child:
        sb3_child(args)
        return
    for n in args.bits:
        if not args.quick and n not in BUDGETS:
            parser.error(f"no budget for {n} bits: choose among {sorted(BUDGETS)} or add one to BUDGETS")

    # The runs, ours then SB3's, alternating; then the SB3-defaults row (DEFAULTS_BITS, first seed only).
    todo = []
    for seed in args.seeds:
        for n in args.bits:
            budget = QUICK_BUDGET if args.quick else BUDGETS[n]
            sb3_budget = budget if args.quick else min(budget, SB3_CAPS.get(n, budget))
            todo += [(n, "ours", seed, budget), (n, "sb3", seed, sb3_budget)]
    if DEFAULTS_BITS in args.bits:
        todo.append((DEFAULTS_BITS, "sb3_defaults", args.seeds[0], QUICK_BUDGET if args.quick else DEFAULTS_BUDGET))

    rows: list[dict] = []
    if args.out and Path(args.out).exists():
        rows = json.loads(Path(args.out).read_text())["rows"]
    done = {(r["num_bits"], r["side"], r["seed"], r["budget"]) for r in rows}
    sb3_version = importlib.metadata.version("stable-baselines3")
    settings = dict(
        task="bit flipping, random start and random goal every episode, episode length n",
        both="MLP concat(state, goal) -> 256 ReLU -> n Q-values; Adam lr 1e-3; gamma 0.98; 16 episodes then 40 "
        "gradient steps of batch 128 per cycle; polyak 0.05 target update once per cycle (SB3: every 16 n env "
        "steps); epsilon 0.1 constant; buffer 1e6; HER 'future', k = 5; one torch thread per run",
        sb3=f"stable-baselines3 {sb3_version}: DQN('MultiInputPolicy') + HerReplayBuffer, learning_starts 0; "
        "kept as SB3 has them: Huber loss, gradient clipping at norm 10, the network also reads achieved_goal "
        "(3n inputs), relabelled transitions keep the stored done flag",
        sb3_defaults=f"SB3 HER docs example: HerReplayBuffer(n_sampled_goal=4, 'future'), DQN defaults "
        f"(lr 1e-4, batch 32, gamma 0.99, train_freq 4, 1 gradient step, hard target update every "
        f"10,000 steps, epsilon 1 -> 0.05 over 10% of the budget, net 64-64), {DEFAULTS_BITS} bits only, "
        f"budget {DEFAULTS_BUDGET:,} frames",
        budgets_frames=BUDGETS if not args.quick else {n: QUICK_BUDGET for n in args.bits},
        sb3_caps_frames={} if args.quick else SB3_CAPS,
        evaluation=f"greedy success on {EVAL_EPISODES} fresh random-goal episodes every 50 cycles (800 episodes)",
        cpu_s="getrusage(RUSAGE_CHILDREN) delta of the finished subprocess (interpreter start included); "
        "curve points: /proc/<pid>/stat of the running child, polled every 0.2 s",
        order="one subprocess at a time: ours, SB3, ours, SB3, ...; under the caller's nice level",
    )

    def save() -> None:
        if args.out:
            rows.sort(key=lambda r: (r["num_bits"], r["side"], r["seed"]))
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            record = dict(benchmark="sb3_her", machine=machine(), settings=settings, rows=rows)
            Path(args.out).write_text(json.dumps(record, indent=2) + "\n")

    for n, side, seed, budget in todo:
        if (n, side, seed, budget) in done:
            continue
        print(f"n={n} {side} seed {seed}: {budget:,} frames ...", file=sys.stderr, flush=True)
        row = run_one(n, side, seed, budget)
        rows.append(row)
        save()
        print(
            f"n={n} {side} seed {seed}: final success {row['final_success']:.2f}, 0.99 at "
            f"{row['frames_to_99']} frames, {row['wall_s']:.0f} s wall, {row['cpu_s']:.0f} s CPU",
            file=sys.stderr,
            flush=True,
        )

    rows.sort(key=lambda r: (r["num_bits"], r["side"], r["seed"]))
    report("sb3_her", settings, rows, COLUMNS)  # prints the JSON and the table
    save()
    if args.png:
        plot(rows, args.png)


if __name__ == "__main__":
    main()
