"""Is the garment the requested colour? CIE76 distance between its mean CIELAB colour and the
requested palette colour's reference."""

from __future__ import annotations

import numpy as np

from quality.verdict import Check
from serving_contract.palette import PALETTE, srgb_to_lab

#: the shade at which a palette colour appears, on average, on a product: the colourisation shades
#: a garment between 0.55 and 1 of its colour by the fabric's intensity. 0.8 fits the real
#: colourised Fashion-MNIST train images best (median distance 5.1, 95th percentile 11.1; 0.75
#: and 0.85 give 13.5)
GARMENT_SHADE = 0.8


def reference_lab(colour: int) -> np.ndarray:
    """CIELAB of palette colour ``colour`` at ``GARMENT_SHADE``."""
    return srgb_to_lab(GARMENT_SHADE * np.asarray(PALETTE[colour].rgb, np.float64))


def garment_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean CIELAB of the product pixels (``mask``) of a uint8 ``[H, W, 3]`` image; NaN if none."""
    if not mask.any():
        return np.full(3, np.nan)
    return np.asarray(srgb_to_lab(image[mask].astype(np.float64)).mean(axis=0))


def colour_check(image: np.ndarray, mask: np.ndarray, colour: int, *, max_delta_e: float) -> Check:
    """CIE76 ΔE between the garment and the reference; an image without product pixels fails."""
    distance = float(np.linalg.norm(garment_lab(image, mask) - reference_lab(colour)))
    return Check.at_most("colour", distance, max_delta_e)
