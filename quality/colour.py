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
import math

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
    lab = pixels_lab(images.reshape(-1, images.shape[-1])[masks.reshape(-1)])
    reference = _reference_lab(colour, pattern)
    checks, start = [], 0
    for count in np.count_nonzero(masks.reshape(len(masks), -1), axis=1).tolist():
        # np.mean's own two steps (the sum down the pixels, then the division) without its overhead
        garment = np.add.reduce(lab[start : start + count], axis=0) / count if count else _NO_PRODUCT
        checks.append(_delta_e_check(garment, reference, max_delta_e))
        start += count
    return checks


def pixels_lab(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[P, 3]`` sRGB -> ``[P, 3]`` CIELAB, bit for bit as ``srgb_to_lab`` converts them as
    float64: its own arithmetic, except that each channel's linear value is looked up among the 256
    that ``srgb_to_lab``'s formula gives (``tests/unit/test_quality_batch.py`` compares every RGB
    colour), instead of raised to the power 2.4 again for every pixel. Other pixel types go
    through ``srgb_to_lab`` itself."""
    if pixels.dtype != np.uint8:
        return np.asarray(srgb_to_lab(pixels.astype(np.float64)))
    linear = _LINEAR[pixels]
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lightness = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def _srgb_linear() -> np.ndarray:
    """``srgb_to_lab``'s linear value of each 8-bit level, computed by its own expression."""
    c = np.arange(256, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    linear.flags.writeable = False
    return linear


#: ``srgb_to_lab``'s constants: sRGB (linear) to XYZ, and the D65 white point
_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_LINEAR = _srgb_linear()
#: the mean colour of an image without product pixels (it fails the check)
_NO_PRODUCT = np.full(3, np.nan)
_NO_PRODUCT.flags.writeable = False


def _colour_check(garment: np.ndarray, colour: Colour, pattern: str | None, max_delta_e: float) -> Check:
    return _delta_e_check(garment, _reference_lab(colour, pattern), max_delta_e)


def _delta_e_check(garment: np.ndarray, reference: np.ndarray, max_delta_e: float) -> Check:
    """The Euclidean distance as ``np.linalg.norm`` computes it for a vector (the square root of
    its dot product with itself), without its overhead."""
    offset = garment - reference
    return Check.at_most("colour", math.sqrt(offset.dot(offset)), max_delta_e)
