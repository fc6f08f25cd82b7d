"""The committed pattern judge still reads the patterns the texturing draws today: a change to
the patterns without retraining the judge fails here."""

from __future__ import annotations

import numpy as np
import torch

from serving_contract.patterns import NUM_PATTERNS
from training.data import fashion_mnist
from training.evaluate.pattern_judge import (
    load_pattern_judge,
    pattern_accuracy,
    per_pattern_accuracy,
    textured,
)

#: footwear (sandal 5, sneaker 7) shows too few fabric pixels to judge reliably
FOOTWEAR = (5, 7)


def test_per_pattern_accuracy_counts_each_pattern_separately() -> None:
    predicted = np.array([0, 0, 1, 2, 2, 5])
    truth = np.array([0, 1, 1, 2, 3, 5])
    accuracy = per_pattern_accuracy(predicted, truth)
    assert accuracy["solid"] == 1.0 and accuracy["stripes"] == 0.5 and accuracy["dots"] == 0.0
    assert np.isnan(accuracy["denim"])  # no denim asked for: undefined, never a silent 0 or 1


def test_committed_pattern_judge_reads_held_out_textured_garments() -> None:
    torch.set_num_threads(1)
    judge, recorded = load_pattern_judge()
    test = fashion_mnist.load("test")
    chosen = ~np.isin(test.labels, FOOTWEAR)
    data = fashion_mnist.FashionMNIST(test.images[chosen][:1200], test.labels[chosen][:1200])
    images, patterns = textured(data, seed=2024)  # a seed neither training nor the record used
    accuracy = pattern_accuracy(judge, images, patterns)
    assert accuracy["all"] >= 0.97, accuracy
    assert min(accuracy[name] for name in accuracy) >= 0.9, accuracy
    assert np.bincount(patterns, minlength=NUM_PATTERNS).min() > 100
    assert recorded["all"] >= 0.97
