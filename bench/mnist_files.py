"""Small MNIST-format (IDX) files, so tests and benchmarks load data through the real torchvision `MNIST` class
offline (this machine cannot download MNIST)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

NAMES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX format: magic (0, 0, dtype 0x08 = ubyte, number of dimensions), then each dimension as big-endian int32."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, per_class: dict[bool, int], classes: int = 10, seed: int = 0) -> Path:
    """Write train and test IDX files under root/MNIST/raw: `per_class[train]` images of each class, each a
    class-specific blob pattern plus noise (learnable, not real digits). Returns the raw folder."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    prototypes = (rng.random((classes, 28, 28)) < 0.25) * 200
    for train, count in per_class.items():
        labels = np.repeat(np.arange(classes), count)
        rng.shuffle(labels)
        images = np.clip(prototypes[labels] + rng.normal(0, 30, (len(labels), 28, 28)), 0, 255)
        for name, array in zip(NAMES[train], (images, labels)):
            (raw / name).write_bytes(idx_bytes(array))
    return raw
