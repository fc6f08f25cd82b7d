"""Is the garment the requested colour? CIE76 distance between its mean CIELAB colour and the
requested palette colour's reference (a palette index, or a colour given as RGB).

A patterned garment (``pattern``, a name of ``serving_contract.patterns``) is compared with the
mean its pattern gives the colour (``quality.fabric``): its ground and ink mixed by the pattern's
share of ink, at the same shade. Without a pattern, or ``solid``, the reference is the colour
itself, exactly as for a colour-only model. A pattern the gate does not know (a catalog
version's own) leaves the colour check not judged: its ink is unknown, and a wrong reference
would fail every image of that version.
"""

from __future__ import annotations

import functools

import numpy as np

from quality.fabric import INK_SHARE, fabric_rgb
from quality.verdict import Check
from serving_contract.palette import PALETTE, srgb_to_lab

#: the shade at which a palette colour appears, on average, on a product: the colourisation shades
#: a garment between 0.55 and 1 of its colour by the fabric's intensity. 0.8 fits the real
#: colourised Fashion-MNIST train images best (median distance 5.1, 95th percentile 11.1; 0.75
#: and 0.85 give 13.5)
GARMENT_SHADE = 0.8

#: a palette colour's index, or a colour's sRGB values
Colour = int | tuple[int, int, int]


def reference_lab(colour: Colour, pattern: str | None = None) -> np.ndarray:
    """CIELAB of ``colour`` (a palette index, or RGB) drawn in ``pattern`` at ``GARMENT_SHADE``."""
    return _reference_lab(colour, pattern).copy()


def judges_pattern(pattern: str | None) -> bool:
    """Whether the colour check knows how ``pattern`` (``None``: plain) changes a colour."""
    return pattern is None or pattern in INK_SHARE


@functools.cache
def _reference_lab(colour: Colour, pattern: str | None) -> np.ndarray:
    """Worked out once per colour and pattern: a check per image did it again each time."""
    rgb = colour if isinstance(colour, tuple) else PALETTE[colour].rgb
    fabric = np.asarray(rgb, np.float64) if pattern is None else fabric_rgb(rgb, pattern)
    return np.asarray(srgb_to_lab(GARMENT_SHADE * fabric))


def garment_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean CIELAB of the product pixels (``mask``) of a uint8 ``[H, W, 3]`` image; NaN if none."""
    if not mask.any():
        return np.full(3, np.nan)
    return np.asarray(srgb_to_lab(image[mask].astype(np.float64)).mean(axis=0))


def colour_check(
    image: np.ndarray, mask: np.ndarray, colour: Colour, *, max_delta_e: float, pattern: str | None = None
) -> Check:
    """CIE76 ΔE between the garment and the reference; an image without product pixels fails."""
    if not judges_pattern(pattern):
        return Check.not_judged("colour", "at_most", max_delta_e)
    return _colour_check(garment_lab(image, mask), colour, pattern, max_delta_e)


def colour_checks(
    images: np.ndarray, masks: np.ndarray, colour: Colour, *, max_delta_e: float, pattern: str | None = None
) -> list[Check]:
    """:func:`colour_check` of each image of a stack (``[N, H, W, 3]``, masks ``[N, H, W]``):
    the product pixels of all of them converted in one call, each image's mean taken on its own
    pixels as :func:`garment_lab` takes it."""
    if not judges_pattern(pattern):
        return [Check.not_judged("colour", "at_most", max_delta_e)] * len(images)
    lab = srgb_to_lab(images[masks].astype(np.float64))
    counts = masks.reshape(len(masks), -1).sum(axis=1)
    ends = np.cumsum(counts)
    return [
        _colour_check(
            lab[end - count : end].mean(axis=0) if count else np.full(3, np.nan),
            colour,
            pattern,
            max_delta_e,
        )
        for end, count in zip(ends, counts, strict=True)
    ]


def _colour_check(garment: np.ndarray, colour: Colour, pattern: str | None, max_delta_e: float) -> Check:
    distance = float(np.linalg.norm(garment - _reference_lab(colour, pattern)))
    return Check.at_most("colour", distance, max_delta_e)
