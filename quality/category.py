"""Does the image show the requested category? The judge's probability for it says."""

from __future__ import annotations

import numpy as np

from quality.verdict import Check


def category_check(probabilities: np.ndarray, category: int | None, *, min_probability: float) -> Check:
    """``probabilities``: the judge's softmax over its categories for one image; ``category``:
    the judge's index of the requested category, ``None`` when the judge does not know it (a
    catalog version's own category): then the check is recorded as not judged
    (``Check.not_judged``) instead of failing every image of that version.

    A probability rather than the judge's top guess: shirts, t-shirts and pullovers look alike at
    32x32 (the judge's top guess agrees with a requested shirt only about 3 times in 4), and an
    image of a requested shirt that the judge splits between shirt and t-shirt is a fine shirt.
    """
    if category is None:
        return Check.not_judged("category", "at_least", min_probability)
    return Check.at_least("category", float(probabilities[category]), min_probability)
