"""Every check on every variant of one listing job."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quality.category import category_check
from quality.colour import Colour, colour_checks
from quality.degenerate import degenerate_checks_of
from quality.duplicates import duplicate_checks
from quality.foreground import foreground_mask
from quality.settings import GateSettings
from quality.verdict import Verdict


def judge_job(
    images: Sequence[np.ndarray] | np.ndarray,
    probabilities: np.ndarray,
    *,
    category: int | None,
    colour: Colour,
    settings: GateSettings,
    pattern: str | None = None,
) -> list[Verdict]:
    """One verdict per image of a job that asked for ``category`` in ``colour``: the judge's
    index of the category (``None``: not one it knows, see ``category_check``), the colour as a
    palette index or RGB, and the ``pattern``'s name for a version with patterns (``None``: a
    colour-only version; see ``quality.colour`` for how a pattern changes the colour check).

    ``images``: uint8 ``[N, H, W, 3]`` as ``product_cgan`` returns them; ``probabilities``:
    ``[N, categories]``, the ``quality_judge`` model's answer for the same images. The checks
    run on the job's images as one stack (the worker's CPU per image: a loop per image cost
    about 0.7 ms each), with the same scores as each image's own checks.
    """
    if len(images) != len(probabilities):
        raise ValueError(f"{len(images)} images but {len(probabilities)} rows of probabilities")
    if len(images) == 0:
        return []
    stack = np.asarray(images)
    masks = foreground_mask(stack)
    duplicates = duplicate_checks(stack, min_hamming=settings.min_duplicate_hamming)
    colours = colour_checks(stack, masks, colour, max_delta_e=settings.max_colour_delta_e, pattern=pattern)
    degenerate = degenerate_checks_of(stack, masks, settings)
    return [
        Verdict(
            (
                category_check(row, category, min_probability=settings.min_category_probability),
                colour_check,
                duplicate,
                *blank,
            )
        )
        for row, colour_check, duplicate, blank in zip(
            probabilities, colours, duplicates, degenerate, strict=True
        )
    ]
