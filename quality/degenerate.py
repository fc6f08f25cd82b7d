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
    return _checks(spread, float(mask.mean()), clipped, settings)


def degenerate_checks_of(images: np.ndarray, masks: np.ndarray, settings: GateSettings) -> list[list[Check]]:
    """:func:`degenerate_checks` of each image of a stack (``[N, H, W, 3]``, masks ``[N, H, W]``),
    each score computed for the stack in one call (the same values: the shares are whole counts
    over the same totals)."""
    n, channels = len(images), images.shape[-1]
    spreads = images.reshape(n, -1, channels).std(axis=1).max(axis=1)
    products = masks.reshape(n, -1).sum(axis=1)
    extremes = ((images == 0) | (images == 255)) & masks[..., None]
    clipped_values = extremes.reshape(n, -1).sum(axis=1)
    return [
        _checks(
            float(spread),
            float(np.float64(product) / mask.size),
            float(np.float64(clipped) / (product * channels)) if product else 1.0,
            settings,
        )
        for spread, product, clipped, mask in zip(spreads, products, clipped_values, masks, strict=True)
    ]


def _checks(spread: float, foreground: float, clipped: float, settings: GateSettings) -> list[Check]:
    return [
        Check.at_least("variance", spread, settings.min_pixel_std),
        Check.at_least("foreground", foreground, settings.min_foreground_fraction),
        Check.at_most("clipping", clipped, settings.max_clipped_fraction),
    ]
