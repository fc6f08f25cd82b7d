"""The pattern condition in cGAN training: each epoch's textured data and the pattern sheet.

A model trained with ``CganConfig(patterns=True)`` sees every image with a seeded colour and a
seeded pattern (``training/data/patterns.py``) and is conditioned on category x colour x pattern.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from serving_contract.palette import NUM_COLOURS
from serving_contract.patterns import NUM_PATTERNS, PATTERNS
from serving_contract.taxonomy import CATEGORIES, NUM_CATEGORIES
from training.cgan.model import LATENT_DIM, Generator
from training.data.fashion_mnist import FashionMNIST
from training.data.patterns import patterned_product_images, random_patterns
from training.data.products import product_images, random_colours
from training.grids import save_grid, to_uint8_hwc


def epoch_data(
    data: FashionMNIST, seed: int, *, patterns: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One epoch's uint8 product images, their colours and (with ``patterns``) their patterns."""
    colours = random_colours(len(data.labels), seed=seed)
    if not patterns:
        return product_images(data, colours), colours, None
    drawn = random_patterns(len(data.labels), seed=seed)
    return patterned_product_images(data, colours, drawn), colours, drawn


@torch.no_grad()
def pattern_sheet(generator: Generator, seed: int = 1234) -> np.ndarray:
    """One image per (category, pattern), rows = categories, colours cycling over the cells:
    ``[60, 32, 32, 3]`` uint8."""
    generator.eval()
    category = torch.arange(NUM_CATEGORIES).repeat_interleave(NUM_PATTERNS)
    pattern = torch.arange(NUM_PATTERNS).repeat(NUM_CATEGORIES)
    colour = torch.arange(len(category)) % NUM_COLOURS
    z = torch.randn(len(category), LATENT_DIM, generator=torch.Generator().manual_seed(seed))
    return to_uint8_hwc(generator(z, category, colour, pattern).numpy())


def save_pattern_sheet(path: Path, generator: Generator, *, scale: int = 2, seed: int = 1234) -> None:
    """Write ``pattern_sheet`` as a labelled contact sheet (categories x patterns)."""
    save_grid(
        path,
        pattern_sheet(generator, seed),
        NUM_PATTERNS,
        scale=scale,
        row_labels=[c.slug for c in CATEGORIES],
        column_labels=[p.name for p in PATTERNS],
    )
