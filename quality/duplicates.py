"""Are two variants of a job the same picture? Perceptual hashes (ImageHash's pHash) a few bits
apart say so, whatever the pixel noise between them.

:func:`perceptual_hashes` computes ImageHash's ``phash`` bits for a job's variants at once (one
DCT over the stack instead of one per image, the same bits: ``tests/unit/test_quality_batch.py``);
``scipy.fftpack`` is imported with this module, where ImageHash would import it on a worker's
first hash, inside its first job.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
import scipy.fftpack
from PIL import Image

from quality.verdict import Check

#: pHash side: 16 gives 256 bits from a 64x64 DCT. The default 8 (64 bits from 32x32) is too coarse
#: for 32x32 products: different variants of one job often hashed within 2 bits of each other
HASH_SIZE = 16
#: bits in a hash, the score of a variant with no earlier one to compare with
HASH_BITS = HASH_SIZE * HASH_SIZE
#: ImageHash's ``highfreq_factor``: the DCT runs on a grey image this many times the hash side
HIGHFREQ_FACTOR = 4


def perceptual_hash(image: np.ndarray) -> imagehash.ImageHash:
    return imagehash.phash(Image.fromarray(image), hash_size=HASH_SIZE)


def perceptual_hashes(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """``imagehash.phash(..., hash_size=HASH_SIZE).hash`` of each image, as bool
    ``[N, HASH_SIZE, HASH_SIZE]``: the same grey conversion (for the stack at once) and resize
    (per image), then the DCTs and medians of the whole stack in one call each."""
    side = HASH_SIZE * HIGHFREQ_FACTOR
    if len(images) == 0:
        return np.zeros((0, HASH_SIZE, HASH_SIZE), bool)
    grey = _luma(np.asarray(images))
    pixels = np.stack(
        [np.asarray(Image.fromarray(g, "L").resize((side, side), Image.Resampling.LANCZOS)) for g in grey]
    )
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE]
    medians = np.median(low.reshape(len(pixels), -1), axis=1)
    return np.asarray(low > medians[:, None, None])


def _luma(images: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` RGB -> ``[N, H, W]`` grey, exactly as Pillow's ``convert("L")``
    computes it (ITU-R 601-2 in 16-bit fixed point, rounded)."""
    rgb = images.astype(np.uint32)
    luma = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
    return (luma >> 16).astype(np.uint8)


def duplicate_checks(images: Sequence[np.ndarray] | np.ndarray, *, min_hamming: int) -> list[Check]:
    """One check per variant: the Hamming distance to the nearest earlier variant of the job.

    Only the later image of a near-identical pair fails, so the job keeps one of them.
    """
    hashes = perceptual_hashes(images).reshape(len(images), -1)
    return [
        Check.at_least(
            "duplicate",
            int(np.count_nonzero(hashes[:i] != hashes[i], axis=1).min()) if i else HASH_BITS,
            min_hamming,
        )
        for i in range(len(hashes))
    ]
