"""Training speed of the bit-flipping DQN (Chapter_14_wo_HER.py / Chapter_14_HER.py), alternatives side by side.

Rows, all in one run on the same machine:
- acting: environment frames per second of `play_episodes`, one episode at a time (the book's way) against
  16 episodes stepped side by side (ours), 11 bits, epsilon 0.1;
- gradient steps per second of `compute_td_error` (batch 128): torch threads 1 against 2, fused Adam against
  the default Adam, and CUDA when present;
- end to end: `Chapter_14_HER.main` at its defaults for a fixed number of frames: frames and gradient steps
  per second (on each device present).

    python bench/her_speed.py [--out docs/her_speed.json] [--frames 30000]
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import numpy as np
import torch
from benchlib import report, timed

import Chapter_14_HER as her
from Chapter_14_wo_HER import Env, Model, ReplayBuffer, compute_td_error, play_episodes


def acting_rows(device: torch.device, num_bits: int = 11) -> list[dict]:
    rows = []
    model = Model(2 * num_bits, num_bits).to(device)
    for num_envs in (1, 16):
        env = Env(num_bits, num_envs=num_envs, seed=0)
        rng = np.random.default_rng(0)
        frames = []
        seconds = timed(
            lambda: frames.append(play_episodes(env, model, 0.1, rng).frames), repeat=max(20, 400 // num_envs), warmup=3
        )
        rows.append(
            dict(
                what="acting",
                variant=f"{num_envs} episode(s) side by side",
                device=str(device),
                frames_per_s=float(np.mean(frames[3:])) / seconds,
            )
        )
    return rows


def gradient_rows(device: torch.device, num_bits: int = 11, batch_size: int = 128) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    n = 100_000
    buffer = ReplayBuffer(n, num_bits, device)
    bits = lambda: rng.integers(0, 2, (n, num_bits))  # noqa: E731
    buffer.push(bits(), rng.integers(0, num_bits, n), -np.ones(n), bits(), rng.random(n) < 0.1, bits())
    variants = [(1, True), (2, True), (1, False)] if device.type == "cpu" else [(1, True), (1, False)]
    for threads, fused in variants:
        torch.set_num_threads(threads)
        model = Model(2 * num_bits, num_bits).to(device)
        target_model = copy.deepcopy(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
        step = lambda: compute_td_error(model, target_model, optimizer, buffer, batch_size, 0.98)  # noqa: E731
        seconds = timed(step, repeat=3000, warmup=200, sync=device.type == "cuda")
        rows.append(
            dict(
                what="gradient steps",
                variant=f"threads={threads}, {'fused' if fused else 'default'} Adam",
                device=str(device),
                steps_per_s=1 / seconds,
            )
        )
    torch.set_num_threads(1)
    return rows


def end_to_end_row(device: torch.device, frames: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        summary = her.main(her.Config(max_frames=frames, device=str(device), run_dir=tmp))
    return dict(
        what="Chapter_14_HER.py end to end",
        variant=f"defaults, {summary['frames']} frames",
        device=str(device),
        frames_per_s=summary["frames"] / summary["seconds"],
        steps_per_s=summary["gradient_steps"] / summary["seconds"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="also write the JSON record here")
    parser.add_argument("--frames", type=int, default=30_000, help="frames of the end-to-end rows")
    args = parser.parse_args()

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        torch.set_num_threads(1)
        rows += acting_rows(device)
        rows += gradient_rows(device)
        rows.append(end_to_end_row(device, args.frames))
    report(
        "her_speed",
        dict(num_bits=11, batch_size=128, episodes_per_cycle=16, end_to_end_frames=args.frames),
        rows,
        ["what", "variant", "device", "frames_per_s", "steps_per_s"],
        args.out,
    )


if __name__ == "__main__":
    main()
