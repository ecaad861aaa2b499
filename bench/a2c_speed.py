"""Frames per second of Chapter_14_Imagine_A2C.py's whole training loop (acting, stepping, updates) with each
vector env and torch thread count, in one run; first, in a fresh process, the default settings with glibc's own
malloc settings (without `keep_freed_memory` of common/runtime.py). The book's script does about 560 frames per
second on a quiet 2-core machine of this kind.

    python bench/a2c_speed.py [--updates 500] [--out docs/a2c_speed.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch
from benchlib import fresh_process_row, leave_glibc_malloc_alone, report

import Chapter_14_Imagine_A2C as a2c

BOOK_FRAMES_PER_S = 560


def run_row(updates: int, device: str, vec_env: str, threads: int, malloc: str = "kept") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        summary = a2c.main(
            a2c.Config(
                num_updates=updates,
                vec_env=vec_env,
                threads=threads,
                device=device,
                gif_frames=0,
                run_dir=tmp,
                checkpoint_dir=tmp,
            )
        )
    return dict(
        device=device,
        vec_env=vec_env,
        threads=threads,
        malloc=malloc,
        frames_per_s=summary["frames_per_s"],
        vs_book=summary["frames_per_s"] / BOOK_FRAMES_PER_S,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=500)
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="only the defaults, with glibc's malloc settings left alone; prints one JSON row",
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.glibc_default:
        leave_glibc_malloc_alone()
        print(json.dumps(run_row(args.updates, "cpu", "sync", 1, malloc="glibc default")))
        return
    rows = [fresh_process_row(__file__, ["--glibc-default", "--updates", str(args.updates)])]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for vec_env in ("sync", "subproc"):
            for threads in (1, 2) if device == "cpu" else (1,):
                rows.append(run_row(args.updates, device, vec_env, threads))
    report(
        "a2c_speed",
        dict(updates=args.updates, num_envs=16, num_steps=5, book_frames_per_s=BOOK_FRAMES_PER_S),
        rows,
        ["device", "vec_env", "threads", "malloc", "frames_per_s", "vs_book"],
        args.out,
    )


if __name__ == "__main__":
    main()
