"""Which pixels show the product: those far enough from the catalog's white background."""

from __future__ import annotations

import numpy as np

from serving_contract.palette import BACKGROUND_RGB

#: RGB distance from the background beyond which a pixel belongs to the product; the same rule
#: the evaluation measures colours with (training/evaluate/metrics.py, GARMENT_THRESHOLD)
BACKGROUND_DISTANCE = 40.0


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> bool ``[H, W]``: True where the product is. Also takes a stack of
    images, ``[N, H, W, 3]`` -> ``[N, H, W]`` (the same arithmetic per pixel)."""
    offset = image.astype(np.float32) - np.asarray(BACKGROUND_RGB, np.float32)
    return np.sqrt((offset * offset).sum(axis=-1)) > BACKGROUND_DISTANCE
