"""Defects planted into clean jobs, each at one variant, to measure what the gate catches.

- ``wrong_category``: the image the model draws for another category (same colour and seed)
- ``wrong_colour``: the garment's hue rotated by 90 to 270 degrees; black, white and grey have no
  hue to rotate, so for them the image the model draws for another colour
- ``blank``: in turn an all-white image, a flat fill of the requested colour, and the image
  blown out (contrast x6 about the garment's mean, most of it clipped)
- ``duplicate``: a near copy of an earlier variant of the job (noise of 2 levels, brightness
  within 2%), as a generator that collapses to one picture would give
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from PIL import Image

from bench.gate.jobs import Job
from quality.foreground import foreground_mask
from serving_contract.palette import NUM_COLOURS, PALETTE
from serving_contract.taxonomy import NUM_CATEGORIES

DEFECTS = ("wrong_category", "wrong_colour", "blank", "duplicate")
#: the checks meant to catch each defect
INTENDED = {
    "wrong_category": ("category",),
    "wrong_colour": ("colour",),
    "blank": ("variance", "foreground", "clipping"),
    "duplicate": ("duplicate",),
}
#: palette colours without a hue (black, white, grey)
ACHROMATIC = frozenset(c.index for c in PALETTE if max(c.rgb) - min(c.rgb) < 10)
BLANK_KINDS = ("white", "flat", "blown_out")

#: draws one image: (category, colour, seed) -> uint8 [H, W, 3], through Triton
Draw = Callable[[int, int, int], np.ndarray]


def other(value: int, count: int, rng: np.random.Generator) -> int:
    """A value in ``[0, count)`` other than ``value``, uniformly."""
    pick = int(rng.integers(0, count - 1))
    return pick + (pick >= value)


def hue_shifted(image: np.ndarray, degrees: float) -> np.ndarray:
    """``image`` with every hue rotated by ``degrees`` (white and greys stay as they are)."""
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def blank(image: np.ndarray, kind: str, colour: int) -> np.ndarray:
    if kind == "white":
        return np.full_like(image, 255)
    if kind == "flat":
        return np.broadcast_to(np.asarray(PALETTE[colour].rgb, np.uint8), image.shape).copy()
    mask = foreground_mask(image)
    pivot = image[mask].mean(axis=0) if mask.any() else np.full(3, 128.0)
    return np.clip((image.astype(np.float64) - pivot) * 6 + pivot, 0, 255).astype(np.uint8)


def near_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float64) * rng.uniform(0.98, 1.02) + rng.normal(0, 2, image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def plant(job: Job, defect: str, rng: np.random.Generator, draw: Draw, *, serial: int = 0) -> Job:
    """A copy of ``job`` with ``defect`` at one variant (its probabilities are stale: re-judge it).

    ``serial`` picks the blank kind in turn."""
    images = job.images.copy()
    position = int(rng.integers(1 if defect == "duplicate" else 0, len(images)))
    seed = int(job.seeds[position])
    if defect == "wrong_category":
        images[position] = draw(other(job.category, NUM_CATEGORIES, rng), job.colour, seed)
    elif defect == "wrong_colour" and job.colour in ACHROMATIC:
        images[position] = draw(job.category, other(job.colour, NUM_COLOURS, rng), seed)
    elif defect == "wrong_colour":
        images[position] = hue_shifted(images[position], rng.uniform(90, 270))
    elif defect == "blank":
        images[position] = blank(images[position], BLANK_KINDS[serial % len(BLANK_KINDS)], job.colour)
    elif defect == "duplicate":
        images[position] = near_copy(images[int(rng.integers(0, position))], rng)
    else:
        raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
    return replace(job, images=images, defect=defect, position=position)
