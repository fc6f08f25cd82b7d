"""How a catalog photo becomes a training image: RGB on the catalog's white background, padded
to a square (never cropped, so the whole product stays in view) and resized with Lanczos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: the background transparent pixels and the square padding get (the served images' white)
BACKGROUND = (255, 255, 255)


def to_square_rgb(image: Image.Image) -> Image.Image:
    """``image`` flattened onto white (alpha composited) and centred on a white square."""
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    side = max(flat.size)
    square = Image.new("RGB", (side, side), BACKGROUND)
    square.paste(flat, ((side - flat.width) // 2, (side - flat.height) // 2))
    return square


def load_training_image(path: Path, resolution: int) -> np.ndarray:
    """uint8 ``[resolution, resolution, 3]``: the photo at ``path`` as the model sees it."""
    with Image.open(path) as image:
        square = to_square_rgb(image)
    resized = square.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)
