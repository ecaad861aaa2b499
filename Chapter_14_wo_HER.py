"""DQN on the bit-flipping task, without hindsight: the baseline of "Using hindsight experience replay".

The book (chapter 14, "使用事后经验重放") shows two nearly identical scripts side by side: this one, and
Chapter_14_HER.py, which adds the hindsight block. Everything the two share lives here (`Env`, `Model`,
`ReplayBuffer`, `get_action`, `compute_td_error` and the training loop `train`); Chapter_14_HER.py imports it.

The task: a state of `num_bits` bits and a target of `num_bits` bits, both random; action i flips bit i;
the reward is -1 on every step until the state equals the target (reward 0, the episode terminates) or the
episode reaches its time limit (truncated). With many bits, random exploration almost never reaches the
target, so plain DQN sees only -1 rewards and learns nothing (the HER paper: DQN fails beyond 13 bits).

Run it:
    python Chapter_14_wo_HER.py                  # the defaults below: 11 bits, 200,000 frames
    python Chapter_14_wo_HER.py --num-bits 8 --max-frames 50000 --device cpu
    python Chapter_14_wo_HER.py --help           # every hyperparameter

Time of the default run: about 30 s on a 2-core CPU. A network this small is slower on a GPU (about 3 minutes on
an H200 shared with other runs; docs/speed.md): use --device cpu there.
Writes (under runs/Chapter_14_wo_HER/<date-time>/ or --run-dir): config.json, metrics.csv (one row per
epoch: success rate, mean return, TD loss, greedy success), learning_curve.png, summary.json.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from common.runtime import (
    RunConfig,
    RunDir,
    check_finite,
    check_ranges,
    cli,
    known,
    require,
    require_memory,
    setup,
    tune_process,
)

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm


@dataclass
class Config(RunConfig):
    num_bits: int = 11  # length of the bit string (the book: 11)
    max_frames: int = 200_000  # training budget in environment steps (the book: 200,000)
    max_steps: int = 0  # episode length; 0 means num_bits, the HER paper's (the book: num_bits + 3)
    batch_size: int = 128  # minibatch of one gradient step (book: 5; 128 as in the HER paper)
    episodes_per_cycle: int = 16  # episodes played, side by side, before each round of updates (HER paper)
    updates_per_cycle: int = 40  # gradient steps after each cycle (book: 1 per episode; HER paper: 40 per 16)
    cycles_per_epoch: int = 50  # cycles between two rows of metrics.csv (HER paper's epoch: 50 cycles)
    buffer_size: int = 1_000_000  # replay buffer capacity in transitions (book: 10,000; HER paper: 10^6)
    gamma: float = 0.98  # discount (book: 0.99; 0.98 as in the HER paper, returns stay above -50)
    epsilon: float = 0.1  # chance of a random action while training (the book: 0.1, but its code ignored it)
    lr: float = 1e-3  # Adam learning rate (the book: 1e-3)
    hidden_size: int = 256  # units of the Model's hidden layer (the book: 256)
    tau: float = 0.05  # target network update after each cycle: target += tau * (model - target) (book: never)
    eval_episodes: int = 100  # fresh episodes of the greedy evaluation after each epoch (the final one: 100)
    threads: int = 1  # CPU threads for torch: 1 is fastest for a network this small (docs/her.md)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(
            self,
            positive=("lr",),
            non_negative=("max_steps", "updates_per_cycle"),
            at_least_1=("num_bits", "max_frames", "batch_size", "episodes_per_cycle", "cycles_per_epoch"),
            fraction=("gamma", "epsilon", "tau"),
        )
        check_ranges(self, at_least_1=("buffer_size", "hidden_size", "eval_episodes"))
        require(
            self.batch_size <= self.buffer_size,
            f"--batch-size {self.batch_size} is larger than --buffer-size {self.buffer_size}: no minibatch to draw",
        )
        require(
            self.episode_length <= self.max_frames,
            f"--max-steps {self.max_steps}: an episode longer than --max-frames {self.max_frames} never ends in budget",
        )

    @property
    def episode_length(self) -> int:
        return self.max_steps or self.num_bits


class Env:
    """The book's bit-flipping environment, playing `num_envs` episodes side by side (one row each).

    `reset()` returns copies of (state, target); `step(action)` flips bit action[i] of every episode i still
    running and returns copies of (next_state, reward, terminated, truncated). An episode terminates when its
    state equals its target (reward 0), and is truncated, not terminated, when it reaches `max_steps`.
    Finished episodes ignore their actions until the next `reset()`.
    """

    def __init__(self, num_bits: int, max_steps: int | None = None, num_envs: int = 1, seed: int | None = None):
        self.num_bits = num_bits
        self.max_steps = max_steps or num_bits
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.done = np.ones(num_envs, dtype=bool)

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        self.num_steps = 0
        self.done = np.zeros(self.num_envs, dtype=bool)
        self.state = self.rng.integers(0, 2, size=(self.num_envs, self.num_bits), dtype=np.uint8)
        self.target = self.rng.integers(0, 2, size=(self.num_envs, self.num_bits), dtype=np.uint8)
        return self.state.copy(), self.target.copy()

    def step(self, action: np.ndarray):
        if self.done.all():
            raise RuntimeError("every episode is over: call reset() before step()")
        running = np.flatnonzero(~self.done)
        self.state[running, np.asarray(action)[running]] ^= 1
        self.num_steps += 1
        reached = (self.state == self.target).all(axis=1)
        terminated = ~self.done & reached
        truncated = ~self.done & ~reached & (self.num_steps >= self.max_steps)
        reward = np.where(self.done, 0.0, np.where(reached, 0.0, -1.0)).astype(np.float32)
        self.done = self.done | terminated | truncated
        return self.state.copy(), reward, terminated, truncated


class Model(nn.Module):
    """The book's Q-network: concat(state, goal) -> 256 ReLU -> one Q-value per bit to flip."""

    def __init__(self, num_inputs: int, num_outputs: int, hidden_size: int = 256):
        super().__init__()
        self.linear1 = nn.Linear(num_inputs, hidden_size)
        self.linear2 = nn.Linear(hidden_size, num_outputs)

    def forward(self, state: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        x = torch.cat([state, goal], 1)
        x = F.relu(self.linear1(x))
        return self.linear2(x)


class ReplayBuffer:
    """A ring buffer of transitions (state, action, reward, next_state, terminated, goal), kept on `device`.

    The bits of state, next_state and goal are stored together as uint8 (a million transitions of 50 bits take
    150 MB), so a sample is four index operations; `sample` returns float tensors. `terminated` is 1 only
    where the goal was reached: a time-limit end is not terminal.
    """

    def __init__(self, capacity: int, num_bits: int, device: torch.device, seed: int = 0):
        self.capacity = capacity
        self.device = device
        self.bits = torch.zeros(capacity, 3, num_bits, dtype=torch.uint8, device=device)  # state, next_state, goal
        self.action = torch.zeros(capacity, dtype=torch.long, device=device)
        self.reward = torch.zeros(capacity, dtype=torch.float32, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.float32, device=device)
        self.position = 0
        self.size = 0
        self.generator = torch.Generator().manual_seed(seed)

    def push(self, state, action, reward, next_state, terminated, goal) -> None:
        """Add a batch of transitions (arrays with one row per transition), overwriting the oldest."""
        bits = np.stack([state, next_state, goal], axis=1)[-self.capacity :]  # only the newest that fit
        n = len(bits)
        index = ((self.position + torch.arange(n)) % self.capacity).to(self.device)
        for buffer, values in (
            (self.bits, bits),
            (self.action, action),
            (self.reward, reward),
            (self.terminated, terminated),
        ):
            buffer[index] = torch.as_tensor(np.asarray(values)[-n:]).to(self.device, buffer.dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int):
        index = torch.randint(self.size, (batch_size,), generator=self.generator).to(self.device)
        state, next_state, goal = self.bits[index].float().unbind(1)
        return state, self.action[index], self.reward[index], next_state, self.terminated[index], goal

    def __len__(self) -> int:
        return self.size


@torch.no_grad()
def get_action(
    model: Model, state: np.ndarray, goal: np.ndarray, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """Epsilon-greedy actions for a batch of states: random with probability epsilon, else argmax Q."""
    device = next(model.parameters()).device
    q_value = model(
        torch.as_tensor(state, dtype=torch.float32, device=device),
        torch.as_tensor(goal, dtype=torch.float32, device=device),
    )
    action = q_value.argmax(1).cpu().numpy()
    explore = rng.random(len(action)) < epsilon
    action[explore] = rng.integers(0, q_value.shape[1], size=int(explore.sum()))
    return action


def compute_td_error(model, target_model, optimizer, replay_buffer: ReplayBuffer, batch_size: int, gamma: float):
    """One DQN step on a sampled minibatch; returns the loss (a detached tensor), or None if too few samples."""
    if batch_size > len(replay_buffer):
        return None
    state, action, reward, next_state, terminated, goal = replay_buffer.sample(batch_size)

    q_value = model(state, goal).gather(1, action.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        next_q_value = target_model(next_state, goal).max(1).values
        # Only a reached goal ends the return; a time-limit end (truncation) still bootstraps.
        expected_q_value = reward + gamma * next_q_value * (1 - terminated)
    loss = (q_value - expected_q_value).pow(2).mean()

    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def update_target(target_model: nn.Module, model: nn.Module, tau: float) -> None:
    """Move the target network towards the online network: target += tau * (model - target)."""
    for target_param, param in zip(target_model.parameters(), model.parameters()):
        target_param.lerp_(param, tau)


@dataclass
class Episodes:
    """A batch of episodes played side by side, time-major: arrays of shape (steps, num_envs, ...).

    `running[t, i]` says whether episode i was still running at step t, i.e. whether (t, i) is a transition.
    """

    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_state: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    goal: np.ndarray  # (num_envs, num_bits): each episode's target
    running: np.ndarray

    def transitions(self):
        """The real transitions, one row each: (state, action, reward, next_state, terminated, goal)."""
        t, i = np.nonzero(self.running)
        return (
            self.state[t, i],
            self.action[t, i],
            self.reward[t, i],
            self.next_state[t, i],
            self.terminated[t, i],
            self.goal[i],
        )

    @property
    def success(self) -> np.ndarray:
        return self.terminated.any(axis=0)

    @property
    def returns(self) -> np.ndarray:
        return self.reward.sum(axis=0)

    @property
    def frames(self) -> int:
        return int(self.running.sum())


def play_episodes(env: Env, model: Model, epsilon: float, rng: np.random.Generator) -> Episodes:
    """Play one episode in each of env's rows, side by side, with epsilon-greedy actions."""
    state, goal = env.reset()
    steps = []
    while not env.done.all():
        running = ~env.done
        action = get_action(model, state, goal, epsilon, rng)
        next_state, reward, terminated, truncated = env.step(action)
        steps.append((state, action, reward, next_state, terminated, truncated, running))
        state = next_state
    state, action, reward, next_state, terminated, truncated, running = (np.stack(x) for x in zip(*steps))
    return Episodes(state, action, reward, next_state, terminated, truncated, goal, running)


def evaluate(model: Model, config: Config, episodes: int, seed: int) -> tuple[float, float]:
    """Greedy success rate and mean return over `episodes` fresh episodes."""
    env = Env(config.num_bits, config.episode_length, num_envs=episodes, seed=seed)
    played = play_episodes(env, model, epsilon=0.0, rng=np.random.default_rng(seed))
    return float(played.success.mean()), float(played.returns.mean())


def train(config: Config, hindsight=None, script: str = "Chapter_14_wo_HER") -> dict:
    """DQN training; `hindsight(episodes, replay_buffer, rng)`, when given, adds relabelled transitions."""
    device, rng = setup(config)
    if config.tune_process:
        tune_process()  # process-wide, for speed: denormal floats flushed, freed memory kept (common/runtime.py)
    require_memory(config.buffer_size * (3 * config.num_bits + 16), "--buffer-size's replay buffer")
    run = RunDir(script, config, device=device)

    env = Env(config.num_bits, config.episode_length, num_envs=config.episodes_per_cycle, seed=config.seed)
    model = Model(2 * config.num_bits, config.num_bits, config.hidden_size).to(device)
    target_model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type in ("cpu", "cuda"))
    replay_buffer = ReplayBuffer(config.buffer_size, config.num_bits, device, seed=config.seed)

    frames, gradient_steps, cycle, epoch = 0, 0, 0, 0
    successes, returns, losses = [], [], []
    start = time.perf_counter()
    progress = tqdm(total=config.max_frames, unit="frame", dynamic_ncols=True, desc=script)
    try:
        while frames < config.max_frames:
            episodes = play_episodes(env, model, config.epsilon, rng)
            replay_buffer.push(*episodes.transitions())
            if hindsight is not None:
                hindsight(episodes, replay_buffer, rng)

            for _ in range(config.updates_per_cycle):
                loss = compute_td_error(model, target_model, optimizer, replay_buffer, config.batch_size, config.gamma)
                if loss is not None:
                    losses.append(loss)
                    gradient_steps += 1
            update_target(target_model, model, config.tau)

            cycle += 1
            frames += episodes.frames
            successes.extend(episodes.success)
            returns.extend(episodes.returns)
            progress.update(min(episodes.frames, config.max_frames - progress.n))

            if cycle % config.cycles_per_epoch == 0 or frames >= config.max_frames:
                epoch += 1
                eval_success, eval_return = evaluate(model, config, config.eval_episodes, seed=10**6 + epoch)
                row = dict(
                    epoch=epoch,
                    frames=frames,
                    episodes=cycle * config.episodes_per_cycle,
                    gradient_steps=gradient_steps,
                    success_rate=float(np.mean(successes)),
                    mean_return=float(np.mean(returns)),
                    td_loss=float(torch.stack(losses).mean()) if losses else float("nan"),
                    greedy_success_rate=eval_success,
                    seconds=round(time.perf_counter() - start, 2),
                )
                run.log(**row)
                if losses:
                    check_finite({"TD loss": row["td_loss"]}, f"epoch {epoch}", "try a smaller --lr")
                progress.set_postfix(
                    known(
                        success=f"{row['success_rate']:.2f}",
                        greedy=f"{eval_success:.2f}",
                        ret=f"{row['mean_return']:.1f}",
                        loss=f"{row['td_loss']:.3f}",
                    )
                )
                successes, returns, losses = [], [], []
    except KeyboardInterrupt as error:  # Ctrl+C or a signal: finish with what was learnt so far
        run.stop(error)
    progress.close()
    seconds = time.perf_counter() - start

    # The final figure: the greedy policy on fresh episodes it never saw.
    success_rate, mean_return = evaluate(model, config, 100, seed=2**31 - 1 - config.seed)
    plot_learning_curve(run, f"{script}: {config.num_bits} bits, seed {config.seed}")
    summary = dict(
        success_rate=success_rate,
        mean_return=mean_return,
        num_bits=config.num_bits,
        episode_length=config.episode_length,
        hindsight=hindsight is not None,
        frames=frames,
        episodes=cycle * config.episodes_per_cycle,
        gradient_steps=gradient_steps,
        seconds=round(seconds, 2),
        device=str(device),
        seed=config.seed,
    )
    return run.finish(
        summary,
        f"{script}: {config.num_bits} bits, {frames} frames in {seconds:.0f} s: "
        f"greedy success rate {success_rate:.2f}, mean return {mean_return:.2f} (100 fresh episodes)",
    )


def plot_learning_curve(run: RunDir, title: str) -> None:
    import matplotlib.pyplot as plt

    frames = [row["frames"] for row in run.rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(frames, [row["success_rate"] for row in run.rows], label="training episodes (epsilon-greedy)")
    axes[0].plot(frames, [row["greedy_success_rate"] for row in run.rows], label="greedy, fresh episodes")
    axes[0].set(xlabel="frames", ylabel="success rate", ylim=(-0.03, 1.03))
    axes[0].legend(fontsize=8)
    axes[1].plot(frames, [row["mean_return"] for row in run.rows])
    axes[1].set(xlabel="frames", ylabel="mean return (training episodes)")
    axes[2].plot(frames, [row["td_loss"] for row in run.rows])
    axes[2].set(xlabel="frames", ylabel="TD loss", yscale="log")
    fig.suptitle(title)
    fig.tight_layout()
    run.save_figure(fig, "learning_curve.png")


def main(config: Config) -> dict:
    return train(config)


if __name__ == "__main__":
    cli(main, Config, __doc__)
