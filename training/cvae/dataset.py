"""Rendered try-on examples: (measurements, size, category, garment image) -> try-on image.

Garments are real Fashion-MNIST images of wearable categories in random palette colours; the
train set draws them from the train split, the held-out set from the test split with bodies
from a different seed, so evaluation sees neither the bodies nor the garments it trained on.
Renders are cached as ``.npz`` because rendering costs about as much as an epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from serving_contract.sizing import NUM_SIZES
from serving_contract.taxonomy import wearable_categories
from training.data import fashion_mnist
from training.data.bodies import sample_measurements
from training.data.products import product_images, random_colours
from training.data.tryon_render import render_batch

WEARABLE = np.array([c.index for c in wearable_categories()])


@dataclass(frozen=True)
class TryOnExamples:
    measurements: np.ndarray  #: float32 [N, 5], cm / kg
    sizes: np.ndarray  #: int64 [N]
    categories: np.ndarray  #: int64 [N]
    garments: np.ndarray  #: uint8 [N, 32, 32, 3]
    images: np.ndarray  #: uint8 [N, 64, 64, 3], the renderer's ground truth

    def __len__(self) -> int:
        return len(self.sizes)


def build(split: Literal["train", "test"], count: int, seed: int) -> TryOnExamples:
    data = fashion_mnist.load(split)
    pool = np.flatnonzero(np.isin(data.labels, WEARABLE))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(pool, size=count, replace=count > len(pool))
    picked = fashion_mnist.FashionMNIST(data.images[chosen], data.labels[chosen])
    garments = product_images(picked, random_colours(count, seed + 1))
    measurements = sample_measurements(count, seed + 2)
    sizes = rng.integers(0, NUM_SIZES, size=count)
    images = render_batch(measurements, garments, picked.labels, sizes)
    return TryOnExamples(measurements.astype(np.float32), sizes, picked.labels, garments, images)


def cached(path: Path, split: Literal["train", "test"], count: int, seed: int) -> TryOnExamples:
    """``build`` once, then load from ``path`` (keyed by split, count and seed in the name)."""
    file = path / f"tryon_{split}_{count}_{seed}.npz"
    if file.exists():
        with np.load(file) as stored:
            return TryOnExamples(**{k: stored[k] for k in stored.files})
    examples = build(split, count, seed)
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, **examples.__dict__)
    return examples
