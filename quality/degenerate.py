"""Is there a picture at all? Blank fills, a product too small to see, blown-out pixels."""

from __future__ import annotations

import numpy as np

from quality.settings import GateSettings
from quality.verdict import Check


def degenerate_checks(image: np.ndarray, mask: np.ndarray, settings: GateSettings) -> list[Check]:
    """``variance``: the largest channel's standard deviation over the pixels (a flat fill of any
    colour has 0); ``foreground``: share of product pixels (``mask``); ``clipping``: share of the
    product's channel values at 0 or 255 (1 when there is no product)."""
    product = image[mask]
    clipped = float(np.mean((product == 0) | (product == 255))) if product.size else 1.0
    spread = float(image.reshape(-1, image.shape[-1]).std(axis=0).max())
    return [
        Check.at_least("variance", spread, settings.min_pixel_std),
        Check.at_least("foreground", float(mask.mean()), settings.min_foreground_fraction),
        Check.at_most("clipping", clipped, settings.max_clipped_fraction),
    ]
