"""A2C on MiniPacman: the model-free agent of "Imagination and reasoning in RL" (chapter 14).

This agent plays MiniPacman (DeepMind's PillEater, `common/minipacman.py`) in 16 environments at once and
learns with advantage actor-critic: 5 steps in every environment, then one update of the policy (actor) and
the value estimate (critic) on those 80 transitions. Its play later supplies the transitions from which
Chapter_14_Imagination.py learns an environment model, and it is the model-free baseline of Chapter_14_I2A.py.

The book's `OnPolicy`, `ActorCritic` and loop, with `SubprocVecEnv` and `RolloutStorage` from `common/`.

Run it:
    python Chapter_14_Imagine_A2C.py                         # regular mode, 30,000 updates (2.4 million frames)
    python Chapter_14_Imagine_A2C.py --mode hunt --num-updates 2000
    python Chapter_14_Imagine_A2C.py --mode avoid                # rewards x 0.05, entropy 0.005: MODE_SETTINGS
    python Chapter_14_Imagine_A2C.py --help

Time of the default run: about 4 minutes on a 2-core CPU. The network is small: on a GPU it ran slower (about 10
minutes on an H200 shared with other runs; docs/speed.md), so use --device cpu there.
Writes (under runs/Chapter_14_Imagine_A2C/<date-time>/ or --run-dir): config.json, metrics.csv (every
`log_every` updates: mean return and length of the last 100 finished episodes, losses, entropy, frames per
second), learning_curve.png, episode.gif (the trained agent playing one episode), actor_critic_<mode> (the
state_dict, also copied to checkpoints/ (or --checkpoint-dir), where Chapter_14_Imagination.py looks for it),
summary.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from common.minipacman import MODES, MiniPacman, save_gif
from common.rollout import EpisodeStats, RolloutStorage, truncation_values
from common.runtime import (
    Diverged,
    RunConfig,
    RunDir,
    check_finite,
    check_numbers,
    check_ranges,
    cli,
    known,
    publish_checkpoint,
    repo_path,
    require,
    require_memory,
    setup,
    tune_process,
    writable_folder,
)
from common.vec_env import VEC_ENVS, make_vec_env

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

# The book's reward scale and entropy bonus, and where they fail: on hunt and avoid the policy settles on standing
# still and dies (docs/hunt_collapse.md); with the rewards x 0.05 and half the bonus, A2C learns to survive hunt and
# learns avoid (docs/a2c.md: 3 seeds each); on ambush neither learns, but with them the policy stays stochastic and
# lives longer. A Config field given a value, e.g. --reward-scale 1, overrides its mode's.
BOOK_SETTINGS = dict(reward_scale=1.0, entropy_coef=0.01)
SCALED_SETTINGS = dict(reward_scale=0.05, entropy_coef=0.005)
MODE_SETTINGS = dict(
    regular=BOOK_SETTINGS,
    avoid=SCALED_SETTINGS,
    hunt=SCALED_SETTINGS,
    ambush=SCALED_SETTINGS,  # the book's collapses onto one action (docs/a2c.md)
    rush=BOOK_SETTINGS,  # neither setting learns it (docs/a2c.md)
)


@dataclass
class Config(RunConfig):
    mode: str = "regular"  # MiniPacman task: regular, avoid, hunt, ambush or rush (the book: regular)
    num_envs: int = 16  # environments played side by side (the book: 16)
    frame_cap: int = 1000  # steps after which an episode is cut (truncated) (the book: 1000)
    num_updates: int = 30_000  # updates of num_steps x num_envs frames (book's num_frames: 10,000; see docs/a2c.md)
    num_steps: int = 5  # steps per environment between two updates (the book: 5)
    gamma: float = 0.99  # discount (the book: 0.99)
    entropy_coef: float | None = None  # weight of the entropy bonus; None: the mode's, MODE_SETTINGS (the book: 0.01)
    reward_scale: float | None = None  # learner's rewards x this (returns unscaled); None: the mode's (book: 1)
    value_loss_coef: float = 0.5  # weight of the critic's loss (the book: 0.5)
    max_grad_norm: float = 0.5  # gradient clipping (the book: 0.5)
    lr: float = 7e-4  # RMSprop learning rate (the book: 7e-4)
    eps: float = 1e-5  # RMSprop epsilon (the book: 1e-5)
    alpha: float = 0.99  # RMSprop smoothing (the book: 0.99)
    ortho_init: bool = True  # orthogonal initial weights, as SB3/OpenAI baselines (the book: PyTorch's; docs/a2c.md)
    vec_env: str = "sync"  # subproc (the book's SubprocVecEnv) or sync (same semantics in one process: faster)
    log_every: int = 100  # updates between two rows of metrics.csv
    gif_frames: int = 300  # at most this many frames of the final episode in episode.gif (0: no GIF)
    checkpoint_dir: str = ""  # actor_critic_<mode> is also saved here; empty: checkpoints/ in this repository
    threads: int = 1  # CPU threads for torch: 1 holds up on a busy machine; 2 is faster on an idle one (docs/a2c.md)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.mode in MODES, f"--mode {self.mode!r} is unknown: use one of {', '.join(MODES)}")
        require(self.vec_env in VEC_ENVS, f"--vec-env {self.vec_env!r} is unknown: use subproc or sync")
        fill_mode_settings(self)
        check_numbers(self)
        check_ranges(
            self,
            positive=("lr", "eps", "max_grad_norm", "reward_scale"),
            non_negative=("entropy_coef", "value_loss_coef", "gif_frames"),
            at_least_1=("num_envs", "num_updates", "num_steps", "frame_cap", "log_every"),
            fraction=("gamma", "alpha"),
        )


def fill_mode_settings(config) -> None:
    """The fields of MODE_SETTINGS left at None take the values of the config's mode (this script's and I2A's)."""
    for name, value in MODE_SETTINGS[config.mode].items():
        if getattr(config, name) is None:
            setattr(config, name, value)


class OnPolicy(nn.Module):
    """What an on-policy agent offers the loop: acting, and the log-probabilities of actions taken. Extra keyword
    inputs go to `forward` (the I2A agent takes its states' imagined rollouts that way)."""

    def forward(self, x):
        raise NotImplementedError

    def act(self, x: torch.Tensor, deterministic: bool = False, **inputs) -> torch.Tensor:
        logit, _ = self.forward(x, **inputs)
        if not torch.isfinite(logit).all():  # a policy that diverged cannot act (common/runtime.py: Diverged)
            raise Diverged("the policy's outputs became NaN or infinite: the run diverged; try a smaller --lr")
        if deterministic:
            return logit.argmax(dim=1, keepdim=True)
        return torch.multinomial(F.softmax(logit, dim=1), 1)

    def evaluate_actions(self, x: torch.Tensor, action: torch.Tensor, **inputs):
        logit, value = self.forward(x, **inputs)
        probs = F.softmax(logit, dim=1)
        log_probs = F.log_softmax(logit, dim=1)
        action_log_probs = log_probs.gather(1, action)
        entropy = -(probs * log_probs).sum(1).mean()
        return logit, action_log_probs, value, entropy


class ActorCritic(OnPolicy):
    """The book's network: two convolutions (768 features), a 256-unit layer, a critic and an actor head.
    Parameter names and shapes are the book's, so its published `actor_critic_regular` loads."""

    def __init__(self, in_shape, num_actions: int):
        super().__init__()
        self.in_shape = in_shape
        self.features = nn.Sequential(
            nn.Conv2d(in_shape[0], 16, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, kernel_size=3, stride=2),
            nn.ReLU(),
        )
        self.fc = nn.Sequential(nn.Linear(self.feature_size(), 256), nn.ReLU())
        self.critic = nn.Linear(256, 1)
        self.actor = nn.Linear(256, num_actions)

    def forward(self, x: torch.Tensor):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return self.actor(x), self.critic(x)

    def orthogonal_init(self) -> ActorCritic:
        """The initialisation of OpenAI's baselines and Stable-Baselines3 (not in the book): orthogonal weights,
        gain sqrt(2) for the ReLU trunk, 0.01 for the actor (a near-uniform first policy, so early advantages do
        not lock it onto one action) and 1 for the critic; biases 0."""
        for module, gain in ((self.features, 2**0.5), (self.fc, 2**0.5), (self.actor, 0.01), (self.critic, 1.0)):
            for layer in module.modules():
                if isinstance(layer, (nn.Linear, nn.Conv2d)):
                    nn.init.orthogonal_(layer.weight, gain=gain)
                    nn.init.zeros_(layer.bias)
        return self

    def feature_size(self) -> int:
        with torch.no_grad():
            return self.features(torch.zeros(1, *self.in_shape)).view(1, -1).size(1)


def make_env(mode: str, frame_cap: int) -> MiniPacman:
    return MiniPacman(mode, frame_cap)


def main(config: Config) -> dict:
    device, _ = setup(config)
    if config.tune_process:
        tune_process()  # process-wide, for speed: denormal floats flushed, freed memory kept (common/runtime.py)
    require_memory(config.num_envs * config.num_steps * 2**16, "--num-envs x --num-steps")  # ~64 kB per frame
    checkpoint = writable_folder(repo_path(config.checkpoint_dir, "checkpoints"), "--checkpoint-dir")
    checkpoint = checkpoint / f"actor_critic_{config.mode}"
    run = RunDir("Chapter_14_Imagine_A2C", config, device=device, checkpoint=checkpoint.resolve())

    envs = make_vec_env(
        [partial(make_env, config.mode, config.frame_cap) for _ in range(config.num_envs)], config.vec_env
    )
    state_shape = envs.single_observation_space.shape
    num_actions = envs.single_action_space.n

    actor_critic = ActorCritic(state_shape, num_actions)
    if config.ortho_init:
        actor_critic.orthogonal_init()
    actor_critic = actor_critic.to(device)
    optimizer = torch.optim.RMSprop(actor_critic.parameters(), config.lr, eps=config.eps, alpha=config.alpha)
    rollout = RolloutStorage(config.num_steps, config.num_envs, state_shape, device)

    state, _ = envs.reset(seed=config.seed)
    rollout.states[0].copy_(torch.from_numpy(state))
    stats = EpisodeStats(config.num_envs)
    losses, updates = [], 0

    start = time.perf_counter()
    progress = tqdm(range(1, config.num_updates + 1), desc="Chapter_14_Imagine_A2C", unit="update", dynamic_ncols=True)
    try:
        for i_update in progress:
            for step in range(config.num_steps):
                with torch.no_grad():
                    action = actor_critic.act(rollout.states[step])
                next_state, reward, terminated, truncated, info = envs.step(action.squeeze(1).cpu().numpy())

                done = terminated | truncated
                stats.update(reward, done, i_update)
                # the frame cap cut these episodes: the return bootstraps from the value of their real last state
                truncation_value = truncation_values(lambda final: actor_critic(final)[1], info, truncated, device)
                masks = torch.from_numpy(1.0 - done.astype(np.float32)).unsqueeze(1)
                rollout.insert(
                    step,
                    torch.from_numpy(next_state),
                    action,
                    torch.from_numpy(reward * config.reward_scale).float().unsqueeze(1),
                    masks,
                    truncation_value,
                )

            with torch.no_grad():
                _, next_value = actor_critic(rollout.states[-1])
            returns = rollout.compute_returns(next_value, config.gamma)

            logit, action_log_probs, values, entropy = actor_critic.evaluate_actions(
                rollout.states[:-1].view(-1, *state_shape), rollout.actions.view(-1, 1)
            )
            values = values.view(config.num_steps, config.num_envs, 1)
            action_log_probs = action_log_probs.view(config.num_steps, config.num_envs, 1)
            advantages = returns - values
            value_loss = advantages.pow(2).mean()
            action_loss = -(advantages.detach() * action_log_probs).mean()

            optimizer.zero_grad()
            loss = value_loss * config.value_loss_coef + action_loss - entropy * config.entropy_coef
            loss.backward()
            nn.utils.clip_grad_norm_(actor_critic.parameters(), config.max_grad_norm)
            optimizer.step()
            rollout.after_update()
            losses.append(torch.stack([loss.detach(), value_loss.detach(), action_loss.detach(), entropy.detach()]))
            updates = i_update

            if i_update % config.log_every == 0 or i_update == config.num_updates:
                seconds = time.perf_counter() - start
                loss_mean = torch.stack(losses).mean(0).tolist()
                row = dict(
                    update=i_update,
                    frames=i_update * config.num_steps * config.num_envs,
                    mean_return_last_100=stats.mean_return,
                    mean_length_last_100=stats.mean_length,
                    episodes=len(stats.all_returns),
                    loss=loss_mean[0],
                    value_loss=loss_mean[1],
                    action_loss=loss_mean[2],
                    entropy=loss_mean[3],
                    frames_per_s=i_update * config.num_steps * config.num_envs / seconds,
                    seconds=round(seconds, 2),
                )
                run.log(**row)
                check_finite({"loss": row["loss"]}, f"update {i_update}", "try a smaller --lr or --max-grad-norm")
                losses = []
                progress.set_postfix(
                    known(
                        ret=f"{row['mean_return_last_100']:.1f}",
                        ent=f"{row['entropy']:.2f}",
                        fps=f"{row['frames_per_s']:.0f}",
                    )
                )
            if run.checkpoint_due():  # every few minutes, the agent so far in the run directory
                run.save_checkpoint(actor_critic.state_dict(), checkpoint.name)
    except KeyboardInterrupt as error:  # Ctrl+C or a signal: keep what was learnt so far, then stop
        run.stop(error)
    finally:
        envs.close()
    seconds = time.perf_counter() - start

    frames_done = updates * config.num_steps * config.num_envs
    run.save_checkpoint(actor_critic.state_dict(), checkpoint.name)
    if not run.stopped:  # the shared copy, for Chapter_14_Imagination.py: only from a run that finished
        publish_checkpoint(
            actor_critic.state_dict(),
            checkpoint,
            script="Chapter_14_Imagine_A2C.py",
            trained=f"{updates} updates, {frames_done} frames, seed {config.seed}",
            result=f"mean return {stats.mean_return:.1f} over the last 100 episodes",
            run_dir=run.path.resolve(),
        )
    plot_learning_curve(run, stats.all_returns, config)
    if config.gif_frames and not run.stopped:
        frames, gif_return = play_episode(actor_critic, config, device)
        save_gif(frames, run.file("episode.gif"))
    summary = dict(
        mean_return_last_100=stats.mean_return,
        episodes=len(stats.all_returns),
        frames=frames_done,
        updates=updates,
        seconds=round(seconds, 2),
        frames_per_s=round(frames_done / max(seconds, 1e-9), 1),
        entropy_last=run.rows[-1]["entropy"] if run.rows else float("nan"),  # near 0: the policy has collapsed
        mode=config.mode,
        device=str(device),
        seed=config.seed,
        checkpoint=str(checkpoint),
    )
    return run.finish(
        summary,
        f"Chapter_14_Imagine_A2C: {config.mode}, {frames_done} frames in {seconds:.0f} s: mean return "
        f"{summary['mean_return_last_100']:.1f} over the last 100 episodes",
    )


@torch.no_grad()
def play_episode(actor_critic: ActorCritic, config: Config, device: torch.device, seed: int = 0):
    """One episode of the trained agent (sampled actions), its first gif_frames frames and its return."""
    env = MiniPacman(config.mode, config.frame_cap)
    state, _ = env.reset(seed=seed)
    frames, total = [env.render()], 0.0
    torch.manual_seed(seed)
    while True:
        action = actor_critic.act(torch.from_numpy(state).unsqueeze(0).to(device))
        state, reward, terminated, truncated, _ = env.step(int(action))
        total += reward
        if len(frames) < config.gif_frames:
            frames.append(env.render())
        if terminated or truncated:
            return frames, total


def plot_learning_curve(run: RunDir, all_returns: list, config, title: str = "A2C", extra: dict | None = None) -> None:
    """Episode returns, losses and entropy against frames; `extra` ({metrics.csv column: label}) joins the third
    panel."""
    import matplotlib.pyplot as plt

    rows = run.rows
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    if all_returns:
        updates, returns = zip(*all_returns)
        axes[0].scatter(
            np.array(updates) * config.num_steps * config.num_envs / 1e6, returns, s=2, alpha=0.25, label="episodes"
        )
    frames = [r["frames"] / 1e6 for r in rows]
    axes[0].plot(frames, [r["mean_return_last_100"] for r in rows], color="tab:red", label="mean of the last 100")
    axes[0].set(xlabel="million frames", ylabel="episode return")
    axes[0].legend(fontsize=8)
    axes[1].plot(frames, [r["value_loss"] for r in rows], label="value loss")
    axes[1].plot(frames, [r["action_loss"] for r in rows], label="action loss")
    axes[1].set(xlabel="million frames", ylabel="loss")
    axes[1].legend(fontsize=8)
    for key, label in {"entropy": "policy entropy", **(extra or {})}.items():
        axes[2].plot(frames, [r[key] for r in rows], label=label)
    axes[2].set(xlabel="million frames")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"{title} on MiniPacman {config.mode}, {config.num_envs} envs, seed {config.seed}")
    fig.tight_layout()
    run.save_figure(fig, "learning_curve.png")


if __name__ == "__main__":
    cli(main, Config, __doc__)
