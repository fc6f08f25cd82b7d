"""Every check on every variant of one listing job."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quality.category import category_check
from quality.colour import colour_check
from quality.degenerate import degenerate_checks
from quality.duplicates import duplicate_checks
from quality.foreground import foreground_mask
from quality.settings import GateSettings
from quality.verdict import Verdict


def judge_job(
    images: Sequence[np.ndarray] | np.ndarray,
    probabilities: np.ndarray,
    *,
    category: int,
    colour: int,
    settings: GateSettings,
) -> list[Verdict]:
    """One verdict per image of a job that asked for ``category`` in ``colour``.

    ``images``: uint8 ``[N, H, W, 3]`` as ``product_cgan`` returns them; ``probabilities``:
    ``[N, categories]``, the ``quality_judge`` model's answer for the same images.
    """
    if len(images) != len(probabilities):
        raise ValueError(f"{len(images)} images but {len(probabilities)} rows of probabilities")
    duplicates = duplicate_checks(images, min_hamming=settings.min_duplicate_hamming)
    verdicts = []
    for image, row, duplicate in zip(images, probabilities, duplicates, strict=True):
        mask = foreground_mask(image)
        verdicts.append(
            Verdict(
                (
                    category_check(row, category, min_probability=settings.min_category_probability),
                    colour_check(image, mask, colour, max_delta_e=settings.max_colour_delta_e),
                    duplicate,
                    *degenerate_checks(image, mask, settings),
                )
            )
        )
    return verdicts
