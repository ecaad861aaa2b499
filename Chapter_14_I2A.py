"""The Imagination-Augmented Agent (I2A, Weber et al. 2017) on MiniPacman: "Understanding the imagination-augmented
agent" (理解增强想象力代理) in chapter 14.

An A2C agent whose policy also reads imagined futures. From every state it meets, the `ImaginationCore` plays
one rollout per action through the frozen environment model of Chapter_14_Imagination.py (`rollout_depth` steps
deep, the book's `num_rolouts`; after the first action, the small distilled policy picks the actions); a
`RolloutEncoder` (convolutions
on each imagined frame, with the imagined reward, then a GRU read from the last imagined step back to the
first) sums each rollout up in 256 numbers; the `I2A` network joins those 5 x 256 numbers to its own
model-free view of the frame and outputs the policy and the value. A2C trains the agent as in
Chapter_14_Imagine_A2C.py; the distil policy is trained, by its own Adam, to imitate the agent's policy
(cross-entropy), so the rollouts' later actions look like the agent's.

The book's `ImaginationCore`, `RolloutEncoder`, `I2A`, distil policy and loop. Fixed from the book: the
distil policy has its own optimiser step and the cross-entropy's sign is right (the book stepped the agent's
optimiser a second time and pushed the distil policy away from the agent); imagined frames are decoded with
the environment model's own palette and pixel layout (the book swapped two colours and scrambled the frames);
each state gets its own rollouts, one per action (the book's batch mixed states up); depth > 1 feeds one
action per rollout (the book's one-hot set several); the GRU reads the rollout backwards, as in the paper; the
environment model is frozen and in eval mode. Faster: imagination runs once per state, under no_grad, on the
device (in bfloat16 where the device runs it natively), and the update reuses it (the book imagined every state
twice, the second time for nothing).

Run it (after Chapter_14_Imagine_A2C.py and Chapter_14_Imagination.py for the same --mode):
    python Chapter_14_I2A.py
    python Chapter_14_I2A.py --mode hunt --num-updates 2000
    python Chapter_14_I2A.py --env-model <the book's env_model_regular>     # docs/install.md: the book's checkpoints
    python Chapter_14_I2A.py --help

Time of the default run: about 26 minutes on a 2-core CPU with native bfloat16 (AVX-512 BF16), about 2 hours
without (AVX2, float32; docs/i2a.md); about 6 minutes on a GPU (an H200 shared with other runs). The book's
1,000,000 updates would take weeks on a CPU.
Writes (under runs/Chapter_14_I2A/<date-time>/ or --run-dir): config.json, metrics.csv (every `log_every`
updates: mean return of the last 100 episodes, losses, the distil policy's agreement with the agent, frames
per second), learning_curve.png, episode.gif, i2a_<mode> and distil_policy_<mode> (state_dicts, in the run
directory only), summary.json.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common.minipacman import MODES, MiniPacman, reward_classes, save_gif
from common.rollout import EpisodeStats, RolloutStorage, truncation_values
from common.runtime import (
    BF16_CHOICES,
    RunConfig,
    RunDir,
    check_finite,
    check_numbers,
    check_ranges,
    cli,
    known,
    repo_path,
    require,
    require_memory,
    resolve_bf16,
    setup,
    tune_process,
)
from common.vec_env import VEC_ENVS, make_vec_env

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from Chapter_14_Imagination import load_env_model, num_pixels, onehot_actions, pix_to_target, target_to_pix
from Chapter_14_Imagine_A2C import (
    ActorCritic,
    OnPolicy,
    fill_mode_settings,
    make_env,
    play_episode,
    plot_learning_curve,
)


@dataclass
class Config(RunConfig):
    mode: str = "regular"  # MiniPacman task: regular, avoid, hunt, ambush or rush (the book: regular)
    num_envs: int = 16  # environments played side by side (the book: 16)
    frame_cap: int = 1000  # steps after which an episode is cut (truncated) (the book: 1000)
    num_updates: int = 10_000  # updates of num_steps x num_envs frames (book's num_frames: 1,000,000, 23 days)
    num_steps: int = 5  # steps per environment between two updates (the book: 5)
    rollout_depth: int = 1  # imagined steps per rollout (the book's num_rolouts: 1)
    hidden_size: int = 256  # the rollout encoder's GRU size (the book: 256)
    full_rollout: bool = True  # one rollout per action (True), or one rollout led by the distil policy (the book: True)
    gamma: float = 0.99  # discount (the book: 0.99)
    entropy_coef: float | None = None  # weight of the entropy bonus; None: the mode's, as A2C's (the book: 0.01)
    reward_scale: float | None = None  # learner's rewards x this (returns unscaled); None: the mode's (book: 1)
    value_loss_coef: float = 0.5  # weight of the critic's loss (the book: 0.5)
    max_grad_norm: float = 0.5  # gradient clipping (the book: 0.5)
    lr: float = 7e-4  # RMSprop learning rate of the agent (the book: 7e-4)
    eps: float = 1e-5  # RMSprop epsilon (the book: 1e-5)
    alpha: float = 0.99  # RMSprop smoothing (the book: 0.99)
    distil_lr: float = 1e-3  # Adam learning rate of the distil policy (the book: Adam's default, 1e-3)
    distil_coef: float = 0.01  # weight of the distillation cross-entropy (the book: 0.01)
    env_model: str = ""  # the environment model; empty: <checkpoint-dir>/env_model_<mode> (Chapter_14_Imagination.py)
    copy_model: bool = False  # imagine with CopyModel (next frame = this frame): the I2A paper's control
    checkpoint_dir: str = ""  # where the environment model is looked for; empty: checkpoints/ in this repository
    bf16: str = "auto"  # imagine in bfloat16: auto (where the device runs it natively), on or off (float32)
    vec_env: str = "sync"  # subproc (the book's SubprocVecEnv) or sync (same semantics in one process: faster)
    log_every: int = 100  # updates between two rows of metrics.csv
    gif_frames: int = 300  # at most this many frames of the final episode in episode.gif (0: no GIF)
    threads: int = 2  # CPU threads for torch; their OpenMP workers wait passively, so 2 holds up on a busy machine

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.mode in MODES, f"--mode {self.mode!r} is unknown: use one of {', '.join(MODES)}")
        require(self.vec_env in VEC_ENVS, f"--vec-env {self.vec_env!r} is unknown: use subproc or sync")
        require(self.bf16 in BF16_CHOICES, f"--bf16 {self.bf16!r} is unknown: use auto, on or off")
        fill_mode_settings(self)  # the A2C script's per-mode settings: the same learner
        check_numbers(self)
        check_ranges(
            self,
            positive=("lr", "eps", "max_grad_norm", "distil_lr", "reward_scale"),
            non_negative=("entropy_coef", "value_loss_coef", "distil_coef", "gif_frames"),
            at_least_1=("num_envs", "num_updates", "num_steps", "rollout_depth", "hidden_size", "frame_cap"),
            fraction=("gamma", "alpha"),
        )
        check_ranges(self, at_least_1=("log_every",))


class I2A(OnPolicy):
    """The agent: a model-free path (the A2C convolutions, 768 features) beside the encoded rollouts
    (num_actions x hidden_size), a 256-unit layer, then the actor and the critic."""

    def __init__(self, in_shape, num_actions, num_rewards, hidden_size, imagination, full_rollout=True):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.num_actions = num_actions
        self.num_rewards = num_rewards
        self.imagination = imagination
        self.features = nn.Sequential(
            nn.Conv2d(in_shape[0], 16, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, kernel_size=3, stride=2),
            nn.ReLU(),
        )
        self.encoder = RolloutEncoder(in_shape, num_rewards, hidden_size)
        rollouts = num_actions if full_rollout else 1
        self.fc = nn.Sequential(nn.Linear(self.feature_size() + rollouts * hidden_size, 256), nn.ReLU())
        self.critic = nn.Linear(256, 1)
        self.actor = nn.Linear(256, num_actions)

    def forward(self, state: torch.Tensor, imagined=None):
        """`imagined`: the states' rollouts, when already computed (the loop keeps those it acted on)."""
        batch_size = state.size(0)
        imagined_state, imagined_reward = imagined if imagined is not None else self.imagination(state)
        hidden = self.encoder(imagined_state, imagined_reward)
        hidden = hidden.view(batch_size, -1)

        state = self.features(state)
        state = state.view(state.size(0), -1)

        x = torch.cat([state, hidden], 1)
        x = self.fc(x)
        return self.actor(x), self.critic(x)

    def feature_size(self) -> int:
        with torch.no_grad():
            return self.features(torch.zeros(1, *self.in_shape)).view(1, -1).size(1)


class ImaginationCore:
    """Imagined rollouts through the frozen environment model. Not an nn.Module on purpose: the environment model
    and the distil policy are not the agent's parameters."""

    def __init__(
        self, rollout_depth, in_shape, num_actions, num_rewards, env_model, distil_policy, full_rollout=True, bf16=False
    ):
        self.rollout_depth = rollout_depth  # the book: num_rolouts
        self.in_shape = tuple(in_shape)
        self.num_actions = num_actions
        self.num_rewards = num_rewards
        # frozen; channels-last memory suits the CPU's convolution kernels (oneDNN) best
        self.env_model = env_model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.distil_policy = distil_policy
        self.full_rollout = full_rollout
        self.bf16 = bf16

    @torch.no_grad()
    def __call__(self, state: torch.Tensor):
        """state (B, 3, H, W) -> imagined frames (rollout_depth, B*R, 3, H, W) and one-hot imagined rewards
        (rollout_depth, B*R, num_rewards), R = num_actions rollouts per state (full rollout) or 1. Rollouts of state i
        are rows i*R ... i*R + R-1, the first taking action 0, the next action 1, and so on."""
        batch_size = state.size(0)
        if self.full_rollout:
            state = state.repeat_interleave(self.num_actions, 0)
            action = torch.arange(self.num_actions, device=state.device).repeat(batch_size)
        else:
            action = self.distil_policy.act(state).view(-1)
        rollout_states, rollout_rewards = [], []
        autocast = torch.autocast(state.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        for step in range(self.rollout_depth):
            inputs = torch.cat([state, onehot_actions(action, self.num_actions, self.in_shape)], 1)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
            with autocast:
                imagined_state, imagined_reward = self.env_model(inputs)
            imagined_state = target_to_pix(imagined_state.argmax(1), self.in_shape)
            onehot_reward = F.one_hot(imagined_reward.argmax(1), self.num_rewards).float()
            rollout_states.append(imagined_state)
            rollout_rewards.append(onehot_reward)
            state = imagined_state
            if step + 1 < self.rollout_depth:
                action = self.distil_policy.act(state).view(-1)
        return torch.stack(rollout_states), torch.stack(rollout_rewards)


class RolloutEncoder(nn.Module):
    """One imagined rollout -> 256 numbers: the frames through two convolutions, each with its imagined reward,
    into a GRU that reads the rollout from its last step back to its first (the paper's order)."""

    def __init__(self, in_shape, num_rewards: int, hidden_size: int):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.features = nn.Sequential(
            nn.Conv2d(in_shape[0], 16, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, kernel_size=3, stride=2),
            nn.ReLU(),
        )
        self.gru = nn.GRU(self.feature_size() + num_rewards, hidden_size)

    def forward(self, state: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """state (num_steps, batch, 3, H, W), reward (num_steps, batch, num_rewards) -> (batch, hidden_size)."""
        num_steps, batch_size = state.shape[:2]
        state = self.features(state.reshape(-1, *self.in_shape)).view(num_steps, batch_size, -1)
        rnn_input = torch.cat([state, reward], 2).flip(0)  # last imagined step first
        _, hidden = self.gru(rnn_input)
        return hidden.squeeze(0)

    def feature_size(self) -> int:
        with torch.no_grad():
            return self.features(torch.zeros(1, *self.in_shape)).view(1, -1).size(1)


class CopyModel(nn.Module):
    """The I2A paper's "copy-model" control: an environment model that imagines nothing, its next frame being the
    frame it is given and its reward class always the first. An I2A built on it has the same networks and
    parameters as the real one, so the difference between the two is what imagination adds."""

    def __init__(self, num_rewards: int):
        super().__init__()
        self.num_rewards = num_rewards

    def forward(self, inputs: torch.Tensor):
        """(frame + one-hot action planes) -> the EnvModel's outputs: pixel-class logits (one-hot of the frame's own
        colours, N*H*W rows) and reward logits (all zero)."""
        frame = inputs[:, :3]
        image = F.one_hot(pix_to_target(frame), num_pixels).float()
        return image, frame.new_zeros(frame.size(0), self.num_rewards)


def distillation_loss(logit: torch.Tensor, distil_logit: torch.Tensor, coef: float) -> torch.Tensor:
    """coef x the cross-entropy from the agent's policy (a fixed target) to the distil policy's. The book's
    line lacked the minus sign: minimising it pushed the distil policy away from the agent."""
    return -coef * (F.softmax(logit, dim=1).detach() * F.log_softmax(distil_logit, dim=1)).sum(1).mean()


def build_agent(config: Config, device: torch.device):
    """Environment model (frozen; or the copy model), distil policy, imagination, I2A agent and the two optimisers."""
    in_shape, num_actions = MiniPacman.observation_space.shape, MiniPacman.action_space.n
    num_rewards = len(reward_classes(config.mode))
    if config.copy_model:
        path, env_model = "copy model", CopyModel(num_rewards).to(device)
    else:
        if config.env_model:
            path, hint = Path(config.env_model), "Check the path given to --env-model."
        else:
            path, hint = repo_path(config.checkpoint_dir, "checkpoints") / f"env_model_{config.mode}", ""
        env_model = load_env_model(path, config.mode, device, hint)
        path = path.resolve()
    distil_policy = ActorCritic(in_shape, num_actions).to(device)
    distil_optimizer = torch.optim.Adam(distil_policy.parameters(), lr=config.distil_lr)
    imagination = ImaginationCore(
        config.rollout_depth,
        in_shape,
        num_actions,
        num_rewards,
        env_model,
        distil_policy,
        full_rollout=config.full_rollout,
        bf16=resolve_bf16(config.bf16, device),
    )
    actor_critic = I2A(
        in_shape, num_actions, num_rewards, config.hidden_size, imagination, full_rollout=config.full_rollout
    ).to(device)
    optimizer = torch.optim.RMSprop(actor_critic.parameters(), config.lr, eps=config.eps, alpha=config.alpha)
    return actor_critic, optimizer, distil_policy, distil_optimizer, path


def main(config: Config) -> dict:
    device, _ = setup(config)
    if config.tune_process:
        tune_process()  # process-wide, for speed: denormal floats flushed, freed memory kept (common/runtime.py)
    # imagined frames kept for the update: num_actions rollouts per state, ~1 MB of model activations per frame
    imagined = config.num_envs * config.num_steps * 5 * config.rollout_depth
    require_memory(imagined * 2**20, "--num-envs x --num-steps x --rollout-depth")
    # a bad model file stops here, before anything is written
    actor_critic, optimizer, distil_policy, distil_optimizer, env_model_path = build_agent(config, device)
    bf16 = actor_critic.imagination.bf16
    run = RunDir("Chapter_14_I2A", config, device=device, env_model=env_model_path, bf16=bf16)

    envs = make_vec_env(
        [partial(make_env, config.mode, config.frame_cap) for _ in range(config.num_envs)], config.vec_env
    )
    state_shape = envs.single_observation_space.shape
    rollout = RolloutStorage(config.num_steps, config.num_envs, state_shape, device)

    state, _ = envs.reset(seed=config.seed)
    rollout.states[0].copy_(torch.from_numpy(state))
    next_imagined = actor_critic.imagination(rollout.states[0])
    stats = EpisodeStats(config.num_envs)
    losses, updates = [], 0

    start = time.perf_counter()
    progress = tqdm(range(1, config.num_updates + 1), desc="Chapter_14_I2A", unit="update", dynamic_ncols=True)
    try:
        for i_update in progress:
            imagined = []
            for step in range(config.num_steps):
                imagined.append(next_imagined)
                with torch.no_grad():
                    action = actor_critic.act(rollout.states[step], imagined=next_imagined)
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
                # imagined once, used to act on the next step and again in the update; the last step's is also the next
                # update's first (imagined before this update's distil step: at depth > 1 its later actions are one
                # update old)
                next_imagined = actor_critic.imagination(rollout.states[step + 1])

            with torch.no_grad():
                _, next_value = actor_critic(rollout.states[-1], imagined=next_imagined)
            returns = rollout.compute_returns(next_value, config.gamma)

            states = rollout.states[:-1].view(-1, *state_shape)
            logit, action_log_probs, values, entropy = actor_critic.evaluate_actions(
                states, rollout.actions.view(-1, 1), imagined=stack_imagined(imagined)
            )
            distil_logit, _, _, _ = distil_policy.evaluate_actions(states, rollout.actions.view(-1, 1))
            distil_loss = distillation_loss(logit, distil_logit, config.distil_coef)

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
            distil_optimizer.zero_grad()
            distil_loss.backward()
            distil_optimizer.step()
            rollout.after_update()
            agreement = (logit.argmax(1) == distil_logit.argmax(1)).float().mean()
            losses.append(
                torch.stack(
                    [
                        loss.detach(),
                        value_loss.detach(),
                        action_loss.detach(),
                        entropy.detach(),
                        distil_loss.detach() / config.distil_coef if config.distil_coef else distil_loss.detach(),
                        agreement,
                    ]
                )
            )
            updates = i_update

            if i_update % config.log_every == 0 or i_update == config.num_updates:
                seconds = time.perf_counter() - start
                m = torch.stack(losses).mean(0).tolist()
                frames = i_update * config.num_steps * config.num_envs
                row = dict(
                    update=i_update,
                    frames=frames,
                    mean_return_last_100=stats.mean_return,
                    mean_length_last_100=stats.mean_length,
                    episodes=len(stats.all_returns),
                    loss=m[0],
                    value_loss=m[1],
                    action_loss=m[2],
                    entropy=m[3],
                    distil_cross_entropy=m[4],
                    distil_agreement=m[5],
                    frames_per_s=frames / seconds,
                    updates_per_s=i_update / seconds,
                    seconds=round(seconds, 2),
                )
                run.log(**row)
                check_finite({"loss": m[0], "distillation loss": m[4]}, f"update {i_update}", "try a smaller --lr")
                losses = []
                progress.set_postfix(
                    known(
                        ret=f"{row['mean_return_last_100']:.1f}", agree=f"{m[5]:.2f}", fps=f"{row['frames_per_s']:.0f}"
                    )
                )
            if run.checkpoint_due():  # every few minutes, the agent so far in the run directory
                run.save_checkpoint(actor_critic.state_dict(), f"i2a_{config.mode}")
    except KeyboardInterrupt as error:  # Ctrl+C or a signal: keep what was learnt so far, then stop
        run.stop(error)
    finally:
        envs.close()
    seconds = time.perf_counter() - start

    run.save_checkpoint(actor_critic.state_dict(), f"i2a_{config.mode}")
    run.save_checkpoint(distil_policy.state_dict(), f"distil_policy_{config.mode}")
    plot_learning_curve(
        run,
        stats.all_returns,
        config,
        title=f"I2A (rollout depth {config.rollout_depth})",
        extra={"distil_agreement": "distil policy agrees with the agent"},
    )
    if config.gif_frames and not run.stopped:
        actor_critic.eval()
        frames, _ = play_episode(actor_critic, config, device)
        save_gif(frames, run.file("episode.gif"))
    frames_done = updates * config.num_steps * config.num_envs
    summary = dict(
        mean_return_last_100=stats.mean_return,
        episodes=len(stats.all_returns),
        frames=frames_done,
        updates=updates,
        seconds=round(seconds, 2),
        frames_per_s=round(frames_done / max(seconds, 1e-9), 1),
        updates_per_s=round(updates / max(seconds, 1e-9), 3),
        distil_agreement=run.rows[-1]["distil_agreement"] if run.rows else float("nan"),
        entropy_last=run.rows[-1]["entropy"] if run.rows else float("nan"),  # near 0: the policy has collapsed
        mode=config.mode,
        rollout_depth=config.rollout_depth,
        copy_model=config.copy_model,
        bf16=bf16,
        device=str(device),
        seed=config.seed,
    )
    return run.finish(
        summary,
        f"Chapter_14_I2A: {config.mode}, {frames_done} frames in {seconds:.0f} s: mean return "
        f"{summary['mean_return_last_100']:.1f} over the last 100 episodes",
    )


def stack_imagined(imagined: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The rollouts of num_steps batches of states, joined along the batch axis in the order of the storage."""
    return torch.cat([i[0] for i in imagined], 1), torch.cat([i[1] for i in imagined], 1)


if __name__ == "__main__":
    cli(main, Config, __doc__)
