"""How ``python -m bench.gate`` picks thresholds on its calibration split (``bench.gate.calibrate``)."""

from __future__ import annotations

import numpy as np

from bench.gate.calibrate import BUDGETS, calibrated, flagged, threshold


def test_separated_scores_get_the_middle_of_the_gap() -> None:
    clean, planted = np.array([1.0, 3.0, 5.0, 9.0]), np.array([30.0, 45.0])
    assert threshold(clean, planted, "at_most", budget=0.0) == 19.5
    assert threshold(np.array([0.6, 0.9]), np.array([0.01, 0.2]), "at_least", budget=0.0) == 0.4


def test_overlapping_scores_trade_misses_for_false_flags_within_the_budget() -> None:
    clean = np.linspace(0.2, 1.0, 100)  # one clean image below each planted one's score
    planted = np.array([0.0, 0.05, 0.1, 0.21, 0.25])
    free = threshold(clean, planted, "at_least", budget=1.0)
    assert np.mean(flagged(planted, "at_least", free)) == 1.0  # catching 0.25 flags 7 clean images
    tight = threshold(clean, planted, "at_least", budget=0.0)
    assert (
        np.mean(flagged(clean, "at_least", tight)) == 0.0
        and np.mean(flagged(planted, "at_least", tight)) == 0.6
    )


def test_integer_thresholds_keep_the_decisions_of_the_midpoint() -> None:
    scores = {
        "category": np.array([0.5, 0.9]),
        "colour": np.array([3.0, 5.0]),
        "duplicate": np.array([20, 40]),
    }
    planted = {"category": np.array([0.01]), "colour": np.array([50.0]), "duplicate": np.array([2, 5])}
    rules = {"category": "at_least", "colour": "at_most", "duplicate": "at_least"}
    fields = calibrated(scores, planted, rules)  # type: ignore[arg-type]
    assert fields["min_duplicate_hamming"] == 13 and isinstance(fields["min_duplicate_hamming"], int)
    assert fields["max_colour_delta_e"] == 27.5 and fields["min_category_probability"] == 0.255
    assert set(BUDGETS) == set(scores)
