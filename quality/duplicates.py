"""Are two variants of a job the same picture? Perceptual hashes (ImageHash's pHash) a few bits
apart say so, whatever the pixel noise between them."""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
from PIL import Image

from quality.verdict import Check

#: pHash side: 16 gives 256 bits from a 64x64 DCT. The default 8 (64 bits from 32x32) is too coarse
#: for 32x32 products: different variants of one job often hashed within 2 bits of each other
HASH_SIZE = 16
#: bits in a hash, the score of a variant with no earlier one to compare with
HASH_BITS = HASH_SIZE * HASH_SIZE


def perceptual_hash(image: np.ndarray) -> imagehash.ImageHash:
    return imagehash.phash(Image.fromarray(image), hash_size=HASH_SIZE)


def duplicate_checks(images: Sequence[np.ndarray] | np.ndarray, *, min_hamming: int) -> list[Check]:
    """One check per variant: the Hamming distance to the nearest earlier variant of the job.

    Only the later image of a near-identical pair fails, so the job keeps one of them.
    """
    hashes = [perceptual_hash(image) for image in images]
    return [
        Check.at_least(
            "duplicate", min((hashes[i] - earlier for earlier in hashes[:i]), default=HASH_BITS), min_hamming
        )
        for i in range(len(hashes))
    ]
