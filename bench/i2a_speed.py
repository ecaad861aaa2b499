"""Updates and frames per second of Chapter_14_I2A.py's whole training loop (acting with imagination, stepping
16 MiniPacman games, the A2C and distillation updates), for each way of running it, in one run:

- imagination computed twice per state (the book: once to act, again in the update) or once and reused (ours);
- float32 or bfloat16 autocast for the environment model (the cost of I2A is almost all in its forward pass);
- 1 or 2 torch threads;
- and, in a fresh process, the defaults with glibc's own malloc settings (what the scripts had before
  `keep_freed_memory` in common/runtime.py: freed activations went back to the system and every forward pass
  page-faulted fresh memory in; a quarter of the CPU time in the kernel).

The book's own I2A script does about 0.5 updates per second (40 frames per second) on a quiet 2-core machine of
this kind (measured when the issue was filed). Also reported: how many imagined frames bfloat16 changes against
float32 (the same model, the same states).

    python bench/i2a_speed.py [--updates 20] [--defaults-only] [--env-model checkpoints/env_model_regular] \
        [--out docs/i2a_speed.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from benchlib import REPO_CHECKPOINTS, fresh_process_row, leave_glibc_malloc_alone, load_script, report

i2a = load_script("Chapter_14_I2A.py")
img = load_script("Chapter_14_Imagination.py")
BOOK_UPDATES_PER_S = 0.5


def bf16_agreement(env_model_path: str, device: torch.device, states: int = 160) -> float:
    """Fraction of imagined frames that bfloat16 autocast leaves identical to float32."""
    from common.minipacman import MiniPacman

    model = img.load_env_model(env_model_path, "regular", device).eval()
    env, frames = MiniPacman("regular"), []
    state, _ = env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    while len(frames) < states:
        frames.append(torch.from_numpy(state))
        state, _, terminated, truncated, _ = env.step(int(torch.randint(5, (1,), generator=generator)))
        if terminated or truncated:
            state, _ = env.reset()
    batch = torch.stack(frames).to(device)
    actions = torch.randint(5, (len(batch),), generator=generator).to(device)
    full, _ = model.imagine(batch, actions)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        half, _ = model.imagine(batch, actions)
    return float((full == half).flatten(1).all(1).float().mean())


def imagine_twice(imagined: list) -> None:
    """In place of the script's `stack_imagined`: no stored rollouts, so the update imagines every state again, as
    the book did (its acting pass imagined them once already)."""
    return None


def run_row(args, device: str, reuse: bool, bf16: bool, threads: int) -> dict:
    stack_imagined = i2a.stack_imagined
    if not reuse:
        i2a.stack_imagined = imagine_twice
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = i2a.main(
                i2a.Config(
                    num_updates=args.updates,
                    log_every=args.updates,
                    bf16="on" if bf16 else "off",
                    threads=threads,
                    device=device,
                    env_model=args.env_model,
                    gif_frames=0,
                    run_dir=tmp,
                )
            )
    finally:
        i2a.stack_imagined = stack_imagined
    return dict(
        device=device,
        imagination="once, reused" if reuse else "twice (book)",
        dtype="bfloat16" if bf16 else "float32",
        threads=threads,
        malloc="kept" if not args.glibc_default else "glibc default",
        updates_per_s=summary["updates_per_s"],
        frames_per_s=summary["frames_per_s"],
        vs_book=summary["updates_per_s"] / BOOK_UPDATES_PER_S,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--env-model", default=str(REPO_CHECKPOINTS / "env_model_regular"))
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="only the script's defaults (imagination reused, bfloat16 where native, the default threads)",
    )
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="only the defaults, with glibc's malloc settings left alone; prints one JSON row",
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.glibc_default:
        leave_glibc_malloc_alone()
        print(json.dumps(run_row(args, "cpu", True, True, 2)))
        return
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        variants = [
            (False, False, 1),
            (True, False, 1),
            (True, True, 1),
            (False, False, 2),
            (True, False, 2),
            (True, True, 2),
        ]
        if device == "cuda":
            variants = [(False, False, 1), (True, False, 1), (True, True, 1)]
        if args.defaults_only:
            variants = [(True, True, 2 if device == "cpu" else 1)]
        if device == "cpu" and not args.defaults_only:  # first, while the machine is as idle as for the other rows
            rows.append(
                fresh_process_row(
                    __file__, ["--glibc-default", "--updates", str(args.updates), "--env-model", args.env_model]
                )
            )
        for reuse, bf16, threads in variants:
            rows.append(run_row(args, device, reuse, bf16, threads))
    agreement = bf16_agreement(args.env_model, torch.device("cpu"))
    report(
        "i2a_speed",
        dict(
            updates=args.updates,
            num_envs=16,
            num_steps=5,
            rollout_depth=1,
            env_model=Path(args.env_model).name,
            book_updates_per_s=BOOK_UPDATES_PER_S,
            bf16_identical_imagined_frames=agreement,
        ),
        rows,
        ["device", "imagination", "dtype", "threads", "malloc", "updates_per_s", "frames_per_s", "vs_book"],
        args.out,
    )


if __name__ == "__main__":
    main()
