"""The colour palette the product model is conditioned on, and how a grayscale
Fashion-MNIST image is colourised with it.

Fashion-MNIST images are light garments on a black background. Colourising maps them to a
catalog look: a white background and a garment in the palette colour, shaded by the original
intensity so texture (folds, prints, seams) survives. The mapping is deterministic, so the
model has one right answer to learn for each (image, colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Colour:
    index: int
    name: str
    rgb: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)


PALETTE: tuple[Colour, ...] = (
    Colour(0, "black", (28, 28, 30)),
    Colour(1, "white", (246, 246, 240)),
    Colour(2, "grey", (128, 128, 132)),
    Colour(3, "red", (200, 30, 40)),
    Colour(4, "orange", (240, 130, 20)),
    Colour(5, "yellow", (240, 210, 40)),
    Colour(6, "green", (40, 150, 60)),
    Colour(7, "blue", (40, 100, 220)),
    Colour(8, "navy", (25, 35, 95)),
    Colour(9, "purple", (120, 50, 160)),
    Colour(10, "pink", (240, 120, 180)),
    Colour(11, "brown", (120, 75, 40)),
)

#: number of colours the product model is conditioned on
NUM_COLOURS = len(PALETTE)

#: catalog background (pure white), outside the garment
BACKGROUND_RGB = (255, 255, 255)

#: intensity below which a Fashion-MNIST pixel counts as background (alpha ramps up to it)
ALPHA_RAMP = 0.12

#: darkest shade of a garment pixel, as a fraction of its colour (at intensity 0 inside it)
MIN_SHADE = 0.55

_BY_NAME = {c.name: c for c in PALETTE}


def colour_by_name(name: str) -> Colour:
    """Look up a palette colour by name; raises ``KeyError`` naming the known colours."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        raise KeyError(f"unknown colour {name!r}; known: {', '.join(_BY_NAME)}") from None


def nearest_colour(rgb: tuple[int, int, int] | str) -> Colour:
    """The palette colour closest to ``rgb`` (or a ``#rrggbb`` string) in CIELAB."""
    if isinstance(rgb, str):
        text = rgb.lstrip("#")
        if len(text) != 6:
            raise ValueError(f"expected #rrggbb, got {rgb!r}")
        rgb = (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    lab = srgb_to_lab(np.asarray(rgb, dtype=np.float64))
    distances = [float(np.linalg.norm(lab - srgb_to_lab(np.asarray(c.rgb, float)))) for c in PALETTE]
    return PALETTE[int(np.argmin(distances))]


def colourise(gray: np.ndarray, colour: Colour) -> np.ndarray:
    """Colourise Fashion-MNIST images: uint8 ``[..., H, W]`` -> uint8 ``[..., H, W, 3]``.

    ``alpha = min(1, v / ALPHA_RAMP)`` blends the white background with the garment colour
    shaded by ``MIN_SHADE + (1 - MIN_SHADE) * v``, where ``v`` is the intensity in [0, 1].
    """
    v = gray.astype(np.float32)[..., None] / 255.0
    alpha = np.clip(v / ALPHA_RAMP, 0.0, 1.0)
    shade = MIN_SHADE + (1.0 - MIN_SHADE) * v
    garment = np.asarray(colour.rgb, np.float32) * shade
    background = np.asarray(BACKGROUND_RGB, np.float32)
    out = background * (1.0 - alpha) + garment * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 255] (``[..., 3]``) to CIELAB (D65), for perceptual colour distances."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lightness = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)
