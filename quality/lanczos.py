"""Pillow's LANCZOS resize of 8-bit grey images, for a whole stack in two matrix products.

ImageHash's pHash resizes each image with Pillow, one call per image (most of the gate's CPU for
a job's hashes went there). Pillow resamples an 8-bit image in two passes, horizontal then
vertical, each a weighted sum with integer weights of ``PRECISION_BITS`` fractional bits, rounded
and clipped to 0..255 between the passes (``libImaging/Resample.c``). :func:`weights` restates
Pillow's weights (``precompute_coeffs`` and ``normalize_coeffs_8bpc``) and :func:`resize` applies
them to a stack as matrix products, the weights scaled by ``2**-PRECISION_BITS`` (exactly: a power
of two). Every product and partial sum is then a whole multiple of ``2**-22`` below ``2**9``,
exact in float64 whatever order BLAS adds them in, so the pixels are Pillow's to the bit
(``tests/unit/test_quality_lanczos.py`` compares them with Pillow's own).
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: fractional bits of Pillow's 8-bit weights (``32 - 8 - 2``)
PRECISION_BITS = 22
#: LANCZOS's support, in input pixels at scale 1
SUPPORT = 3.0

_ONE = float(1 << PRECISION_BITS)


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@functools.cache
def weights(in_size: int, out_size: int) -> np.ndarray:
    """float64 ``[out_size, in_size]``: Pillow's integer weight of each input pixel in each output
    pixel, for a resize of the whole extent (Pillow's default box), in units of ``2**-22``. The
    arithmetic is Pillow's step by step (the same doubles, the sum in the same order, C's
    truncating casts)."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    ss = 1.0 / filterscale
    matrix = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:
            ww += w
        for x, w in enumerate(k):
            if ww != 0.0:
                w /= ww
            matrix[xx, xmin + x] = int(-0.5 + w * _ONE) if w < 0 else int(0.5 + w * _ONE)
    matrix /= _ONE
    matrix.flags.writeable = False
    return matrix


def resize(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    """Grey levels ``[N, H, W]`` (uint8, or whole numbers 0..255 in float64) -> float64
    ``[N, height, width]`` of whole levels, as each image's ``Image.fromarray(g, "L").resize(
    (width, height), Image.Resampling.LANCZOS)``: a pass for each side whose size changes, the
    horizontal one first."""
    pixels = grey.astype(np.float64, copy=False)
    if width != grey.shape[2]:
        pixels = _clip8(pixels @ _transposed(grey.shape[2], width))
    if height != grey.shape[1]:
        pixels = _clip8(weights(grey.shape[1], height) @ pixels)
    return pixels


@functools.cache
def _transposed(in_size: int, out_size: int) -> np.ndarray:
    """:func:`weights` transposed, contiguous (a faster product on the right)."""
    matrix = np.ascontiguousarray(weights(in_size, out_size).T)
    matrix.flags.writeable = False
    return matrix


def _clip8(sums: np.ndarray) -> np.ndarray:
    """Pillow's ``clip8``, in place: Pillow starts its sum at a half and shifts it down by the
    precision bits, which is rounding the scaled sum down after adding a half, then it clips
    the level to 0..255."""
    sums += 0.5
    np.floor(sums, out=sums)
    np.maximum(sums, 0.0, out=sums)
    return np.minimum(sums, 255.0, out=sums)
