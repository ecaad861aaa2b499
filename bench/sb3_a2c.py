"""Our Chapter_14_Imagine_A2C.py against Stable-Baselines3's A2C on MiniPacman regular, settings matched.

Both sides train the book's network (Conv2d(3,16,3) ReLU, Conv2d(16,16,3,stride 2) ReLU, 768 -> 256 ReLU, one
linear actor head and one linear critic head: 201,174 parameters) with orthogonal initial weights (gain sqrt 2 in
the trunk, 0.01 actor, 1 critic, biases 0) on 16 MiniPacman environments stepped in one process, 5 steps each per
update, gamma 0.99, n-step returns (SB3: gae_lambda 1.0) bootstrapped through the frame cap's truncations, entropy
bonus 0.01, value loss weight 0.5, gradient clipping at norm 0.5, RMSprop lr 7e-4, alpha 0.99, eps 1e-5. One more
SB3 row, `sb3-defaults`, keeps SB3 A2C's documented defaults (only ent_coef differs: 0.0) with the same network.

Each run is a subprocess with one torch thread, ours and SB3's alternating (ours seed 1, SB3 seed 1, ours seed 2,
...; the SB3-defaults runs last): ours is `python Chapter_14_Imagine_A2C.py`, SB3's is this script again
(`--child`). Measured for each run: wall seconds and CPU seconds (getrusage of the finished child), and the mean
return of the last 100 finished episodes every 8,000 frames (ours: metrics.csv, every 100 updates; SB3: a
callback every 100 rollouts, after that rollout's update, reading the Monitor episode returns), each point
stamped with the child's CPU seconds so far. Results are written after every run; a second call with the same
--out skips the runs already there.

    pip install -r bench/requirements.txt
    python bench/sb3_a2c.py --frames 8000 --seeds 1 --out /tmp/sb3_a2c_tiny     # tiny budget: checks the CLI
    nice -n 10 python bench/sb3_a2c.py --seeds 1 2 3 --rows ours sb3 sb3-defaults --defaults-seeds 1 \\
        --out docs/sb3_a2c                                                      # writes .json and .png
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, machine, mean_ci, report, run_polling

FRAMES = 800_000  # 10,000 updates of 16 envs x 5 steps: the budget of docs/hunt_collapse.md's regular runs
NUM_ENVS, NUM_STEPS = 16, 5
LOG_EVERY_UPDATES = 100  # ours' log_every: a curve point every 8,000 frames
LATE_FRACTION = 0.2  # late_mean_return: the mean of the curve points in the last fifth of the frames (less noisy)
PARAMETERS = 201_174  # our ActorCritic on MiniPacman (3 x 15 x 19 in, 5 actions)
AGENTS = ("ours", "sb3", "sb3-defaults")
COLUMNS = [
    "agent",
    "seed",
    "frames",
    "final_return",
    "late_mean_return",
    "entropy_last",
    "wall_s",
    "cpu_s",
    "cpu_s_per_100k_frames",
    "loop_cpu_s_per_100k_frames",
]


# ---------------------------------------------------------------------------------------------------------------
# The SB3 side: runs in a child process (`--child`), imports stable_baselines3 only there
# ---------------------------------------------------------------------------------------------------------------


def sb3_child(args: argparse.Namespace) -> None:
    import common  # noqa: F401  (first, as in our script: OpenMP's wait policy is set before torch loads)
    from common.minipacman import MiniPacman

    import numpy as np
    import torch
    import torch.nn as nn
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    run_dir = Path(args.run_dir)

    class BookTrunk(BaseFeaturesExtractor):
        """The book's ActorCritic without its heads: two convolutions (768 features), then 256 ReLU units."""

        def __init__(self, observation_space, features_dim: int = 256):
            super().__init__(observation_space, features_dim)
            channels = observation_space.shape[0]
            self.features = nn.Sequential(
                nn.Conv2d(channels, 16, kernel_size=3, stride=1),
                nn.ReLU(),
                nn.Conv2d(16, 16, kernel_size=3, stride=2),
                nn.ReLU(),
                nn.Flatten(),
            )
            with torch.no_grad():
                flat = self.features(torch.zeros(1, *observation_space.shape)).shape[1]
            self.fc = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            return self.fc(self.features(observations))

    # Monitor records each finished episode's return (ep_info_buffer: the last 100, SB3's stats_window_size).
    env = DummyVecEnv([lambda: Monitor(MiniPacman("regular", 1000)) for _ in range(NUM_ENVS)])
    policy_kwargs = dict(
        features_extractor_class=BookTrunk,
        features_extractor_kwargs=dict(features_dim=256),
        net_arch=[],  # the actor and the critic are single linear layers on the 256 features, as the book's
        normalize_images=False,  # the observations are float32 in [0, 1] already
    )
    common_kwargs = dict(policy_kwargs=policy_kwargs, seed=args.seed, device="cpu", verbose=0)
    if args.side == "sb3":
        model = A2C(
            "CnnPolicy",
            env,
            learning_rate=7e-4,
            n_steps=NUM_STEPS,
            gamma=0.99,
            gae_lambda=1.0,
            ent_coef=0.01,
            vf_coef=0.5,
            max_grad_norm=0.5,
            rms_prop_eps=1e-5,
            use_rms_prop=True,  # RMSprop(alpha=0.99, eps=rms_prop_eps, weight_decay=0): no momentum, not centered
            normalize_advantage=False,
            **common_kwargs,
        )
    else:  # SB3 A2C's defaults (ent_coef 0.0; the others equal the matched values), the same network
        model = A2C("CnnPolicy", env, **common_kwargs)
    optimizer = model.policy.optimizer
    checks = dict(
        parameters=sum(p.numel() for p in model.policy.parameters()),
        optimizer=type(optimizer).__name__,
        optimizer_defaults={k: optimizer.defaults[k] for k in ("lr", "alpha", "eps", "momentum", "centered")},
        ortho_init=model.policy.ortho_init,
        ent_coef=model.ent_coef,
        n_steps=model.n_steps,
        gae_lambda=model.gae_lambda,
        policy=str(model.policy),
    )

    curve = []  # rows of (frames, mean_return_last_100, entropy, episodes)

    def log() -> None:
        infos = model.ep_info_buffer
        entropies = callback.entropies
        curve.append(
            dict(
                frames=model.num_timesteps,
                mean_return_last_100=float(np.mean([e["r"] for e in infos])) if infos else float("nan"),
                entropy=float(np.mean(entropies)) if entropies else float("nan"),
                episodes=callback.episodes,
            )
        )
        entropies.clear()
        tmp = run_dir / "curve.csv.tmp"  # rewritten whole, then renamed: the parent polls it
        with open(tmp, "w") as f:
            f.write(",".join(curve[0]) + "\n")
            f.writelines(",".join(str(v) for v in row.values()) + "\n" for row in curve)
        tmp.replace(run_dir / "curve.csv")

    class Curve(BaseCallback):
        """A point every LOG_EVERY_UPDATES rollouts, after that rollout's update (where ours logs): SB3 calls
        on_rollout_start of the next rollout after train(), and on_training_end after the last train()."""

        def __init__(self):
            super().__init__()
            self.rollouts = 0
            self.episodes = 0
            self.entropies: list[float] = []  # of every update since the last point (ours averages them too)

        def _on_step(self) -> bool:
            self.episodes += int(np.sum(self.locals["dones"]))
            return True

        def _after_update(self) -> None:
            entropy_loss = self.model.logger.name_to_value.get("train/entropy_loss")
            if entropy_loss is not None:
                self.entropies.append(-float(entropy_loss))
            if self.rollouts % LOG_EVERY_UPDATES == 0:
                log()

        def _on_rollout_start(self) -> None:
            if self.rollouts:
                self._after_update()

        def _on_rollout_end(self) -> None:
            self.rollouts += 1

        def _on_training_end(self) -> None:
            self._after_update()  # the last update's entropy (and its point, on a multiple of 100 rollouts)
            if not curve or curve[-1]["frames"] != self.model.num_timesteps:
                log()  # a budget that is not a multiple of 8,000 frames: a last point at its end, as ours

    callback = Curve()
    model.learn(total_timesteps=args.frames, callback=callback, log_interval=None)
    summary = dict(
        mean_return_last_100=curve[-1]["mean_return_last_100"],
        entropy_last=curve[-1]["entropy"],
        frames=model.num_timesteps,
        updates=model._n_updates,
        episodes=callback.episodes,
        checks=checks,
    )
    (run_dir / "summary.json").write_text(json.dumps(summary))


# ---------------------------------------------------------------------------------------------------------------
# The parent: runs both sides as subprocesses, measures them the same way
# ---------------------------------------------------------------------------------------------------------------


def run_one(agent: str, seed: int, updates: int, threads: int) -> dict:
    """One run in a subprocess; each new curve point is stamped with the child's wall and CPU seconds so far."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp, "run")
        if agent == "ours":
            command = [
                sys.executable,
                str(ROOT / "Chapter_14_Imagine_A2C.py"),
                "--mode",
                "regular",
                "--num-updates",
                str(updates),
                "--seed",
                str(seed),
                "--threads",
                str(threads),
                "--gif-frames",
                "0",
                "--device",
                "cpu",
                "--run-dir",
                str(run_dir),
                "--checkpoint-dir",
                str(Path(tmp, "checkpoints")),  # never the repository's checkpoints/
            ]
            curve_file = run_dir / "metrics.csv"
        else:
            run_dir.mkdir()
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                "--side",
                "sb3" if agent == "sb3" else "sb3_defaults",
                "--frames",
                str(updates * NUM_ENVS * NUM_STEPS),
                "--seed",
                str(seed),
                "--run-dir",
                str(run_dir),
            ]
            curve_file = run_dir / "curve.csv"
        env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

        rows, stamps, wall, cpu_total = run_polling(command, env, curve_file, Path(tmp, "stderr.txt"))
        summary = json.loads(Path(run_dir, "summary.json").read_text())

    curve = [
        dict(
            frames=int(r["frames"]),
            mean_return_last_100=round(float(r["mean_return_last_100"]), 3),
            entropy=round(float(r["entropy"]), 4),
            wall_s=round(w, 2),
            cpu_s=round(c if c is not None else cpu_total, 2),
        )
        for r, (w, c) in zip(rows, stamps)
    ]
    frames = int(summary["frames"])
    entropy_last = summary.get("entropy_last")
    row = dict(
        agent=agent,
        seed=seed,
        frames=frames,
        final_return=round(float(summary["mean_return_last_100"]), 3),
        late_mean_return=None,  # filled in by late_mean below
        entropy_last=None if entropy_last is None or math.isnan(entropy_last) else round(float(entropy_last), 4),
        episodes=int(summary["episodes"]),
        wall_s=round(wall, 2),
        cpu_s=round(cpu_total, 2),
        cpu_s_per_100k_frames=round(cpu_total / frames * 1e5, 2),
        # The training loop only: CPU between the first and the last curve point over the frames between them
        # (no interpreter start, imports, environment set-up, final plot).
        loop_cpu_s_per_100k_frames=(
            round((curve[-1]["cpu_s"] - curve[0]["cpu_s"]) / (curve[-1]["frames"] - curve[0]["frames"]) * 1e5, 2)
            if len(curve) >= 2
            else None
        ),
        curve=curve,
    )
    row["late_mean_return"] = late_mean(row)
    if "checks" in summary:
        row["sb3_checks"] = summary["checks"]
    return row


def late_mean(row: dict) -> float | None:
    """The mean of the curve's points from (1 - LATE_FRACTION) of the run's frames on, its end included (800,000
    frames: updates 8,000 to 10,000, 21 points, as docs/hunt_collapse.md averaged): the end point alone moves by
    several points within a few hundred updates."""
    start = (1 - LATE_FRACTION) * row["frames"]
    values = [p["mean_return_last_100"] for p in row["curve"] if p["frames"] >= start]
    values = [v for v in values if not math.isnan(v)]
    return round(sum(values) / len(values), 3) if values else None


def mean_ci_record(values: list[float]) -> dict:
    """Mean, the half-width of its two-sided 95% t confidence interval and the standard deviation (None for one)."""
    mean, ci = mean_ci(values)
    sd = None if len(values) < 2 else math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return dict(n=len(values), mean=round(mean, 3), ci95=None if ci is None else round(ci, 3), sd=sd and round(sd, 3))


def summarise(rows: list[dict]) -> dict:
    out = {}
    for agent in AGENTS:
        mine = [r for r in rows if r["agent"] == agent]
        if not mine:
            continue
        frames, cpu = sum(r["frames"] for r in mine), sum(r["cpu_s"] for r in mine)
        loop = [r["loop_cpu_s_per_100k_frames"] for r in mine if r["loop_cpu_s_per_100k_frames"] is not None]
        out[agent] = dict(
            seeds=[r["seed"] for r in mine],
            final_return=mean_ci_record([r["final_return"] for r in mine]),
            late_mean_return=(
                mean_ci_record([r["late_mean_return"] for r in mine])
                if all(r.get("late_mean_return") is not None for r in mine)
                else None
            ),
            wall_s=mean_ci_record([r["wall_s"] for r in mine]),
            cpu_s=mean_ci_record([r["cpu_s"] for r in mine]),
            cpu_s_per_100k_frames=round(cpu / frames * 1e5, 2),
            loop_cpu_s_per_100k_frames=round(sum(loop) / len(loop), 2) if loop else None,
        )
    if "ours" in out:
        for agent in ("sb3", "sb3-defaults"):
            if agent in out:
                ours, theirs = out["ours"], out[agent]
                theirs["cpu_per_frame_ratio_vs_ours"] = round(
                    theirs["cpu_s_per_100k_frames"] / ours["cpu_s_per_100k_frames"], 3
                )
                if theirs["loop_cpu_s_per_100k_frames"] and ours["loop_cpu_s_per_100k_frames"]:
                    theirs["loop_cpu_per_frame_ratio_vs_ours"] = round(
                        theirs["loop_cpu_s_per_100k_frames"] / ours["loop_cpu_s_per_100k_frames"], 3
                    )
    return out


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"ours": "tab:red", "sb3": "tab:blue", "sb3-defaults": "tab:gray"}
    labels = {"ours": "ours (Chapter_14_Imagine_A2C.py)", "sb3": "SB3 A2C, matched", "sb3-defaults": "SB3 A2C defaults"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for r in sorted(rows, key=lambda r: (AGENTS.index(r["agent"]), r["seed"])):
        points = [p for p in r["curve"] if not math.isnan(p["mean_return_last_100"])]
        style = dict(color=colours[r["agent"]], alpha=0.85, lw=1.2, ls=("-", "--", ":", "-.")[(r["seed"] - 1) % 4])
        label = f"{labels[r['agent']]}, seed {r['seed']}"
        axes[0].plot([p["frames"] for p in points], [p["mean_return_last_100"] for p in points], label=label, **style)
        axes[1].plot([p["cpu_s"] for p in points], [p["mean_return_last_100"] for p in points], label=label, **style)
    axes[0].set(xlabel="frames (environment steps, 16 envs)", ylabel="mean return, last 100 episodes")
    axes[0].set_title("MiniPacman regular: against frames")
    axes[1].set(xlabel="CPU seconds of the run (one torch thread)", title="against CPU time")
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=FRAMES, help="frames per run (a multiple of 80)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--rows", nargs="+", default=["ours", "sb3"], choices=AGENTS)
    parser.add_argument(
        "--defaults-seeds", type=int, nargs="+", default=None, help="seeds of the sb3-defaults row (default: --seeds)"
    )
    parser.add_argument("--out", default=None, help="writes OUT.json (also read back to skip finished runs), OUT.png")
    parser.add_argument("--threads", type=int, default=1, help="torch (and OpenMP) threads of each run")
    # The child process of one SB3 run (used by run_one, not by hand):
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", default="sb3", choices=["sb3", "sb3_defaults"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if importlib.util.find_spec("stable_baselines3") is None:
        print("stable_baselines3 is not installed: pip install -r bench/requirements.txt", file=sys.stderr)
        sys.exit(2)
    if args.child:
        sb3_child(args)
        return
    updates = args.frames // (NUM_ENVS * NUM_STEPS)
    if updates < 1 or updates * NUM_ENVS * NUM_STEPS != args.frames:
        parser.error(f"--frames {args.frames}: use a positive multiple of {NUM_ENVS * NUM_STEPS}")
    if len(args.seeds) > 11:
        parser.error("at most 11 seeds (the t quantiles are tabled for 1 to 10 degrees of freedom)")
    defaults_seeds = args.defaults_seeds if args.defaults_seeds is not None else args.seeds

    # Ours and SB3 matched alternate seed by seed; the SB3-defaults runs come last.
    todo = [(agent, seed) for seed in args.seeds for agent in ("ours", "sb3") if agent in args.rows]
    if "sb3-defaults" in args.rows:
        todo += [("sb3-defaults", seed) for seed in defaults_seeds]

    json_path = Path(args.out + ".json") if args.out else None
    png_path = args.out + ".png" if args.out else None
    rows: list[dict] = []
    loads: list[dict] = []
    if json_path and json_path.exists():
        old = json.loads(json_path.read_text())
        rows, loads = old["rows"], old.get("machine", {}).get("load_average_per_session", [])
    for r in rows:  # rows from an earlier version of this script
        if r.get("late_mean_return") is None:
            r["late_mean_return"] = late_mean(r)
    done = {(r["agent"], r["seed"], r["frames"]) for r in rows}
    session = dict(start=load_average(), end=None, date=time.strftime("%Y-%m-%d %H:%M"), nice=os.nice(0))
    versions = {name: importlib.metadata.version(name) for name in ("stable-baselines3", "gymnasium", "numpy", "torch")}
    settings = dict(
        task="MiniPacman regular (common/minipacman.py), frame cap 1000 (truncation, bootstrapped on both sides)",
        frames_per_run=args.frames,
        updates_per_run=updates,
        both=(
            f"the book's network (conv 3->16 k3 s1, ReLU, conv 16->16 k3 s2, ReLU, 768 -> 256 ReLU, linear actor "
            f"(5) and critic (1) heads; {PARAMETERS:,} parameters), orthogonal init (trunk gain sqrt 2, actor 0.01, "
            f"critic 1, biases 0), {NUM_ENVS} envs stepped in one process, {NUM_STEPS} steps per update, gamma "
            "0.99, n-step returns (SB3 gae_lambda 1.0), value loss weight 0.5, gradient clipping at norm 0.5, "
            "RMSprop lr 7e-4 alpha 0.99 eps 1e-5 (no momentum, not centered, no weight decay), constant lr, "
            f"{args.threads} torch thread(s) per run, device cpu"
        ),
        ours="python Chapter_14_Imagine_A2C.py --mode regular --num-updates N --seed S --threads 1 --gif-frames 0 "
        "--device cpu (entropy_coef 0.01; sync vector env; tune_process on: denormals flushed, glibc keeps freed "
        "memory; it also draws learning_curve.png at the end)",
        sb3=(
            f"stable-baselines3 {versions['stable-baselines3']}: A2C('CnnPolicy', DummyVecEnv of {NUM_ENVS} "
            "Monitor(MiniPacman('regular', 1000))), features_extractor_class = the book's trunk (features_dim 256), "
            "net_arch=[], normalize_images=False, learning_rate 7e-4, n_steps 5, gamma 0.99, gae_lambda 1.0, "
            "ent_coef 0.01, vf_coef 0.5, max_grad_norm 0.5, use_rms_prop True, rms_prop_eps 1e-5, ortho_init True, "
            "normalize_advantage False"
        ),
        sb3_defaults=f"A2C('CnnPolicy', env, policy_kwargs as sb3) with every A2C argument at SB3's default: the "
        f"only difference from sb3 is ent_coef 0.0 (SB3's default) instead of 0.01; seeds {defaults_seeds}",
        curve="mean return of the last 100 finished episodes every 100 updates (8,000 frames), after that update; "
        "ours: metrics.csv; SB3: a callback reading Monitor's episode returns (ep_info_buffer, the last 100)",
        late_mean_return=f"the mean of the curve points in the last {LATE_FRACTION:.0%} of the frames, the end "
        "included (800,000 frames: updates 8,000-10,000, 21 points)",
        entropy="mean policy entropy over the updates since the previous curve point (ours: metrics.csv; SB3: "
        "-train/entropy_loss of each update)",
        cpu_s="getrusage(RUSAGE_CHILDREN) delta of the finished subprocess (user + system; interpreter start, "
        "imports and teardown included); curve points: /proc/<pid>/stat of the running child, polled every 0.2 s; "
        "loop_cpu_s_per_100k_frames: CPU between the first and the last curve point over their frames",
        order="one subprocess at a time: ours seed 1, SB3 seed 1, ours seed 2, ...; the SB3-defaults runs last; "
        "under the caller's nice level",
        versions=versions,
    )

    def save() -> None:
        if not json_path:
            return
        rows.sort(key=lambda r: (AGENTS.index(r["agent"]), r["seed"]))
        info = dict(machine(), load_average_per_session=loads, versions=versions)
        record = dict(benchmark="sb3_a2c", machine=info, settings=settings, summary=summarise(rows), rows=rows)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(json_path)

    for agent, seed in todo:
        if (agent, seed, args.frames) in done:
            continue
        if not any(entry is session for entry in loads):  # this call's load record, once it runs something
            loads.append(session)
        print(f"{agent} seed {seed}: {args.frames:,} frames ... (load {load_average()})", file=sys.stderr, flush=True)
        row = run_one(agent, seed, updates, args.threads)
        rows.append(row)
        session["end"] = load_average()
        save()
        print(
            f"{agent} seed {seed}: mean return (last 100) {row['final_return']:.1f}, entropy {row['entropy_last']}, "
            f"{row['wall_s']:.0f} s wall, {row['cpu_s']:.0f} s CPU",
            file=sys.stderr,
            flush=True,
        )
    if any(entry is session for entry in loads):
        session["end"] = load_average()
    rows.sort(key=lambda r: (AGENTS.index(r["agent"]), r["seed"]))
    table_rows = [{k: v for k, v in r.items() if k not in ("curve", "sb3_checks")} for r in rows]
    report("sb3_a2c", settings, table_rows, COLUMNS)  # prints the JSON and the table (the curves are in OUT.json)
    print()
    for agent, s in summarise(rows).items():
        ci = s["final_return"]
        print(
            f"{agent}: final return {ci['mean']:.2f}"
            + (f" +- {ci['ci95']:.2f} (95% CI, n={ci['n']})" if ci["ci95"] is not None else f" (n={ci['n']})")
            + (
                f"; last-fifth mean {s['late_mean_return']['mean']:.2f}"
                + (f" +- {s['late_mean_return']['ci95']:.2f}" if s["late_mean_return"]["ci95"] is not None else "")
                if s["late_mean_return"]
                else ""
            )
            + f", CPU s per 100k frames {s['cpu_s_per_100k_frames']}"
            + (f", ratio vs ours {s['cpu_per_frame_ratio_vs_ours']}" if "cpu_per_frame_ratio_vs_ours" in s else "")
        )
    for r in rows:
        if "sb3_checks" in r:
            checks = {k: v for k, v in r["sb3_checks"].items() if k != "policy"}
            print(f"{r['agent']} seed {r['seed']} checks: {checks}")
    save()
    if png_path:
        plot(rows, png_path)


if __name__ == "__main__":
    main()
