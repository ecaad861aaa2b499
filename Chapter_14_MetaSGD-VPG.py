"""Meta-SGD with a vanilla policy gradient (MetaSGD-VPG) on learn2learn's Particles2D: "MAML-RL" in chapter 14.

Every task is a goal somewhere in [-0.5, 0.5]^2; a point starts at (0, 0), moves by its action (clipped to
[-0.1, 0.1] per axis) and gets minus its distance to the goal as reward, for 100 steps or until it is within
0.01 of the goal. A policy (`DiagNormalPolicy`) is meta-trained so that one policy-gradient step on 20
episodes of a new task sends it to that task's goal. Meta-SGD (`l2l.algorithms.MetaSGD`) is MAML with one
learned inner learning rate per weight: the outer Adam step trains the weights and those learning rates
together, through the adaptation step. Each iteration: for each of `meta_bsz` tasks, clone the meta-learner,
adapt it on `adapt_bsz` episodes (the book's `maml_a2c_loss`: cherry's discounted returns fitted by a
`LinearValue` baseline, GAE advantages, normalised, `a2c.policy_loss`), run `adapt_bsz` fresh episodes with
the adapted learner, and take one Adam step on their mean loss.

What changed from the book (docs/metasgd.md, "differences from the book"): Adam now optimises
`meta_learner.parameters()` (the book's `policy.parameters()` left Meta-SGD's learning rates at their initial
value); the baseline's regulariser is 1e-5 (the book passed the action size, 2.0, in its place); `adapt_lr` sets
the initial inner learning rates (the book passed `meta_lr` and never used `adapt_lr`); task goals and episodes
follow `--seed`; the episodes of a task are played side by side in one process (`LockstepRunner`, the same
Particles2D dynamics as tensors) instead of two subprocess environments stepped one step at a time (the book's
way is kept in bench/metasgd_speed.py); the outer learning rate is 0.001 and the run 400 iterations (the book's
0.01 diverges here after about 60 iterations).

Run it:
    python Chapter_14_MetaSGD-VPG.py
    python Chapter_14_MetaSGD-VPG.py --num-iterations 50 --adapt-steps 2
    python Chapter_14_MetaSGD-VPG.py --help

Time of the default run (400 iterations, then 40 test tasks): about 5 minutes on a 2-core CPU; no GPU time
measured yet. The book's way of collecting episodes takes about half a minute per iteration (docs/metasgd.md).
Writes (under runs/Chapter_14_MetaSGD-VPG/<date-time>/ or --run-dir): config.json, metrics.csv (per iteration:
mean return per episode before and after adaptation, adaptation loss, mean learned inner learning rate,
policy standard deviation), learning_curve.png, trajectories.png (test tasks' episodes before and after one
adaptation step, with their goals), meta_learner.pt (the MetaSGD state_dict: policy and learning rates),
summary.json (return after 0, 1, 2 and 3 adaptation steps on fresh tasks, the MAML paper's Table 4 layout).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from common.runtime import (
    Diverged,
    RunConfig,
    RunDir,
    check_finite,
    check_ranges,
    cli,
    require_memory,
    setup,
    tune_process,
)

import cherry as ch
import learn2learn as l2l
import numpy as np
import torch
import torch.nn as nn
from cherry.algorithms import a2c
from torch.distributions import Normal
from tqdm import tqdm

EPSILON = 1e-6


@dataclass
class Config(RunConfig):
    seed: int = 42  # seeds task goals, episodes and weights (the book: 42)
    adapt_lr: float = 0.1  # initial inner learning rate of every weight, then learned (the book: 0.1, unused)
    meta_lr: float = 0.001  # Adam learning rate of the outer loop (book: 0.01, which diverges after ~60 iterations)
    adapt_steps: int = 1  # policy-gradient adaptation steps per task during meta-training (the book: 1)
    num_iterations: int = 400  # meta-training iterations, one Adam step each (book: 200; meta_lr 0.001 needs ~300)
    meta_bsz: int = 20  # tasks per iteration (the book: 20)
    adapt_bsz: int = 20  # episodes per adaptation step, and per validation (the book: 20)
    tau: float = 1.0  # GAE lambda (the book: 1.0)
    gamma: float = 0.99  # discount factor (the book: 0.99)
    eval_tasks: int = 40  # fresh tasks of the final test
    eval_steps: int = 3  # the final test reports the return after 0..eval_steps adaptation steps
    threads: int = 1  # CPU threads for torch: the networks are tiny, 1 thread is fastest

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(
            self,
            positive=("adapt_lr", "meta_lr", "gamma"),
            non_negative=("adapt_steps",),  # 0 trains the policy without adaptation
            at_least_1=("num_iterations", "meta_bsz", "adapt_bsz", "eval_tasks", "eval_steps"),
            fraction=("gamma", "tau"),
        )


def linear_init(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        module.bias.data.zero_()
    return module


class DiagNormalPolicy(nn.Module):
    """A Gaussian policy: an MLP (2 hidden layers of 100, ReLU) for the mean, one learned log-std per action."""

    def __init__(self, input_size: int, output_size: int, hiddens: list[int] | None = None):
        super().__init__()
        hiddens = hiddens or [100, 100]
        layers = [linear_init(nn.Linear(input_size, hiddens[0])), nn.ReLU()]
        for i, o in zip(hiddens[:-1], hiddens[1:]):
            layers += [linear_init(nn.Linear(i, o)), nn.ReLU()]
        layers.append(linear_init(nn.Linear(hiddens[-1], output_size)))
        self.mean = nn.Sequential(*layers)
        self.sigma = nn.Parameter(torch.full((output_size,), math.log(1.0)))  # log of the standard deviation

    def density(self, state: torch.Tensor) -> Normal:
        loc = self.mean(state)
        if not torch.isfinite(loc).all():  # a policy that diverged cannot act (common/runtime.py: Diverged)
            raise Diverged("the policy's outputs became NaN or infinite: the run diverged; try a smaller --meta-lr")
        scale = torch.exp(torch.clamp(self.sigma, min=math.log(EPSILON)))
        return Normal(loc=loc, scale=scale)

    def log_prob(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.density(state).log_prob(action).mean(dim=-1, keepdim=True)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.density(state).sample()


class LinearValue(nn.Module):
    """The book's baseline (cherry's `LinearValue`): least squares on the features (s, s^2, t, t^2, t^3, 1), refitted
    on every batch of episodes. Here t is the step within the episode (t/100, read off the time axis), as in
    rllab's linear baseline; cherry's version counts steps across the whole concatenated batch."""

    def __init__(self, input_size: int, reg: float = 1e-5):
        super().__init__()
        self.linear = nn.Linear(2 * input_size + 4, 1, bias=False)
        self.reg = reg

    def _features(self, states: torch.Tensor) -> torch.Tensor:  # (T, B, input_size) -> (T, B, features)
        length, batch = states.shape[:2]
        al = (
            (torch.arange(length, dtype=states.dtype, device=states.device) / 100.0)
            .view(-1, 1, 1)
            .expand(length, batch, 1)
        )
        ones = torch.ones_like(al)
        return torch.cat([states, states**2, al, al**2, al**3, ones], dim=-1)

    def fit(self, states: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        features, returns = self._features(states), returns.unsqueeze(-1)
        if mask is not None:
            features, returns = features[mask], returns[mask]
        features, returns = features.reshape(-1, features.shape[-1]).double(), returns.reshape(-1, 1).double()
        reg = self.reg * torch.eye(features.shape[1], dtype=features.dtype, device=features.device)
        coeffs = torch.linalg.solve(features.t() @ features + reg, features.t() @ returns)
        self.linear.weight.data = coeffs.t().to(self.linear.weight.dtype)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.linear(self._features(states)).squeeze(-1)


def compute_advantages(baseline, tau, gamma, rewards, dones, states, next_states, mask):
    # Update baseline
    returns = ch.td.discount(gamma, rewards, dones)
    baseline.fit(states, returns, mask)
    values = baseline(states)
    next_values = baseline(next_states)
    bootstraps = values * (1.0 - dones) + next_values * dones
    next_value = torch.zeros(rewards.shape[1], device=values.device)
    return ch.pg.generalized_advantage(
        tau=tau, gamma=gamma, rewards=rewards, dones=dones, values=bootstraps, next_value=next_value
    )


def maml_a2c_loss(train_episodes: Episodes, learner, baseline, gamma: float, tau: float) -> torch.Tensor:
    e = train_episodes
    log_probs = learner.log_prob(e.states, e.actions).squeeze(-1)
    advantages = compute_advantages(baseline, tau, gamma, e.rewards, e.dones, e.states, e.next_states, e.mask)
    advantages = ch.normalize(advantages[e.mask]).detach()
    return a2c.policy_loss(log_probs[e.mask], advantages)


def make_learners(config: Config, device: torch.device):
    """The policy, its Meta-SGD wrapper (inner learning rates start at adapt_lr), the baseline and the optimiser.
    The book: `MetaSGD(policy, lr=meta_lr)`, `LinearValue(state_size, action_size)`, `Adam(policy.parameters())`."""
    policy = DiagNormalPolicy(2, 2).to(device)
    meta_learner = l2l.algorithms.MetaSGD(policy, lr=config.adapt_lr)
    baseline = LinearValue(2).to(device)
    opt = torch.optim.Adam(meta_learner.parameters(), lr=config.meta_lr)  # the weights AND the learning rates
    return policy, meta_learner, baseline, opt


def meta_step(meta_learner, opt, tasks, runner, baseline, config: Config) -> dict:
    """One iteration of the book's loop: adapt a clone per task, validate it on fresh episodes, one Adam step."""
    iteration_loss = 0.0
    before, after = [], []
    for task_config in tasks:
        learner = meta_learner.clone()
        runner.set_task(task_config)

        # Fast Adapt
        for step in range(config.adapt_steps):
            train_episodes = runner.run(learner, episodes=config.adapt_bsz)
            loss = maml_a2c_loss(train_episodes, learner, baseline, config.gamma, config.tau)
            learner.adapt(loss)
            if step == 0:
                before.append(train_episodes.returns().mean())

        # Compute Validation Loss
        valid_episodes = runner.run(learner, episodes=config.adapt_bsz)
        loss = maml_a2c_loss(valid_episodes, learner, baseline, config.gamma, config.tau)
        iteration_loss += loss
        after.append(valid_episodes.returns().mean())

    adaptation_loss = iteration_loss / len(after)
    opt.zero_grad()
    adaptation_loss.backward()
    opt.step()
    after_value = float(torch.stack(after).mean())
    return dict(
        return_before=float(torch.stack(before).mean()) if before else after_value,
        return_after=after_value,
        adaptation_loss=float(adaptation_loss.detach()),
        mean_adapt_lr=mean_learned_lr(meta_learner),
        policy_std=float(meta_learner.module.sigma.detach().exp().mean()),
    )


def evaluate(meta_learner, runner, baseline, tasks, config: Config, keep: int = 4):
    """Return per episode after 0..eval_steps adaptation steps on each task; the episodes of the first `keep`
    tasks before and after one step, for the trajectory plot."""
    returns = np.zeros((len(tasks), config.eval_steps + 1))
    kept = []
    for i, task in enumerate(tasks):
        learner = meta_learner.clone()
        runner.set_task(task)
        played = []
        for step in range(config.eval_steps + 1):
            episodes = runner.run(learner, episodes=config.adapt_bsz)
            returns[i, step] = float(episodes.returns().mean())
            played.append(episodes)
            if step < config.eval_steps:
                learner.adapt(maml_a2c_loss(episodes, learner, baseline, config.gamma, config.tau), first_order=True)
        if i < keep:
            kept.append((np.asarray(task["goal"]), played[0], played[1]))
    return returns, kept


def main(config: Config) -> dict:
    device, _ = setup(config)
    if config.tune_process:
        tune_process()  # process-wide, for speed: denormal floats flushed, freed memory kept (common/runtime.py)
    steps = config.meta_bsz * (config.adapt_steps + 1) * config.adapt_bsz * MAX_STEPS  # kept for the outer step
    require_memory(steps * 2**12, "--meta-bsz x --adapt-bsz x --adapt-steps")  # ~4 kB of graph per step
    run = RunDir("Chapter_14_MetaSGD-VPG", config, device=device)
    train_tasks = task_sampler(config.seed)
    test_tasks = task_sampler(10**6 + config.seed).sample_tasks(config.eval_tasks)
    runner = LockstepRunner(config.adapt_bsz, device)  # the book: ch.envs.Runner over 2 subprocess envs
    _, meta_learner, baseline, opt = make_learners(config, device)

    start, iterations = time.perf_counter(), 0
    tqdm_bar = tqdm(range(1, config.num_iterations + 1), desc="Chapter_14_MetaSGD-VPG", unit="it", dynamic_ncols=True)
    try:
        for iteration in tqdm_bar:
            row = meta_step(meta_learner, opt, train_tasks.sample_tasks(config.meta_bsz), runner, baseline, config)
            run.log(
                iteration=iteration,
                **{k: round(v, 6) for k, v in row.items()},
                seconds=round(time.perf_counter() - start, 2),
            )
            check_finite(row, f"iteration {iteration}", "try a smaller --meta-lr or --adapt-lr")
            tqdm_bar.set_postfix(
                before=f"{row['return_before']:.1f}",
                after=f"{row['return_after']:.1f}",
                lr=f"{row['mean_adapt_lr']:.3f}",
                std=f"{row['policy_std']:.3f}",
            )
            iterations = iteration
            if run.checkpoint_due():  # every few minutes, the meta-learner so far in the run directory
                run.save_checkpoint(meta_learner.state_dict(), "meta_learner.pt")
    except KeyboardInterrupt as error:  # Ctrl+C or a signal: keep what was learnt so far, then stop
        run.stop(error)
    seconds = time.perf_counter() - start
    run.save_checkpoint(meta_learner.state_dict(), "meta_learner.pt")
    plot_learning_curve(run, config)
    summary = {}
    if not run.stopped:  # the final test on fresh tasks
        returns, kept = evaluate(meta_learner, runner, baseline, test_tasks, config)
        plot_trajectories(run, kept, config)
        means = returns.mean(0)
        ci95 = 1.96 * returns.std(0, ddof=1) / math.sqrt(len(returns)) if len(returns) > 1 else np.zeros_like(means)
        summary = {f"return_after_{k}_steps": round(float(means[k]), 3) for k in range(config.eval_steps + 1)}
        summary.update({f"return_after_{k}_steps_ci95": round(float(ci95[k]), 3) for k in range(config.eval_steps + 1)})
    summary.update(
        iterations=iterations,
        seconds=round(seconds, 2),
        eval_tasks=config.eval_tasks,
        episodes_per_step=config.adapt_bsz,
        mean_adapt_lr=round(mean_learned_lr(meta_learner), 5),
        device=str(device),
        seed=config.seed,
    )
    table = ", ".join(
        f"{k}: {summary.get(f'return_after_{k}_steps', float('nan')):.1f}" for k in range(config.eval_steps + 1)
    )
    return run.finish(
        summary,
        f"Chapter_14_MetaSGD-VPG: {iterations} iterations in {seconds:.0f} s; mean return per episode on "
        f"{config.eval_tasks} fresh tasks after 0..{config.eval_steps} adaptation steps: {table}",
    )


# --------------------------------------------------------------------------------------------------------------
# Plumbing the book does not show: learn2learn's Particles2D-v1 as tensors (a task's episodes played side
# by side), the task sampler, plots
# --------------------------------------------------------------------------------------------------------------


MAX_STEPS = 100  # Particles2D-v1's time limit (learn2learn registers it with max_episode_steps=100)


class Particles2DBatch:
    """`num_envs` copies of learn2learn's `Particles2DEnv` on one task, as tensors: the same dynamics
    (action clipped to [-0.1, 0.1], reward minus the distance to the goal, done within 0.01 of it on both axes,
    100 steps at most) for a whole batch of episodes per call, on the policy's device."""

    def __init__(self, num_envs: int, device: torch.device):
        self.num_envs, self.device = num_envs, device
        self.goal = torch.zeros(2, device=device)
        self.state = torch.zeros(num_envs, 2, device=device)

    def set_task(self, task: dict) -> None:
        self.goal = torch.as_tensor(np.asarray(task["goal"]), dtype=torch.float32, device=self.device)

    def reset(self) -> torch.Tensor:
        self.state = torch.zeros(self.num_envs, 2, device=self.device)
        return self.state

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.state = self.state + action.clamp(-0.1, 0.1)
        offset = self.state - self.goal
        reward = -offset.norm(dim=1)
        done = (offset.abs() < 0.01).all(dim=1)
        return self.state, reward, done


@dataclass
class Episodes:
    """A batch of episodes, time-major (step, episode), padded to the longest: `mask` marks the real steps.
    Steps after an episode's end have reward 0 and done 1, so cherry's `discount` and `generalized_advantage`
    (which run along the first axis, column by column) never carry anything across them."""

    states: torch.Tensor  # (T, B, 2)
    actions: torch.Tensor  # (T, B, 2), as sampled (before the environment's clipping)
    rewards: torch.Tensor  # (T, B)
    dones: torch.Tensor  # (T, B), 1.0 on each episode's last step and after it
    next_states: torch.Tensor  # (T, B, 2)
    mask: torch.Tensor  # (T, B) bool, True on real steps

    def returns(self) -> torch.Tensor:
        """Undiscounted return of each episode: the sum of its rewards (the MAML paper's units)."""
        return self.rewards.sum(0)


class LockstepRunner:
    """Plays `episodes` episodes of the current task side by side, the policy called once per step on the batch
    (what the book's `ch.envs.Runner(env).run(learner, episodes=adapt_bsz)` does one step of two envs at a time)."""

    def __init__(self, episodes: int, device: torch.device):
        self.env = Particles2DBatch(episodes, device)

    def set_task(self, task: dict) -> None:
        self.env.set_task(task)

    def run(self, policy, episodes: int) -> Episodes:
        assert episodes == self.env.num_envs
        state = self.env.reset()
        alive = torch.ones(episodes, dtype=torch.bool, device=state.device)
        steps = []
        for t in range(MAX_STEPS):
            with torch.no_grad():
                action = policy(state)
            next_state, reward, done = self.env.step(action)
            done = done | (t == MAX_STEPS - 1)
            steps.append((state, action, reward * alive, (done | ~alive).float(), next_state, alive))
            alive = alive & ~done
            state = next_state
            if t % 10 == 9 and not alive.any():
                break
        return Episodes(*(torch.stack(column) for column in zip(*steps)))


def task_sampler(seed: int):
    """learn2learn's own task distribution (`Particles2DEnv.sample_tasks`), seeded: `env.seed()` of the book's
    vector env seeds the workers, not the environment object that samples the tasks."""
    from learn2learn.gym.envs.particles import Particles2DEnv

    env = Particles2DEnv()
    env.seed(seed)
    return env


def mean_learned_lr(meta_learner) -> float:
    return float(torch.cat([lr.detach().flatten() for lr in meta_learner.lrs]).mean())


def plot_learning_curve(run: RunDir, config: Config) -> None:
    import matplotlib.pyplot as plt

    rows = run.rows
    it = [r["iteration"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot(it, [r["return_before"] for r in rows], label="before adaptation")
    axes[0].plot(it, [r["return_after"] for r in rows], label=f"after {config.adapt_steps} adaptation step(s)")
    axes[0].set(xlabel="iteration", ylabel="mean return per episode (training tasks)")
    axes[0].legend(fontsize=8)
    axes[1].plot(it, [r["mean_adapt_lr"] for r in rows], label="mean learned inner learning rate")
    axes[1].plot(it, [r["policy_std"] for r in rows], label="policy standard deviation")
    axes[1].set(xlabel="iteration", yscale="log")
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"MetaSGD-VPG on Particles2D, {config.meta_bsz} tasks x {config.adapt_bsz} episodes per iteration, "
        f"seed {config.seed}"
    )
    fig.tight_layout()
    run.save_figure(fig, "learning_curve.png")


def plot_trajectories(run: RunDir, kept, config: Config, per_task: int = 5) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(kept)), figsize=(3.2 * max(1, len(kept)), 3.4), squeeze=False)
    for ax, (goal, before, after) in zip(axes[0], kept):
        for episodes, colour, label in ((before, "tab:grey", "before"), (after, "tab:blue", "after 1 step")):
            for b in range(min(per_task, episodes.states.shape[1])):
                steps = episodes.mask[:, b].cpu()
                path = torch.cat([episodes.states[:1, b], episodes.next_states[:, b][steps]]).cpu().numpy()
                ax.plot(path[:, 0], path[:, 1], color=colour, lw=0.8, alpha=0.8, label=label if b == 0 else None)
        ax.plot(*goal, "r*", ms=12, label="goal")
        ax.plot(0, 0, "ko", ms=4)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"test tasks: {per_task} episodes before and after one adaptation step", fontsize=9)
    fig.tight_layout()
    run.save_figure(fig, "trajectories.png")


if __name__ == "__main__":
    cli(main, Config, __doc__)
