"""The category judge of pattern models (``training/evaluate/textured_judge.py``): it reads real
textured garments of every pattern as well as plain ones, better than the colour-only judge, and
a change to the texturing without retraining it fails here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from serving_contract.patterns import NUM_PATTERNS, PATTERNS
from training.evaluate.classifier import judge_images, load_judge
from training.evaluate.textured_judge import (
    PLAIN_JUDGE_PATH,
    TexturedJudgeConfig,
    category_accuracy,
    held_out_garments,
    load_textured_judge,
    train_textured_judge,
)

#: test garments drawn in each pattern, with colours of a seed neither training nor the record used
GARMENTS = 300


def test_category_accuracy_is_counted_per_category_and_per_pattern() -> None:
    categories = np.array([0, 0, 1, 1, 2, 2])
    patterns = np.array([0, 1, 0, 1, 0, 1])
    predicted = np.array([0, 6, 1, 1, 2, 4])
    accuracy = category_accuracy(predicted, categories, patterns)
    assert accuracy["all"] == pytest.approx(4 / 6)
    assert accuracy["per_pattern"] == {"solid": 1.0, "stripes": pytest.approx(1 / 3)}  # only those asked
    assert accuracy["per_category"]["t_shirt"] == 0.5 and accuracy["per_category"]["pullover"] == 0.5
    assert np.isnan(accuracy["per_category"]["bag"])  # never shown: undefined
    assert accuracy["per_category_and_pattern"]["t_shirt"] == {"solid": 1.0, "stripes": 0.0}


def test_held_out_garments_are_each_garment_in_every_pattern_and_one_colour() -> None:
    images, categories, patterns = held_out_garments(limit=5)
    assert images.shape == (5 * NUM_PATTERNS, 32, 32, 3)
    assert np.array_equal(np.bincount(patterns), np.full(NUM_PATTERNS, 5))
    assert np.array_equal(categories[:5], categories[5:10])
    solid, stripes = images[:5], images[5:10]
    outside = (solid == 255).all(axis=-1)
    assert np.array_equal(outside, (stripes == 255).all(axis=-1))  # the garments, not the backgrounds
    assert not np.array_equal(solid, stripes)


def test_committed_textured_judge_reads_textured_garments_better_than_the_plain_judge() -> None:
    torch.set_num_threads(1)
    judge, recorded = load_textured_judge()
    plain_judge, plain_recorded = load_judge(PLAIN_JUDGE_PATH)
    images, categories, patterns = held_out_garments(limit=GARMENTS, seed=2024)
    textured = category_accuracy(judge_images(judge, images)[0], categories, patterns)
    plain = category_accuracy(judge_images(plain_judge, images)[0], categories, patterns)
    assert textured["all"] >= 0.87, textured["per_pattern"]
    assert min(textured["per_pattern"].values()) >= 0.85, textured["per_pattern"]
    assert textured["all"] > plain["all"], (textured["per_pattern"], plain["per_pattern"])
    # on the whole test split, as recorded: every pattern, and plain garments no worse than the plain judge
    assert recorded["textured"]["all"] >= 0.89
    assert min(recorded["textured"]["per_pattern"][p.name] for p in PATTERNS) >= 0.89
    assert recorded["plain"] >= plain_recorded


def test_a_short_training_saves_weights_with_their_held_out_tables(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = TexturedJudgeConfig(epochs=1, images_per_epoch=256, held_out_limit=20)
    train_textured_judge(tmp_path / "judge.pt", config)
    judge, held_out = load_textured_judge(tmp_path / "judge.pt")
    assert held_out["garments"] == 20
    assert set(held_out["textured"]["per_pattern"]) == {p.name for p in PATTERNS}
    saved = torch.load(tmp_path / "judge.pt", weights_only=True)
    assert (
        saved["config"]["start_from"] == "judge.pt" and saved["test_accuracy"] == held_out["textured"]["all"]
    )
    assert judge_images(judge, held_out_garments(limit=2)[0])[0].shape == (2 * NUM_PATTERNS,)
