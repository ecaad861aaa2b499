"""Seconds per meta-iteration of Chapter_14_learn.py (32 tasks, 5 adaptation steps, 5-way 1-shot) against the
same loop fed by learn2learn's upstream `meta_mnist.py` task pipeline, in one run, same model and device.

- upstream: `MetaDataset(MNIST(..., transform=ToTensor+Normalize))` and a Taskset of
  `NWays, KShots(2 * shots), LoadData, RemapLabels, ConsecutiveLabels`; every task decodes and transforms
  its images again from the torchvision dataset, then moves them to the device.
- ours: a `MetaDataset` built from the labels, a Taskset with `FusedNWaysKShots` only; images decoded and
  normalised once, kept as one tensor on the device, each task gathered with two indexing operations.

Both feed the identical `meta_step` (the book's loop) of Chapter_14_learn.py. Rows also split the time into
task sampling and compute, and show the CPU variants (torch threads 1 or 2, oneDNN convolutions on or off).

Data: real MNIST when data/MNIST/raw holds it (or --data-dir), else MNIST-format files of MNIST's size
(60,000 + 10,000 synthetic images) written to a temporary folder: sampling costs depend on the dataset's
size and format, not on what the digits look like.

    python bench/maml_speed.py [--iterations 5] [--out docs/maml_speed.json]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import learn2learn as l2l
import numpy as np
import torch
import torch.nn as nn
from benchlib import ROOT, report
from mnist_files import write_mnist

import Chapter_14_learn as learn

WAYS, SHOTS, TPS, FAS = 5, 1, 32, 5


def upstream_tasks(data_dir: str):
    """learn2learn's examples/vision/meta_mnist.py pipeline, as published."""
    from torchvision import transforms
    from torchvision.datasets import MNIST

    transformations = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,)), lambda x: x.view(1, 28, 28)]
    )
    start = time.perf_counter()
    mnist_train = l2l.data.MetaDataset(MNIST(data_dir, train=True, download=False, transform=transformations))
    taskset = l2l.data.Taskset(
        mnist_train,
        task_transforms=[
            l2l.data.transforms.NWays(mnist_train, WAYS),
            l2l.data.transforms.KShots(mnist_train, 2 * SHOTS),
            l2l.data.transforms.LoadData(mnist_train),
            l2l.data.transforms.RemapLabels(mnist_train),
            l2l.data.transforms.ConsecutiveLabels(mnist_train),
        ],
        num_tasks=-1,
    )
    setup = time.perf_counter() - start

    def sample(device):
        data, labels = taskset.sample()
        data, labels = data.to(device), labels.to(device)
        adaptation = np.zeros(data.size(0), dtype=bool)
        adaptation[np.arange(SHOTS * WAYS) * 2] = True
        evaluation = torch.from_numpy(~adaptation)
        adaptation = torch.from_numpy(adaptation)
        return data[adaptation], labels[adaptation], data[evaluation], labels[evaluation]

    return sample, setup


def our_tasks(data_dir: str, device: torch.device):
    start = time.perf_counter()
    images, labels = learn.load_mnist(data_dir, train=True)
    images, labels = images.to(device), labels.to(device)
    sampler = learn.TaskSampler(labels, WAYS, SHOTS, SHOTS, "training")
    setup = time.perf_counter() - start
    return (lambda device: learn.gather(images, *sampler.sample(), device)), setup


def measure(name: str, sample, setup: float, device: torch.device, iterations: int, threads: int, mkldnn: bool) -> dict:
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn
    torch.manual_seed(0)
    random.seed(0)
    meta_model = l2l.algorithms.MAML(learn.Net(WAYS).to(device), lr=0.01)
    opt = torch.optim.Adam(meta_model.parameters(), lr=0.005)
    loss_func = nn.NLLLoss(reduction="sum")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    learn.meta_step(meta_model, opt, (sample(device) for _ in range(TPS)), loss_func, FAS)  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(iterations):
        learn.meta_step(meta_model, opt, (sample(device) for _ in range(TPS)), loss_func, FAS)
    sync()
    per_iteration = (time.perf_counter() - start) / iterations

    start = time.perf_counter()
    for _ in range(5 * TPS):
        sample(device)
    sync()
    per_task = (time.perf_counter() - start) / (5 * TPS)
    return dict(
        pipeline=name,
        device=str(device),
        threads=threads,
        mkldnn=mkldnn,
        s_per_iteration=per_iteration,
        ms_sampling_per_task=1e3 * per_task,
        s_sampling_per_iteration=per_task * TPS,
        s_setup=setup,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--out")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir, data = args.data_dir, "MNIST"
        if not (Path(data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
            write_mnist(Path(tmp), {True: 6000, False: 1000})
            data_dir, data = tmp, "MNIST-format synthetic, 60,000 + 10,000 images"
        upstream_sample, upstream_setup = upstream_tasks(data_dir)
        rows = []
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        for device in devices:
            ours_sample, ours_setup = our_tasks(data_dir, device)
            variants = [(1, False), (1, True), (2, False), (2, True)] if device.type == "cpu" else [(1, True)]
            for threads, mkldnn in variants:
                rows.append(
                    measure(
                        "upstream (NWays, KShots, LoadData, RemapLabels, ConsecutiveLabels)",
                        upstream_sample,
                        upstream_setup,
                        device,
                        args.iterations,
                        threads,
                        mkldnn,
                    )
                )
                rows.append(
                    measure(
                        "ours (FusedNWaysKShots, images on the device)",
                        ours_sample,
                        ours_setup,
                        device,
                        args.iterations,
                        threads,
                        mkldnn,
                    )
                )
                rows[-1]["speedup"] = rows[-2]["s_per_iteration"] / rows[-1]["s_per_iteration"]
    report(
        "maml_speed",
        dict(
            ways=WAYS, shots=SHOTS, tasks_per_iteration=TPS, adaptation_steps=FAS, iterations=args.iterations, data=data
        ),
        rows,
        ["pipeline", "device", "threads", "mkldnn", "s_per_iteration", "ms_sampling_per_task", "s_setup", "speedup"],
        args.out,
    )


if __name__ == "__main__":
    main()
