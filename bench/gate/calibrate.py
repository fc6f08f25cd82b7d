"""Thresholds from the calibration split alone; the test split is never looked at here.

Each calibrated check gets the threshold that best separates the clean calibration images from
the calibration images planted with its defect: the largest share of planted images caught
minus the share of clean images flagged (Youden's J), among thresholds that flag at most the
check's budget of clean images. Thresholds are tried halfway between neighbouring scores, so
where the two groups do not overlap the threshold sits in the middle of the gap, as far from
both as it can be.

The degenerate-image limits (variance, foreground, clipping) are not calibrated: clean images sit
far from them (the report shows the clean extremes) and blank ones at 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from quality.settings import GateSettings
from quality.verdict import Rule

#: share of the clean calibration images each calibrated check may flag at most; together 3%,
#: under the 5% target, leaving room for the test split to differ
BUDGETS = {"category": 0.015, "colour": 0.01, "duplicate": 0.005}
#: the planted defect each calibrated check is meant to catch
DEFECT = {"category": "wrong_category", "colour": "wrong_colour", "duplicate": "duplicate"}
#: the ``GateSettings`` field each calibrated check's threshold goes to
SETTING = {
    "category": "min_category_probability",
    "colour": "max_colour_delta_e",
    "duplicate": "min_duplicate_hamming",
}


def flagged(scores: np.ndarray, rule: Rule, threshold: float) -> np.ndarray:
    """Which ``scores`` fail ``threshold`` under ``rule`` (as ``quality.verdict.Check`` decides)."""
    return ~(scores >= threshold) if rule == "at_least" else ~(scores <= threshold)


def threshold(clean: np.ndarray, planted: np.ndarray, rule: Rule, budget: float) -> float:
    """The threshold with the best Youden's J within ``budget`` of clean images flagged."""
    values = np.unique(np.concatenate([clean, planted])[np.isfinite(np.concatenate([clean, planted]))])
    candidates = np.concatenate([[values[0] - 1], (values[1:] + values[:-1]) / 2, [values[-1] + 1]])
    best, chosen = -math.inf, float(candidates[0])
    for t in candidates:
        false_flags = float(np.mean(flagged(clean, rule, t)))
        if false_flags <= budget and (j := float(np.mean(flagged(planted, rule, t))) - false_flags) > best:
            best, chosen = j, float(t)
    return chosen


def calibrated(
    clean_scores: dict[str, np.ndarray], planted_scores: dict[str, np.ndarray], rules: dict[str, Rule]
) -> dict[str, Any]:
    """``GateSettings`` fields for the calibrated checks.

    ``planted_scores[check]``: the check's scores on the images planted with its defect.
    """
    fields: dict[str, Any] = {}
    for name, budget in BUDGETS.items():
        value = threshold(clean_scores[name], planted_scores[name], rules[name], budget)
        field = SETTING[name]
        if GateSettings.model_fields[field].annotation is int:  # integer scores: the same decisions
            value = math.ceil(value) if rules[name] == "at_least" else math.floor(value)
        fields[field] = value
    return fields
