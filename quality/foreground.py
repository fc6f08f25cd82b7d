"""Which pixels show the product: those far enough from the catalog's white background."""

from __future__ import annotations

import numpy as np

from serving_contract.palette import BACKGROUND_RGB

#: RGB distance from the background beyond which a pixel belongs to the product; the same rule
#: the evaluation measures colours with (training/evaluate/metrics.py, GARMENT_THRESHOLD)
BACKGROUND_DISTANCE = 40.0

#: the rule compares squared distances, whole numbers, with the squared threshold (1600)
_LIMIT = BACKGROUND_DISTANCE**2
_BACKGROUND = np.asarray(BACKGROUND_RGB, np.int32)


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> bool ``[H, W]``: True where the product is. Also takes a stack of
    images, ``[N, H, W, 3]`` -> ``[N, H, W]`` (the same arithmetic per pixel).

    For uint8 pixels the squared distance is a whole number (at most 3 * 255**2), so
    ``distance > 40`` is ``squared > 1600`` exactly: the same pixels as the float32 square root,
    without it (``tests/unit/test_quality_batch.py`` compares every RGB colour). Other pixel
    types take the square root."""
    if image.dtype != np.uint8:
        distance = image.astype(np.float32) - np.asarray(BACKGROUND_RGB, np.float32)
        return np.sqrt((distance * distance).sum(axis=-1)) > BACKGROUND_DISTANCE
    offset = image.astype(np.int32)
    offset -= _BACKGROUND
    offset *= offset
    squared = offset[..., 0]
    squared += offset[..., 1]
    squared += offset[..., 2]
    return squared > _LIMIT
