"""The environment model of MiniPacman: "Generating imagination" (生成想象) in chapter 14.

The trained A2C agent (`actor_critic_<mode>`, from Chapter_14_Imagine_A2C.py) plays 16 games; from each
transition (frame, action) -> (next frame, reward) the book's `EnvModel` learns to predict the next frame, as
one of 7 colour classes per pixel, and the reward, as one of the mode's reward classes: cross-entropy on both,
loss = image + 0.1 x reward, Adam. This is the model Chapter_14_I2A.py imagines with.

The book's `BasicBlock`, `EnvModel`, `play_games`, `pix_to_target`, `target_to_pix` and `rewards_to_target`,
with the book's parameter names and colour classes, so the `env_model_regular` the book's repository published
loads here (bench/book_env_model_score.py scores it on our MiniPacman). Fixed from the book: the reward classes
come from the environment's own reward list, so every mode trains (the book's hand-written table missed
rewards and crashed every mode but regular); a transition that ends an episode is learnt with the episode's
real last frame, not with the first frame of the next episode; pixels are mapped to classes in one tensor
operation on the device; the model is scored on held-out games, one step ahead and 5 steps open-loop.

Run it (after `python Chapter_14_Imagine_A2C.py`, which writes checkpoints/actor_critic_regular):
    python Chapter_14_Imagination.py
    python Chapter_14_Imagination.py --mode hunt   # needs checkpoints/actor_critic_hunt; 8 games scripted, pooled head
    python Chapter_14_Imagination.py --actor-critic <the book's actor_critic_regular>  # docs/install.md
    python Chapter_14_Imagination.py --help

Time of the default run: about 4 minutes on a 2-core CPU, about 1 minute on a GPU (an H200 shared with other runs).
Writes (under runs/Chapter_14_Imagination/<date-time>/ or --run-dir): config.json, metrics.csv (every
`log_every` updates: losses; every `eval_every`: held-out accuracies), loss_curve.png, imagined.png (imagined
against actual frames over several steps, open loop), env_model_<mode> (the state_dict, also copied to
--checkpoint-dir, where Chapter_14_I2A.py looks for it), summary.json.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common.minipacman import MODES, MiniPacman, reward_classes
from common.runtime import (
    RunConfig,
    RunDir,
    UsageError,
    check_finite,
    check_ranges,
    cli,
    known,
    load_checkpoint,
    load_state,
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

# The colour classes, in the order the book's environment model was trained with:
# power pill cyan, pacman green, food blue, wall white, edible ghost yellow, empty black, ghost red.
pixels = (
    (0.0, 1.0, 1.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 1.0),
    (1.0, 1.0, 0.0),
    (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0),
)
num_pixels = len(pixels)
PIXELS = torch.tensor(pixels)
# Colour -> class through a 3-bit code (4 red + 2 green + blue) of the channel-wise ceiling: an edible ghost
# (1, power/20, 0) of any shade rounds up to yellow, a dangerous one (1, 0, 0) stays red. Code 5 (magenta) never occurs.
CODE_TO_CLASS = torch.full((8,), -1, dtype=torch.long)
for _class, (_r, _g, _b) in enumerate(pixels):
    CODE_TO_CLASS[int(4 * _r + 2 * _g + _b)] = _class


@dataclass
class Config(RunConfig):
    mode: str = "regular"  # MiniPacman task: regular, avoid, hunt, ambush or rush (the book: regular)
    num_envs: int = 16  # games played side by side; one transition of each per update (the book: 16)
    num_updates: int = 5000  # Adam steps, each on the num_envs transitions of one step of play (the book: 5000)
    lr: float = 1e-3  # Adam learning rate (the book: Adam's default, 1e-3)
    reward_coef: float = 0.1  # weight of the reward loss (the book: 0.1)
    reward_balance: float = 0.0  # reward classes weighted by (frequency so far)^-this: 0 the book's, 1 balanced
    reward_head: str | None = None  # flat: the book's, over the whole map; pooled: max over the frame; None: the mode's
    frame_cap: int = 1000  # steps after which a game is cut (the book: 1000)
    actor_critic: str = ""  # the agent that plays; empty: <checkpoint-dir>/actor_critic_<mode> (the A2C script)
    scripted_games: int | None = None  # games played by MiniPacman.scripted_action (the book: 0); None: the mode's
    checkpoint_dir: str = ""  # finds the agent, gets env_model_<mode> too; empty: checkpoints/ in this repository
    test_steps: int = 200  # held-out steps of num_envs games each (different seeds) for the accuracies
    open_loop: int = 5  # steps of open-loop imagination scored at the end
    eval_every: int = 1000  # updates between two held-out one-step scores (0: only at the end)
    log_every: int = 100  # updates averaged into one row of metrics.csv
    vec_env: str = "sync"  # subproc (the book's SubprocVecEnv) or sync (same semantics in one process: faster)
    threads: int = 1  # CPU threads for torch: 1 holds up when anything else runs; try 2 on an idle machine

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.mode in MODES, f"--mode {self.mode!r} is unknown: use one of {', '.join(MODES)}")
        require(self.vec_env in VEC_ENVS, f"--vec-env {self.vec_env!r} is unknown: use subproc or sync")
        fill_model_settings(self)
        require(self.reward_head in REWARD_HEADS, f"--reward-head {self.reward_head!r} is unknown: use flat or pooled")
        check_ranges(
            self,
            positive=("lr",),
            non_negative=("reward_coef", "reward_balance", "eval_every"),
            at_least_1=("num_envs", "num_updates", "frame_cap", "test_steps", "open_loop", "log_every"),
        )
        require(self.test_steps > self.open_loop, f"--test-steps must be more than --open-loop ({self.open_loop})")
        require(
            0 <= self.scripted_games <= self.num_envs,
            f"--scripted-games must be 0 to --num-envs ({self.num_envs}), got {self.scripted_games}",
        )


# Per mode (not in the book). Outside regular the agent meets the events each task is about (a ghost eaten, a power
# pill) too seldom for a model to learn them from its play: half the games are played by the scripted player, and the
# reward head pools over the frame. With both, 5,000 updates learn ghosts eaten in hunt (0.84; the best possible is
# 0.90) and ambush (0.92), rush's pills (0.99), avoid's ghosts and pills (1.00), where the book's settings learn none
# of them (docs/imagination.md). Regular keeps the book's, which its published results use.
BOOK_MODEL = dict(scripted_share=0.0, reward_head="flat")
EVENTS_MODEL = dict(scripted_share=0.5, reward_head="pooled")
MODEL_SETTINGS = dict(regular=BOOK_MODEL, avoid=EVENTS_MODEL, hunt=EVENTS_MODEL, ambush=EVENTS_MODEL, rush=EVENTS_MODEL)


def fill_model_settings(config: Config) -> None:
    """`scripted_games` and `reward_head` left at None take the mode's (MODEL_SETTINGS): a share of num_envs, a head."""
    settings = MODEL_SETTINGS[config.mode]
    if config.scripted_games is None:
        config.scripted_games = int(config.num_envs * settings["scripted_share"])
    if config.reward_head is None:
        config.reward_head = settings["reward_head"]


class BasicBlock(nn.Module):
    """Pool and inject (the frame's global max, tiled back beside it), two convolution paths (a 10x10 one
    for long range, a 3x3 one for the neighbourhood), merged by a 1x1 convolution and stacked on the input."""

    def __init__(self, in_shape, n1: int, n2: int, n3: int):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.n1, self.n2, self.n3 = n1, n2, n3
        self.maxpool = nn.MaxPool2d(kernel_size=in_shape[1:])
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_shape[0] * 2, n1, kernel_size=1, stride=2, padding=6),
            nn.ReLU(),
            nn.Conv2d(n1, n1, kernel_size=10, stride=1, padding=(5, 6)),
            nn.ReLU(),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(in_shape[0] * 2, n2, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(n2, n2, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
        )
        self.conv3 = nn.Sequential(nn.Conv2d(n1 + n2, n3, kernel_size=1), nn.ReLU())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.pool_and_inject(inputs)
        x = torch.cat([self.conv1(x), self.conv2(x)], 1)
        x = self.conv3(x)
        return torch.cat([x, inputs], 1)

    def pool_and_inject(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.maxpool(x)
        tiled = pooled.expand((x.size(0),) + self.in_shape)
        if x.is_contiguous(memory_format=torch.channels_last):
            # the imagination's layout (Chapter_14_I2A.py): torch.cat keeps it only if every input has it, and a
            # result in the default layout would be copied back by each of the next convolutions
            tiled = tiled.contiguous(memory_format=torch.channels_last)
        return torch.cat([tiled, x], 1)


REWARD_HEADS = ("flat", "pooled")


class EnvModel(nn.Module):
    """(frame, one-hot action planes) -> (logits of each pixel's colour class, logits of the reward class).
    Image logits come as (N*H*W, num_pixels), pixel by pixel in (frame, row, column) order, like the book's.
    The buffer `reward_values` records which rewards the classes stand for (the book's file lacks it: its
    classes are regular's 0..9).

    The reward head: the book's ("flat") reads the whole 64 x 15 x 19 map through one linear layer, so it learns
    each reward separately for every cell where it can happen, and a reward that is rare anyway (a ghost eaten, a
    death) is seen a few times per cell. "pooled" (not in the book) takes each of the 64 maps' maximum over the
    frame first: what happens at pacman's cell is learnt once for all cells (docs/imagination.md)."""

    def __init__(self, in_shape, num_pixels: int, num_rewards: int, reward_head: str = "flat"):
        super().__init__()
        height, width = in_shape[1], in_shape[2]
        self.in_shape = tuple(in_shape)
        self.conv = nn.Sequential(nn.Conv2d(8, 64, kernel_size=1), nn.ReLU())
        self.basic_block1 = BasicBlock((64, height, width), 16, 32, 64)
        self.basic_block2 = BasicBlock((128, height, width), 16, 32, 64)
        self.image_conv = nn.Sequential(nn.Conv2d(192, 256, kernel_size=1), nn.ReLU())
        self.image_fc = nn.Linear(256, num_pixels)
        self.reward_conv = nn.Sequential(
            nn.Conv2d(192, 64, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=1),
            nn.ReLU(),
        )
        self.reward_head = reward_head
        self.reward_fc = nn.Linear(64 if reward_head == "pooled" else 64 * height * width, num_rewards)
        self.register_buffer("reward_values", torch.full((num_rewards,), float("nan")))

    def forward(self, inputs: torch.Tensor):
        batch_size = inputs.size(0)
        x = self.conv(inputs)
        x = self.basic_block1(x)
        x = self.basic_block2(x)
        image = self.image_conv(x)
        image = image.permute(0, 2, 3, 1).contiguous().view(-1, 256)
        image = self.image_fc(image)
        reward = self.reward_conv(x)
        reward = reward.amax((2, 3)) if self.reward_head == "pooled" else reward.reshape(batch_size, -1)
        reward = self.reward_fc(reward)
        return image, reward

    @property
    def num_actions(self) -> int:
        """The action planes the model reads beside the frame (the book's 8 input planes: 3 colours + 5 actions)."""
        return self.conv[0].in_channels - self.in_shape[0]

    @torch.no_grad()
    def imagine(self, states: torch.Tensor, actions: torch.Tensor):
        """One imagined step for a batch: the most likely next frames (N, 3, H, W) and reward classes (N,)."""
        image, reward = self(torch.cat([states, onehot_actions(actions, self.num_actions, self.in_shape)], 1))
        return target_to_pix(image.argmax(1), self.in_shape), reward.argmax(1)


def play_games(envs, num_steps: int, actor_critic, device: torch.device, seed: int, scripted_games: int = 0):
    """The agent plays `num_steps` steps of every env; yields (step, states, actions, rewards, next_states, dones)
    as tensors on the device. A game that ended in this step gets its real last frame as next state (the book
    took the first frame of the next game). The first `scripted_games` envs are played by MiniPacman's scripted
    player instead (not in the book): it eats the power pills and the ghosts that a collapsed agent never meets."""
    states, _ = envs.reset(seed=seed)
    states = torch.from_numpy(states).to(device)
    for frame_idx in range(num_steps):
        with torch.no_grad():
            actions = actor_critic.act(states).view(-1)
        if scripted_games:
            scripted = envs.call("scripted_action")[:scripted_games]
            actions[:scripted_games] = torch.tensor(scripted, device=device)
        next_states, rewards, terminated, truncated, info = envs.step(actions.cpu().numpy())
        dones = terminated | truncated
        next_states = torch.from_numpy(next_states).to(device)
        targets = next_states
        if dones.any():
            targets = next_states.clone()
            finished = np.flatnonzero(dones)
            targets[torch.from_numpy(finished).to(device)] = torch.from_numpy(np.stack(info["final_obs"][finished])).to(
                device
            )
        yield (
            frame_idx,
            states,
            actions,
            torch.from_numpy(rewards).float().to(device),
            targets,
            torch.from_numpy(dones).to(device),
        )
        states = next_states


def pix_to_target(next_states: torch.Tensor) -> torch.Tensor:
    """Frames (N, 3, H, W) in [0, 1] -> one colour class per pixel, (N*H*W,) in (frame, row, column) order:
    the order of the model's image logits."""
    code = torch.ceil(next_states).long()
    code = (4 * code[:, 0] + 2 * code[:, 1] + code[:, 2]).reshape(-1)
    target = CODE_TO_CLASS.to(code.device)[code]
    if (target < 0).any():
        raise ValueError("a pixel has a colour MiniPacman never draws")
    return target


def target_to_pix(imagined_states: torch.Tensor, in_shape=MiniPacman.observation_space.shape) -> torch.Tensor:
    """Colour classes (N*H*W,) in (frame, row, column) order -> frames (N, 3, H, W), the layout of the env's
    observations (the book reshaped without this permute and scrambled the imagined frames)."""
    channels, height, width = in_shape
    rgb = PIXELS.to(imagined_states.device)[imagined_states]
    return rgb.view(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()


def rewards_to_target(mode: str, rewards: torch.Tensor) -> torch.Tensor:
    """Rewards -> their classes: the index of each reward among the mode's reward classes (MiniPacman's own list
    of the rewards one step of `mode` can give; the book's hand-written table missed some)."""
    values = reward_values(mode, rewards.device)
    distance = (rewards.view(-1, 1).float() - values.view(1, -1)).abs()
    best, target = distance.min(1)
    if (best > 1e-4).any():
        bad = rewards.view(-1)[best > 1e-4][0].item()
        raise ValueError(f"reward {bad} is not one of the classes {values.tolist()}")
    return target


def reward_class_weights(counts: torch.Tensor, balance: float) -> torch.Tensor:
    """Weights of the reward classes in the reward loss: (frequency)^-balance, scaled so that the classes' weights
    average 1 over the transitions seen. balance 1: every class weighs as much in all as any other ("balanced");
    0.5 halfway. Rare events (a ghost eaten, a death) are a few in a thousand steps: unweighted, a model that always
    says "nothing happened" is right almost always (docs/imagination.md)."""
    weights = counts.pow(-balance)
    return weights * counts.sum() / (weights * counts).sum()


def onehot_actions(actions: torch.Tensor, num_actions: int, in_shape) -> torch.Tensor:
    """Actions (N,) -> (N, num_actions, H, W): one plane per action, ones on the action taken."""
    return F.one_hot(actions.view(-1), num_actions).float().view(-1, num_actions, 1, 1).expand(-1, -1, *in_shape[1:])


def main(config: Config) -> dict:
    device, _ = setup(config)
    if config.tune_process:
        tune_process()  # process-wide, for speed: denormal floats flushed, freed memory kept (common/runtime.py)
    actor_critic, agent_path = load_actor_critic(config, device)  # before the run directory: a bad agent writes nothing
    # the open-loop scoring imagines from every held-out start at once, one step at a time: ~1 MB per frame (the
    # default settings peak at 3.3 GB of memory in all)
    require_memory(config.num_envs * (config.test_steps + 1) * 2**20, "--num-envs x --test-steps")
    checkpoint = writable_folder(repo_path(config.checkpoint_dir, "checkpoints"), "--checkpoint-dir")
    checkpoint = checkpoint / f"env_model_{config.mode}"
    run = RunDir(
        "Chapter_14_Imagination",
        config,
        device=device,
        actor_critic=agent_path.resolve(),
        checkpoint=checkpoint.resolve(),
    )

    env_model = new_env_model(config.mode, device, config.reward_head)
    optimizer = torch.optim.Adam(env_model.parameters(), lr=config.lr)
    criterion = nn.CrossEntropyLoss()
    reward_counts = torch.ones(len(reward_classes(config.mode)), device=device)  # each class seen so far, plus one

    print(f"playing {config.test_steps} steps of {config.num_envs} held-out games for the scores ...", flush=True)
    test_envs = make_envs(config)
    try:
        test_data = collect(
            test_envs, config.test_steps, actor_critic, device, 10**6 + config.seed, config.scripted_games
        )
    finally:
        test_envs.close()

    envs = make_envs(config)
    start = time.perf_counter()
    losses, scores, updates = [], {}, 0
    progress = tqdm(total=config.num_updates, desc="Chapter_14_Imagination", unit="update", dynamic_ncols=True)
    try:
        games = play_games(envs, config.num_updates, actor_critic, device, config.seed, config.scripted_games)
        for frame_idx, states, actions, rewards, next_states, _dones in games:
            inputs = torch.cat([states, onehot_actions(actions, env_model.num_actions, env_model.in_shape)], 1)
            imagined_state, imagined_reward = env_model(inputs)

            target_state = pix_to_target(next_states)
            target_reward = rewards_to_target(config.mode, rewards)

            optimizer.zero_grad()
            image_loss = criterion(imagined_state, target_state)
            reward_counts += torch.bincount(target_reward, minlength=len(reward_counts))
            weight = reward_class_weights(reward_counts, config.reward_balance) if config.reward_balance else None
            reward_loss = F.cross_entropy(imagined_reward, target_reward, weight=weight)
            loss = image_loss + config.reward_coef * reward_loss
            loss.backward()
            optimizer.step()
            losses.append(torch.stack([loss.detach(), image_loss.detach(), reward_loss.detach()]))

            update = updates = frame_idx + 1
            progress.update()
            last = update == config.num_updates
            evaluate_now = last or (config.eval_every and update % config.eval_every == 0)
            if update % config.log_every == 0 or evaluate_now:
                mean = torch.stack(losses).mean(0).tolist()
                row = dict(update=update, loss=mean[0], image_loss=mean[1], reward_loss=mean[2])
                if evaluate_now:  # one step ahead on the held-out games
                    env_model.eval()
                    scores = one_step_scores(env_model, test_data, config.mode)
                    env_model.train()
                    row.update({k: v for k, v in scores.items() if k not in ("transitions", "reward_class_accuracy")})
                row["seconds"] = round(time.perf_counter() - start, 2)
                run.log(**row)
                check_finite({"loss": mean[0]}, f"update {update}", "try a smaller --lr or --reward-coef")
                losses = []
                progress.set_postfix(
                    known(loss=f"{mean[0]:.4f}", pixel=f"{scores.get('pixel_accuracy', float('nan')):.4f}")
                )
            if run.checkpoint_due():  # every few minutes, the model so far in the run directory
                run.save_checkpoint(env_model.state_dict(), checkpoint.name)
    except KeyboardInterrupt as error:  # Ctrl+C or a signal: keep what was learnt so far, then stop
        run.stop(error)
    finally:
        envs.close()
        progress.close()
    seconds = time.perf_counter() - start

    env_model.eval()
    open_loop = {} if run.stopped else open_loop_scores(env_model, test_data, config.mode, config.open_loop)
    run.save_checkpoint(env_model.state_dict(), checkpoint.name)
    if not run.stopped:  # the shared copy, for Chapter_14_I2A.py: only from a run that finished
        publish_checkpoint(
            env_model.state_dict(),
            checkpoint,
            script="Chapter_14_Imagination.py",
            trained=f"{updates} updates of {config.num_envs} transitions, seed {config.seed}, agent {agent_path}",
            result=f"held-out pixel accuracy {scores['pixel_accuracy']:.4f}, reward {scores['reward_accuracy']:.4f}",
            run_dir=run.path.resolve(),
        )
    plot_losses(run, config)
    plot_imagined(run, env_model, test_data, config)

    last = open_loop.get(config.open_loop, {})
    summary = dict(
        **{k: round(v, 5) if isinstance(v, float) else v for k, v in scores.items()},
        **{f"open_loop_{config.open_loop}_{k}": round(v, 5) if isinstance(v, float) else v for k, v in last.items()},
        open_loop=[dict(step=k, **v) for k, v in open_loop.items()],
        updates=updates,
        transitions_trained=updates * config.num_envs,
        seconds=round(seconds, 2),
        mode=config.mode,
        device=str(device),
        seed=config.seed,
        checkpoint=str(checkpoint),
    )
    return run.finish(
        summary,
        lambda: (
            f"Chapter_14_Imagination: {config.mode}, {config.num_updates} updates in {seconds:.0f} s; "
            f"held-out one step: pixel {scores['pixel_accuracy']:.4f}, frame {scores['frame_accuracy']:.3f}, "
            f"reward {scores['reward_accuracy']:.4f}; {config.open_loop} steps open-loop: "
            f"pixel {last['pixel_accuracy']:.4f}, frame {last['frame_accuracy']:.3f}"
        ),
    )


# --------------------------------------------------------------------------------------------------------------
# Plumbing the book does not show: making and loading models, held-out data and scores, plots
# --------------------------------------------------------------------------------------------------------------


@functools.cache
def reward_values(mode: str, device: torch.device) -> torch.Tensor:
    """The rewards the classes of `mode` stand for, as a tensor on `device` (made once)."""
    return torch.tensor(reward_classes(mode), dtype=torch.float32, device=device)


def new_env_model(mode: str, device: torch.device, reward_head: str = "flat") -> EnvModel:
    classes = reward_classes(mode)
    model = EnvModel(MiniPacman.observation_space.shape, num_pixels, len(classes), reward_head).to(device)
    model.reward_values.copy_(torch.tensor(classes))
    return model


def load_env_model(path: str | Path, mode: str, device: torch.device, hint: str = "") -> EnvModel:
    """An environment model for `mode` from a state_dict file: ours, or the book's (which has no
    `reward_values`; its 10 classes are regular's 0..9). A file for another mode, or not an environment model,
    is a UsageError (`hint`: how to fix it; by default, how to train one)."""
    hint = hint or f"Train one with: python Chapter_14_Imagination.py --mode {mode}"
    state = load_checkpoint(path, None, hint)
    if "reward_fc.bias" not in state or "image_fc.weight" not in state:
        raise UsageError(f"checkpoint {path} is not an environment model (it lacks EnvModel's parameters). {hint}")
    classes = torch.tensor(reward_classes(mode))
    if "reward_values" not in state and mode == "regular" and len(state["reward_fc.bias"]) == len(classes):
        state["reward_values"] = classes  # the book's published env_model_regular
    saved = state.get("reward_values")
    if saved is None or saved.shape != classes.shape or not torch.allclose(saved.float(), classes, atol=1e-4):
        what = f"the rewards {saved.tolist()}" if saved is not None else "another mode"
        raise UsageError(f"checkpoint {path} is an environment model for {what}, not for --mode {mode}. {hint}")
    pooled = (
        state["reward_fc.weight"].ndim == 2 and state["reward_fc.weight"].shape[1] == 64
    )  # the head it was saved with
    model = EnvModel(MiniPacman.observation_space.shape, num_pixels, len(classes), "pooled" if pooled else "flat")
    load_state(model, state, path, hint)
    return model.to(device)


def load_actor_critic(config, device: torch.device):
    """The A2C agent that plays, and its path: `--actor-critic PATH`, or checkpoints/actor_critic_<mode> from
    Chapter_14_Imagine_A2C.py."""
    from Chapter_14_Imagine_A2C import ActorCritic

    if config.actor_critic:
        path, hint = Path(config.actor_critic), "Check the path given to --actor-critic."
    else:
        path = repo_path(config.checkpoint_dir, "checkpoints") / f"actor_critic_{config.mode}"
        hint = f"Train one with: python Chapter_14_Imagine_A2C.py --mode {config.mode} (or pass --actor-critic PATH)"
    actor_critic = ActorCritic(MiniPacman.observation_space.shape, MiniPacman.action_space.n)
    load_checkpoint(path, actor_critic, hint)
    return actor_critic.to(device).eval(), path


def make_envs(config):
    from Chapter_14_Imagine_A2C import make_env

    envs = make_vec_env(
        [partial(make_env, config.mode, config.frame_cap) for _ in range(config.num_envs)], config.vec_env
    )
    return envs


def collect(envs, num_steps: int, actor_critic, device: torch.device, seed: int, scripted_games: int = 0) -> dict:
    """`num_steps` steps of play, time-major: states (T, N, 3, H, W), actions, rewards, next_states, dones."""
    games = play_games(envs, num_steps, actor_critic, device, seed, scripted_games)
    columns = list(zip(*(step[1:] for step in games)))
    names = ("states", "actions", "rewards", "next_states", "dones")
    return {name: torch.stack(column) for name, column in zip(names, columns)}


@torch.no_grad()
def one_step_scores(env_model: EnvModel, data: dict, mode: str, batch: int = 512, progress: bool = True) -> dict:
    """Pixel, whole-frame and reward-class accuracy of the model's one-step predictions on `data`."""
    states = data["states"].flatten(0, 1)
    actions = data["actions"].flatten(0, 1)
    target_state = pix_to_target(data["next_states"].flatten(0, 1)).view(len(states), -1)
    target_reward = rewards_to_target(mode, data["rewards"].flatten(0, 1))
    pixel_hits, reward_hits = [], []
    starts = range(0, len(states), batch)
    for i in tqdm(starts, desc="held-out scores", unit="batch", dynamic_ncols=True, leave=False, disable=not progress):
        action_planes = onehot_actions(actions[i : i + batch], env_model.num_actions, env_model.in_shape)
        image, reward = env_model(torch.cat([states[i : i + batch], action_planes], 1))
        pixel_hits.append(image.argmax(1).view(-1, target_state.shape[1]) == target_state[i : i + batch])
        reward_hits.append(reward.argmax(1) == target_reward[i : i + batch])
    pixel_hits, reward_hits = torch.cat(pixel_hits), torch.cat(reward_hits)
    values = reward_classes(mode)
    per_class = [  # rare rewards (a ghost eaten, a power pill) matter most to the agent and are the hardest
        dict(reward=values[c], count=int(n), accuracy=float(reward_hits[target_reward == c].float().mean()))
        for c, n in enumerate(torch.bincount(target_reward, minlength=len(values)).tolist())
        if n
    ]
    return dict(
        pixel_accuracy=float(pixel_hits.float().mean()),
        frame_accuracy=float(pixel_hits.all(1).float().mean()),
        reward_accuracy=float(reward_hits.float().mean()),
        transitions=len(states),
        reward_class_accuracy=per_class,
    )


@torch.no_grad()
def open_loop_scores(env_model: EnvModel, data: dict, mode: str, steps: int, progress: bool = True) -> dict:
    """Imagine `steps` steps ahead from real frames, feeding the model its own predicted frames and the actions
    really taken; scored against the real frames and rewards, from every start with no game end in between."""
    dones = data["dones"]
    length = dones.shape[0]
    starts = [t for t in range(length - steps + 1)]
    scores = {}
    frame = torch.cat([data["states"][t] for t in starts])
    valid = torch.cat([~dones[t : t + steps - 1].any(0) if steps > 1 else torch.ones_like(dones[t]) for t in starts])
    for k in tqdm(
        range(steps), desc="open-loop scores", unit="step", dynamic_ncols=True, leave=False, disable=not progress
    ):
        actions = torch.cat([data["actions"][t + k] for t in starts])
        frame, reward = env_model.imagine(frame, actions)
        real = torch.cat([data["next_states"][t + k] for t in starts])
        real_reward = rewards_to_target(mode, torch.cat([data["rewards"][t + k] for t in starts]))
        pixel_hits = (pix_to_target(frame) == pix_to_target(real)).view(len(frame), -1)[valid]
        scores[k + 1] = dict(
            pixel_accuracy=float(pixel_hits.float().mean()),
            frame_accuracy=float(pixel_hits.all(1).float().mean()),
            reward_accuracy=float((reward == real_reward)[valid].float().mean()),
            rollouts=int(valid.sum()),
        )
    return scores


def plot_losses(run: RunDir, config: Config) -> None:
    import matplotlib.pyplot as plt

    rows = run.rows
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    updates = [r["update"] for r in rows]
    axes[0].plot(updates, [r["image_loss"] for r in rows], label="image loss")
    axes[0].plot(updates, [r["reward_loss"] for r in rows], label="reward loss")
    axes[0].set(xlabel="update", ylabel="cross-entropy (training)", yscale="log")
    axes[0].legend(fontsize=8)
    tested = [r for r in rows if "pixel_accuracy" in r]
    for key in ("pixel_accuracy", "frame_accuracy", "reward_accuracy"):
        axes[1].plot([r["update"] for r in tested], [r[key] for r in tested], "o-", label=key.replace("_", " "))
    axes[1].set(xlabel="update", ylabel="held-out, one step ahead", ylim=(0, 1.01))
    axes[1].legend(fontsize=8)
    fig.suptitle(f"environment model, MiniPacman {config.mode}, {config.num_envs} games, seed {config.seed}")
    fig.tight_layout()
    run.save_figure(fig, "loss_curve.png")


@torch.no_grad()
def plot_imagined(run: RunDir, env_model: EnvModel, data: dict, config: Config, steps: int = 8) -> None:
    """A strip: real frames (top) and frames imagined open-loop from the first one with the real actions (bottom)."""
    import matplotlib.pyplot as plt

    dones = data["dones"][:, 0]
    steps = min(steps, len(dones))
    start = next((t for t in range(len(dones) - steps) if not dones[t : t + steps].any()), 0)
    frame = data["states"][start, :1]
    fig, axes = plt.subplots(2, steps, figsize=(1.6 * steps, 3.0))
    for k in range(steps):
        frame, _ = env_model.imagine(frame, data["actions"][start + k, :1])
        axes[0, k].imshow(data["next_states"][start + k, 0].permute(1, 2, 0).cpu().numpy())
        axes[1, k].imshow(frame[0].permute(1, 2, 0).cpu().numpy())
        axes[0, k].set_title(f"t+{k + 1}", fontsize=8)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("actual", fontsize=8)
    axes[1, 0].set_ylabel("imagined", fontsize=8)
    fig.suptitle("imagined (open loop, the real actions) against actual frames", fontsize=9)
    fig.tight_layout()
    run.save_figure(fig, "imagined.png")


if __name__ == "__main__":
    cli(main, Config, __doc__)
