"""Is the garment the requested colour? CIE76 distance between its mean CIELAB colour and the
requested palette colour's reference (a palette index, or a colour given as RGB)."""

from __future__ import annotations

import functools

import numpy as np

from quality.verdict import Check
from serving_contract.palette import PALETTE, srgb_to_lab

#: the shade at which a palette colour appears, on average, on a product: the colourisation shades
#: a garment between 0.55 and 1 of its colour by the fabric's intensity. 0.8 fits the real
#: colourised Fashion-MNIST train images best (median distance 5.1, 95th percentile 11.1; 0.75
#: and 0.85 give 13.5)
GARMENT_SHADE = 0.8


#: a palette colour's index, or a colour's sRGB values
Colour = int | tuple[int, int, int]


def reference_lab(colour: Colour) -> np.ndarray:
    """CIELAB of ``colour`` (a palette index, or RGB) at ``GARMENT_SHADE``."""
    return _reference_lab(colour).copy()


@functools.cache
def _reference_lab(colour: Colour) -> np.ndarray:
    """Worked out once per colour: a check per image did it again each time."""
    rgb = colour if isinstance(colour, tuple) else PALETTE[colour].rgb
    return np.asarray(srgb_to_lab(GARMENT_SHADE * np.asarray(rgb, np.float64)))


def garment_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean CIELAB of the product pixels (``mask``) of a uint8 ``[H, W, 3]`` image; NaN if none."""
    if not mask.any():
        return np.full(3, np.nan)
    return np.asarray(srgb_to_lab(image[mask].astype(np.float64)).mean(axis=0))


def colour_check(image: np.ndarray, mask: np.ndarray, colour: Colour, *, max_delta_e: float) -> Check:
    """CIE76 ΔE between the garment and the reference; an image without product pixels fails."""
    return _colour_check(garment_lab(image, mask), colour, max_delta_e)


def colour_checks(
    images: np.ndarray, masks: np.ndarray, colour: Colour, *, max_delta_e: float
) -> list[Check]:
    """:func:`colour_check` of each image of a stack (``[N, H, W, 3]``, masks ``[N, H, W]``):
    the product pixels of all of them converted in one call, each image's mean taken on its own
    pixels as :func:`garment_lab` takes it."""
    lab = srgb_to_lab(images[masks].astype(np.float64))
    counts = masks.reshape(len(masks), -1).sum(axis=1)
    ends = np.cumsum(counts)
    return [
        _colour_check(
            lab[end - count : end].mean(axis=0) if count else np.full(3, np.nan), colour, max_delta_e
        )
        for end, count in zip(ends, counts, strict=True)
    ]


def _colour_check(garment: np.ndarray, colour: Colour, max_delta_e: float) -> Check:
    distance = float(np.linalg.norm(garment - _reference_lab(colour)))
    return Check.at_most("colour", distance, max_delta_e)
