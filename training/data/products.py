"""Colourised product images: the cGAN's training data.

Each Fashion-MNIST image is shown with a colour chosen by a seeded generator, so an epoch sees
every image once in one colour and the whole data set covers all colours evenly.
"""

from __future__ import annotations

import numpy as np

from serving_contract.palette import NUM_COLOURS, PALETTE, colourise
from serving_contract.tensors import PRODUCT_IMAGE_SIZE
from training.data.fashion_mnist import FashionMNIST, pad_to


def colourise_batch(gray: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Colourise ``[N, H, W]`` uint8 images each with its own palette index -> ``[N, H, W, 3]``."""
    out = np.empty((*gray.shape, 3), np.uint8)
    for index in np.unique(colours):
        chosen = colours == index
        out[chosen] = colourise(gray[chosen], PALETTE[int(index)])
    return out


def product_images(data: FashionMNIST, colours: np.ndarray) -> np.ndarray:
    """Padded, colourised product images ``[N, 32, 32, 3]`` uint8 for the given colours."""
    return colourise_batch(pad_to(data.images, PRODUCT_IMAGE_SIZE), colours)


def random_colours(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, NUM_COLOURS, size=count)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> float32 ``[N, 3, H, W]`` in [-1, 1] (the models' range)."""
    return (images.astype(np.float32).transpose(0, 3, 1, 2) / 127.5) - 1.0
