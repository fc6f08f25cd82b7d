"""Are two variants of a job the same picture? Perceptual hashes (ImageHash's pHash) a few bits
apart say so, whatever the pixel noise between them.

:func:`perceptual_hashes` computes ImageHash's ``phash`` bits for a job's variants at once: the
grey conversion, Pillow's resize (``quality.lanczos``) and the DCTs each run once over the stack
instead of once per image, with the same bits (``tests/unit/test_quality_batch.py``). Of the
second DCT only the rows the hash keeps are computed: each row's transform is its own.
``scipy.fftpack`` is imported with this module, where ImageHash would import it on a worker's
first hash, inside its first job.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
import scipy.fftpack
from PIL import Image

from quality.lanczos import resize
from quality.verdict import Check

#: pHash side: 16 gives 256 bits from a 64x64 DCT. The default 8 (64 bits from 32x32) is too coarse
#: for 32x32 products: different variants of one job often hashed within 2 bits of each other
HASH_SIZE = 16
#: bits in a hash, the score of a variant with no earlier one to compare with
HASH_BITS = HASH_SIZE * HASH_SIZE
#: ImageHash's ``highfreq_factor``: the DCT runs on a grey image this many times the hash side
HIGHFREQ_FACTOR = 4
#: Pillow's ``convert("L")`` weights of R, G and B, in units of 2**-16
_LUMA_WEIGHTS = np.array([19595.0, 38470.0, 7471.0])


def perceptual_hash(image: np.ndarray) -> imagehash.ImageHash:
    return imagehash.phash(Image.fromarray(image), hash_size=HASH_SIZE)


def perceptual_hashes(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """``imagehash.phash(..., hash_size=HASH_SIZE).hash`` of each image, as bool
    ``[N, HASH_SIZE, HASH_SIZE]``: the same grey conversion, resize, DCTs and median (the mean of
    the two middle values, as ``np.median`` takes it), each for the whole stack at once."""
    side = HASH_SIZE * HIGHFREQ_FACTOR
    if len(images) == 0:
        return np.zeros((0, HASH_SIZE, HASH_SIZE), bool)
    pixels = resize(_luma(np.asarray(images)), side, side)  # whole levels, as Pillow's uint8
    columns = scipy.fftpack.dct(pixels, axis=1)[:, :HASH_SIZE]
    low = scipy.fftpack.dct(columns, axis=2)[:, :, :HASH_SIZE]
    middle = HASH_BITS // 2
    ranked = np.partition(low.reshape(len(pixels), -1), (middle - 1, middle), axis=1)
    medians = (ranked[:, middle - 1] + ranked[:, middle]) / 2
    return np.asarray(low > medians[:, None, None])


def _luma(images: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` RGB -> ``[N, H, W]`` grey levels (whole numbers in float64), exactly
    as Pillow's ``convert("L")`` computes them: ITU-R 601-2 in 16-bit fixed point, rounded down
    (a weighted sum of whole numbers below 2**24, exact in float64)."""
    luma = images.astype(np.float64) @ _LUMA_WEIGHTS
    luma += 0x8000
    luma /= 0x10000
    return np.floor(luma, out=luma)


def duplicate_checks(images: Sequence[np.ndarray] | np.ndarray, *, min_hamming: int) -> list[Check]:
    """One check per variant: the Hamming distance to the nearest earlier variant of the job.

    Only the later image of a near-identical pair fails, so the job keeps one of them.
    """
    hashes = perceptual_hashes(images).reshape(len(images), 1, -1)
    distances = np.count_nonzero(hashes != hashes.transpose(1, 0, 2), axis=2)
    earlier = np.tri(len(distances), k=-1, dtype=bool)
    nearest = np.where(earlier, distances, HASH_BITS).min(axis=1)
    return [Check.at_least("duplicate", d, min_hamming) for d in nearest.tolist()]
