"""Is there a picture at all? Blank fills, a product too small to see, blown-out pixels."""

from __future__ import annotations

import numpy as np

from quality.settings import GateSettings
from quality.verdict import Check

#: the most pixels for which :func:`spreads` takes the variance from whole sums (exact to 2**12)
_EXACT_PIXELS = 4096


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
    over the same totals, the spreads see :func:`spreads`)."""
    n, channels = len(images), images.shape[-1]
    spread_of = spreads(images.reshape(n, -1, channels))
    products = np.count_nonzero(masks.reshape(n, -1), axis=1)
    if images.dtype == np.uint8:
        extremes = np.subtract(images, np.uint8(1)) >= 254  # 0 and 255 (0 wraps round to 255)
    else:
        extremes = (images == 0) | (images == 255)
    extremes &= masks[..., None]
    clipped_values = np.count_nonzero(extremes.reshape(n, -1), axis=1)
    return [
        _checks(
            float(spread),
            float(np.float64(product) / mask.size),
            float(np.float64(clipped) / (product * channels)) if product else 1.0,
            settings,
        )
        for spread, product, clipped, mask in zip(spread_of, products, clipped_values, masks, strict=True)
    ]


def spreads(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[N, P, C]`` -> each image's largest channel standard deviation, bit for bit as
    ``pixels.std(axis=1).max(axis=1)``.

    With ``P`` a power of two up to 4096 (a 32x32 image has 1024) every step of numpy's ``std``
    is exact in float64: the mean ``S / P``, each deviation and its square, and their sum, which
    is ``(P * Q - S**2) / P`` with ``Q`` the sum of squares. Those sums are two products with a
    row of ones here instead of numpy's reductions along the middle axis (a tenth of the CPU);
    any other size (or dtype) takes numpy's ``std`` itself."""
    count = pixels.shape[1]
    if pixels.dtype != np.uint8 or count == 0 or count & (count - 1) or count > _EXACT_PIXELS:
        return np.asarray(pixels.std(axis=1).max(axis=1))
    values = pixels.astype(np.float64)
    ones = np.ones(count)
    sums = ones @ values
    squares = ones @ (values * values)
    variances = (count * squares - sums * sums) / float(count * count)
    return np.asarray(np.sqrt(variances).max(axis=1))


def _checks(spread: float, foreground: float, clipped: float, settings: GateSettings) -> list[Check]:
    return [
        Check.at_least("variance", spread, settings.min_pixel_std),
        Check.at_least("foreground", foreground, settings.min_foreground_fraction),
        Check.at_most("clipping", clipped, settings.max_clipped_fraction),
    ]
