"""Why A2C collapses on MiniPacman hunt (issue 15): Chapter_14_Imagine_A2C.py's training loop, instrumented.

The loop is the script's own, step for step (same seeds, same random draws: with every probe option at its
default a run follows the script's run exactly; hunt, seed 1, 100 updates: return -19.98 and entropy 0.1938150
in both), with the A2C updates measured on the way and a few interventions switchable one at a time, only to
test what causes the collapse. Run from the repository root:

    python bench/hunt_probe.py --mode hunt --num-updates 5000 --seed 1 --tag baseline
    python bench/hunt_probe.py --mode hunt --num-updates 5000 --reward-scale 0.05 --tag scale05

Measured every `--log-every` updates (rows of <out>/<tag>.jsonl, a summary row appended to <out>/runs.jsonl):
return, length and events (pills, ghosts eaten, deaths, frame-cap cuts, levels) of the episodes finished in
the window; the actions sampled (0 stay, 1 right, 2 up, 3 left, 4 down), how often a move left pacman where he
was (stay or a wall), the greedy action and the mean largest probability; entropy, value and policy losses,
advantages (mean, std, largest |A|, mean A at a death step); the gradient norm before clipping and how often
and by how much clipping cut it; on every `--grad-probe-every`-th update, the gradient norm that the value
term, the policy-gradient term and the entropy term each put on the shared trunk (convolutions and fc); the
size of the RMSprop step (parameter change / lr).

Probe options (all off by default): --reward-scale, --reward-clip (the rewards the learner sees; returns are
logged unscaled), --ortho-init (SB3's: gain sqrt(2) trunk, 0.01 actor, 1 critic, zero biases), --adv-norm,
--lr-decay (linear to 0), --entropy-final (entropy coefficient linear from --entropy-coef to this).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import common.runtime  # noqa: E402
from common.minipacman import NEXT  # noqa: E402
from common.rollout import EpisodeStats, RolloutStorage, truncation_values  # noqa: E402
from common.vec_env import make_vec_env  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import Chapter_14_Imagine_A2C as a2c  # noqa: E402

# The probe options and their "off" values (a run's "change" lists the ones set otherwise).
PROBE_DEFAULTS = dict(
    reward_scale=1.0, reward_clip=0.0, ortho_init=False, adv_norm=False, lr_decay=False, entropy_final=None
)


def step_events(info: dict, done: np.ndarray) -> np.ndarray:
    """(num_envs, 4): pill, ghost eaten, killed, level of this step; an env whose episode ended in the step has
    reset inside it, so its step's events are in info["final_info"]."""
    keys = ("pill", "ghost_eaten", "killed", "level")
    zeros = np.zeros(len(done))
    # when every env ended in this step, info holds only the resets' keys: the events are all in final_info
    ev = np.stack([np.asarray(info.get(k, zeros), dtype=np.float64) for k in keys], 1)
    if done.any():
        final = info["final_info"]
        ev[done] = np.stack([np.asarray(final.get(k, zeros), dtype=np.float64) for k in keys], 1)[done]
    return ev


def grad_norm(grads) -> float:
    return float(torch.sqrt(sum((g.detach() ** 2).sum() for g in grads if g is not None)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    fields = {f.name: f for f in dataclasses.fields(a2c.Config)}
    # the number of updates is `num_updates` in the script (`num_frames`, the book's name, before issue 11)
    updates_field = "num_updates" if "num_updates" in fields else "num_frames"
    for name in (
        "mode",
        "seed",
        updates_field,
        "num_envs",
        "num_steps",
        "gamma",
        "entropy_coef",
        "value_loss_coef",
        "max_grad_norm",
        "lr",
        "eps",
        "alpha",
        "frame_cap",
        "threads",
    ):
        option = "--num-updates" if name == updates_field else "--" + name.replace("_", "-")
        default = a2c.BOOK_SETTINGS[name] if name in a2c.BOOK_SETTINGS else fields[name].default  # the book's
        parser.add_argument(option, dest=name, type=type(default), default=default)
    parser.add_argument("--reward-scale", type=float, default=1.0, help="multiply the rewards the learner sees")
    parser.add_argument("--reward-clip", type=float, default=0.0, help="clip the learner's rewards to [-c, c] (0: off)")
    parser.add_argument("--ortho-init", action="store_true", help="ActorCritic.orthogonal_init (else the book's)")
    parser.add_argument("--adv-norm", action="store_true", help="normalise the advantages of each batch (policy term)")
    parser.add_argument("--lr-decay", action="store_true", help="learning rate linear from --lr to 0")
    parser.add_argument("--entropy-final", type=float, default=None, help="entropy coefficient linear to this")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--grad-probe-every", type=int, default=10)
    parser.add_argument("--tag", default="run")
    parser.add_argument("--out", default=str(ROOT / "runs" / "hunt_probe"))
    args = parser.parse_args()
    config = a2c.Config(**{k: getattr(args, k) for k in fields if hasattr(args, k)}, gif_frames=0, device="cpu")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / f"{args.tag}.jsonl"
    log_path.write_text("")

    device, _ = common.runtime.setup(config)
    if getattr(config, "tune_process", False):
        common.runtime.tune_process()  # as the script's main does (denormals flushed: the same numbers)
    envs = make_vec_env([partial(a2c.make_env, config.mode, config.frame_cap) for _ in range(config.num_envs)], "sync")
    state_shape = envs.single_observation_space.shape
    num_actions = envs.single_action_space.n
    model = a2c.ActorCritic(state_shape, num_actions).to(device)
    if args.ortho_init:
        model.orthogonal_init()  # the script's Config.ortho_init (on by default since issue 15)
    trunk = list(model.features.parameters()) + list(model.fc.parameters())
    optimizer = torch.optim.RMSprop(model.parameters(), config.lr, eps=config.eps, alpha=config.alpha)
    rollout = RolloutStorage(config.num_steps, config.num_envs, state_shape, device)
    state, _ = envs.reset(seed=config.seed)
    rollout.states[0].copy_(torch.from_numpy(state))
    stats = EpisodeStats(config.num_envs)
    games = [env.unwrapped for env in envs.envs]

    ep_events = np.zeros((config.num_envs, 4))  # pills, ghosts, killed, level reached
    window: dict = {}

    def reset_window():
        window.clear()
        window.update(
            returns=[],
            lengths=[],
            pills=[],
            ghosts=[],
            killed=[],
            truncated=[],
            levels=[],
            actions=np.zeros(num_actions),
            no_move=0,
            steps=0,
            greedy=np.zeros(num_actions),
            maxprob=[],
            entropy=[],
            value_loss=[],
            action_loss=[],
            adv_mean=[],
            adv_std=[],
            adv_absmax=[],
            death_adv=[],
            value_mean=[],
            return_mean=[],
            gnorm=[],
            clipped=0,
            updates=0,
            trunk_value=[],
            trunk_policy=[],
            trunk_entropy=[],
            head_actor=[],
            step_size=[],
        )

    reset_window()
    start = time.perf_counter()
    total_updates = getattr(config, updates_field)
    for i_update in range(1, total_updates + 1):
        frac = (i_update - 1) / total_updates
        if args.lr_decay:
            for group in optimizer.param_groups:
                group["lr"] = config.lr * (1 - frac)
        entropy_coef = (
            config.entropy_coef
            if args.entropy_final is None
            else config.entropy_coef + frac * (args.entropy_final - config.entropy_coef)
        )
        death_flags = torch.zeros(config.num_steps, config.num_envs, 1)
        for step in range(config.num_steps):
            with torch.no_grad():
                action = model.act(rollout.states[step])
            acts = action.squeeze(1).cpu().numpy()
            window["actions"] += np.bincount(acts, minlength=num_actions)
            window["no_move"] += sum(NEXT[g.pacman][int(a)] == g.pacman for g, a in zip(games, acts))
            window["steps"] += len(acts)
            next_state, reward, terminated, truncated, info = envs.step(acts)
            done = terminated | truncated
            ev = step_events(info, done)
            ep_events[:, :3] += ev[:, :3]
            ep_events[:, 3] = np.maximum(ep_events[:, 3], ev[:, 3])
            for i in np.flatnonzero(done):
                window["returns"].append(stats.episode_rewards[i] + reward[i])
                window["lengths"].append(stats.episode_lengths[i] + 1)
                window["pills"].append(ep_events[i, 0])
                window["ghosts"].append(ep_events[i, 1])
                window["killed"].append(ep_events[i, 2])
                window["truncated"].append(float(truncated[i]))
                window["levels"].append(ep_events[i, 3])
                ep_events[i] = 0
            stats.update(reward, done, i_update)
            death_flags[step, :, 0] = torch.from_numpy(ev[:, 2].astype(np.float32))
            learn_reward = reward * args.reward_scale
            if args.reward_clip > 0:
                learn_reward = np.clip(learn_reward, -args.reward_clip, args.reward_clip)
            tv = truncation_values(lambda final: model(final)[1], info, truncated, device)
            masks = torch.from_numpy(1.0 - done.astype(np.float32)).unsqueeze(1)
            rollout.insert(
                step,
                torch.from_numpy(next_state),
                action,
                torch.from_numpy(learn_reward).float().unsqueeze(1),
                masks,
                tv,
            )

        with torch.no_grad():
            _, next_value = model(rollout.states[-1])
        returns = rollout.compute_returns(next_value, config.gamma)
        logit, action_log_probs, values, entropy = model.evaluate_actions(
            rollout.states[:-1].view(-1, *state_shape), rollout.actions.view(-1, 1)
        )
        values = values.view(config.num_steps, config.num_envs, 1)
        action_log_probs = action_log_probs.view(config.num_steps, config.num_envs, 1)
        advantages = returns - values
        value_loss = advantages.pow(2).mean()
        adv = advantages.detach()
        if args.adv_norm:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        action_loss = -(adv * action_log_probs).mean()

        if args.grad_probe_every and i_update % args.grad_probe_every == 1 % args.grad_probe_every:
            for key, term in (
                ("trunk_value", value_loss * config.value_loss_coef),
                ("trunk_policy", action_loss),
                ("trunk_entropy", -entropy * entropy_coef),
            ):
                window[key].append(grad_norm(torch.autograd.grad(term, trunk, retain_graph=True, allow_unused=True)))
            window["head_actor"].append(
                grad_norm(torch.autograd.grad(action_loss, list(model.actor.parameters()), retain_graph=True))
            )

        optimizer.zero_grad()
        loss = value_loss * config.value_loss_coef + action_loss - entropy * entropy_coef
        loss.backward()
        before = [p.detach().clone() for p in model.parameters()] if i_update % 10 == 1 else None
        gnorm = float(nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm))
        optimizer.step()
        if before is not None:
            lr_now = optimizer.param_groups[0]["lr"]
            if lr_now > 0:
                window["step_size"].append(
                    float(torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before))))
                    / lr_now
                )
        rollout.after_update()

        with torch.no_grad():
            probs = torch.softmax(logit, 1)
            window["greedy"] += np.bincount(probs.argmax(1).numpy(), minlength=num_actions)
            window["maxprob"].append(float(probs.max(1).values.mean()))
        window["entropy"].append(float(entropy.detach()))
        window["value_loss"].append(float(value_loss.detach()))
        window["action_loss"].append(float(action_loss.detach()))
        window["adv_mean"].append(float(advantages.detach().mean()))
        window["adv_std"].append(float(advantages.detach().std()))
        window["adv_absmax"].append(float(advantages.detach().abs().max()))
        if death_flags.any():
            window["death_adv"].append(float(advantages.detach()[death_flags.bool()].mean()))
        window["value_mean"].append(float(values.detach().mean()))
        window["return_mean"].append(float(returns.mean()))
        window["gnorm"].append(gnorm)
        window["clipped"] += gnorm > config.max_grad_norm
        window["updates"] += 1

        if i_update % args.log_every == 0 or i_update == total_updates:
            w = window
            mean = lambda xs: float(np.mean(xs)) if len(xs) else None  # noqa: E731
            row = dict(
                update=i_update,
                frames=i_update * config.num_steps * config.num_envs,
                seconds=round(time.perf_counter() - start, 1),
                last100=stats.mean_return,
                episodes=len(w["returns"]),
                ret=mean(w["returns"]),
                length=mean(w["lengths"]),
                pills=mean(w["pills"]),
                ghosts=mean(w["ghosts"]),
                killed=mean(w["killed"]),
                truncated=mean(w["truncated"]),
                level=mean(w["levels"]),
                actions=(w["actions"] / max(1, w["actions"].sum())).round(3).tolist(),
                no_move=w["no_move"] / max(1, w["steps"]),
                greedy=(w["greedy"] / max(1, w["greedy"].sum())).round(3).tolist(),
                maxprob=mean(w["maxprob"]),
                entropy=mean(w["entropy"]),
                value_loss=mean(w["value_loss"]),
                action_loss=mean(w["action_loss"]),
                adv_mean=mean(w["adv_mean"]),
                adv_std=mean(w["adv_std"]),
                adv_absmax=max(w["adv_absmax"]),
                death_adv=mean(w["death_adv"]),
                value_mean=mean(w["value_mean"]),
                return_mean=mean(w["return_mean"]),
                gnorm=mean(w["gnorm"]),
                gnorm_max=max(w["gnorm"]),
                clip_frac=w["clipped"] / w["updates"],
                clip_factor=mean([min(1.0, config.max_grad_norm / g) for g in w["gnorm"]]),
                trunk_value=mean(w["trunk_value"]),
                trunk_policy=mean(w["trunk_policy"]),
                trunk_entropy=mean(w["trunk_entropy"]),
                head_actor=mean(w["head_actor"]),
                step_size_over_lr=mean(w["step_size"]),
            )
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{args.tag} u{i_update} last100 {row['last100']:.1f} ent {row['entropy']:.2f} "
                f"len {row['length'] or 0:.0f} pills {row['pills'] or 0:.2f} ghosts {row['ghosts'] or 0:.2f} "
                f"act {row['actions']} nomove {row['no_move']:.2f} gn {row['gnorm']:.2f} clip {row['clip_frac']:.2f} "
                f"tv/tp {row['trunk_value'] or 0:.3f}/{row['trunk_policy'] or 0:.3f}",
                flush=True,
            )
            reset_window()
    envs.close()
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    last = rows[-1]
    summary = dict(
        tag=args.tag,
        mode=config.mode,
        seed=config.seed,
        frames=total_updates * config.num_steps * config.num_envs,
        change={k: getattr(args, k) for k in PROBE_DEFAULTS if getattr(args, k) != PROBE_DEFAULTS[k]}
        | {
            k: getattr(config, k)
            for k in ("entropy_coef", "value_loss_coef", "lr", "max_grad_norm")
            if getattr(config, k) != fields[k].default
        },
        last100=stats.mean_return,
        final_entropy=last["entropy"],
        min_entropy=min(r["entropy"] for r in rows),
        final_length=last["length"],
        final_ghosts=last["ghosts"],
        final_pills=last["pills"],
        seconds=round(seconds, 1),
    )
    with open(out / "runs.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
