"""Inception Score on cases with known answers, and on a classifier's probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.evaluate.classifier import Judge
from training.evaluate.inception_score import class_probabilities, inception_score


def confident(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes)[labels]


def test_one_repeated_image_scores_one() -> None:
    probabilities = np.tile([0.7, 0.2, 0.1], (100, 1))
    mean, std = inception_score(probabilities)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0)


def test_evenly_used_confident_classes_score_the_class_count() -> None:
    for classes in (2, 6, 10):
        mean, _ = inception_score(confident(np.arange(1200) % classes, classes))  # 120 a split
        assert mean == pytest.approx(classes, rel=1e-6)


def test_unsure_or_collapsed_predictions_score_low() -> None:
    assert inception_score(np.full((200, 10), 0.1))[0] == pytest.approx(1.0)
    collapsed = confident(np.where(np.arange(1000) % 10 == 0, 1, 0), 10)  # 90% one class
    assert inception_score(collapsed)[0] == pytest.approx(np.exp(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1))))


def test_partly_confident_predictions_score_between_one_and_the_class_count() -> None:
    sharp = confident(np.arange(1000) % 4, 4) * 0.7 + 0.075
    mean, _ = inception_score(sharp)
    assert 1.0 < mean < 4.0


@pytest.mark.parametrize(
    ("probabilities", "splits", "message"),
    [
        (np.ones(10) / 10, 1, r"\[N, classes\]"),
        (np.full((5, 2), 0.5), 10, "splits must be between 1 and the number of rows"),
        (np.full((20, 2), 0.6), 2, "sum to 1"),
        (np.tile([1.5, -0.5], (20, 1)), 2, "non-negative"),
    ],
)
def test_bad_input_names_the_rule(probabilities: np.ndarray, splits: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inception_score(probabilities, splits=splits)


def test_class_probabilities_are_distributions_over_the_judges_classes() -> None:
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    probabilities = class_probabilities(Judge(6), images, batch=5)
    assert probabilities.shape == (12, 6)
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_report_shows_the_measured_score_or_says_how_to_measure_it() -> None:
    from training.evaluate.report import inception_score_text

    assert "python -m training.evaluate.inception_score" in inception_score_text(None)
    measured = {
        "judge_is_generated": 7.98,
        "judge_is_generated_std": 0.14,
        "judge_is_real_test": 7.64,
        "judge_is_real_test_std": 0.16,
        "samples": 5000,
        "splits": 10,
        "command": "python -m training.evaluate.inception_score --samples 5000",
    }
    text = inception_score_text(measured)
    assert "**7.98** ± 0.14 generated, 7.64 ± 0.16 real" in text and "5000 each" in text
