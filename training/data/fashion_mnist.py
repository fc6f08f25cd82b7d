"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (gzip IDX files).

Nothing is downloaded: the path comes from ``ATELIER_FASHION_MNIST_DIR`` or the Debian default.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

#: where Debian's ``dataset-fashion-mnist`` installs the files
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")

Split = Literal["train", "test"]
_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class FashionMNIST:
    images: np.ndarray  #: uint8 [N, 28, 28], light garment on black
    labels: np.ndarray  #: int64 [N], taxonomy index


def data_dir() -> Path:
    return Path(os.environ.get("ATELIER_FASHION_MNIST_DIR", DEFAULT_DIR))


def load(split: Split, directory: Path | None = None) -> FashionMNIST:
    """Load one split; raises ``FileNotFoundError`` saying how to install the data."""
    root = directory or data_dir()
    prefix = _PREFIX[split]
    images_path = root / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_path.exists():
        raise FileNotFoundError(
            f"{images_path} not found: install Debian's dataset-fashion-mnist "
            "or set ATELIER_FASHION_MNIST_DIR"
        )
    images = np.frombuffer(gzip.decompress(images_path.read_bytes()), np.uint8, offset=16)
    labels = np.frombuffer(gzip.decompress(labels_path.read_bytes()), np.uint8, offset=8)
    return FashionMNIST(images.reshape(-1, 28, 28).copy(), labels.astype(np.int64))


def pad_to(images: np.ndarray, size: int) -> np.ndarray:
    """Centre-pad ``[N, 28, 28]`` images with background (0) to ``[N, size, size]``."""
    pad = size - images.shape[-1]
    before, after = pad // 2, pad - pad // 2
    return np.pad(images, [(0, 0)] * (images.ndim - 2) + [(before, after), (before, after)])
