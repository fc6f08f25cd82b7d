"""The gate's checks (``quality/``) on real generated images and on planted defects.

The images come from the committed ``product_cgan`` and ``quality_judge`` backends run in-process
(``bench.backends``), so the checks see what Triton serves; the defects are the benchmark's own
(``bench.gate.plants``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bench.backends import load_backend
from bench.gate.plants import blank, hue_shifted, near_copy
from quality import Check, GateSettings, judge_job
from quality.colour import GARMENT_SHADE, colour_check, reference_lab
from quality.foreground import foreground_mask
from serving_contract.palette import colour_by_name, srgb_to_lab
from serving_contract.taxonomy import category_by_slug

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

TROUSER = category_by_slug("trouser").index
ANKLE_BOOT = category_by_slug("ankle_boot").index
BLUE, WHITE, GREY = (colour_by_name(n).index for n in ("blue", "white", "grey"))
SEEDS = np.arange(4) + 4242


@pytest.fixture(scope="module")
def models() -> tuple[Any, Any]:
    return load_backend("product_cgan"), load_backend("quality_judge")


def draw(models: tuple[Any, Any], category: int, colour: int, seeds: np.ndarray = SEEDS) -> np.ndarray:
    generator, _ = models
    n = len(seeds)
    images = generator.forward(torch.full((n,), category), torch.full((n,), colour), seeds=seeds)
    return np.asarray(images.numpy())


def gate(models: tuple[Any, Any], images: np.ndarray, category: int = TROUSER, colour: int = BLUE) -> list:
    _, judge = models
    probabilities, _ = judge.forward(torch.from_numpy(images))
    return judge_job(images, probabilities.numpy(), category=category, colour=colour, settings=GateSettings())


@pytest.fixture(scope="module")
def job(models: tuple[Any, Any]) -> np.ndarray:
    """Four variants of a blue trouser, as a listing job gets them."""
    return draw(models, TROUSER, BLUE)


def test_a_generated_job_passes_every_check(models: tuple[Any, Any], job: np.ndarray) -> None:
    verdicts = gate(models, job)
    assert [v.failed for v in verdicts] == [()] * 4
    names = [c.name for c in verdicts[0].checks]
    assert names == ["category", "colour", "duplicate", "variance", "foreground", "clipping"]


def test_an_image_of_another_category_fails_the_category_check(
    models: tuple[Any, Any], job: np.ndarray
) -> None:
    planted = job.copy()
    planted[2] = draw(models, ANKLE_BOOT, BLUE, SEEDS[2:3])[0]
    verdicts = gate(models, planted)
    assert verdicts[2].failed == ("category",)
    category = verdicts[2].check("category")
    assert category.score < category.threshold == GateSettings().min_category_probability
    assert [v.passed for v in verdicts] == [True, True, False, True]


def test_a_hue_shifted_garment_fails_the_colour_check(models: tuple[Any, Any], job: np.ndarray) -> None:
    planted = job.copy()
    planted[0] = hue_shifted(job[0], 180)
    verdict = gate(models, planted)[0]
    assert "colour" in verdict.failed
    assert verdict.check("colour").score > 2 * GateSettings().max_colour_delta_e


def test_a_white_garment_is_not_taken_for_grey(models: tuple[Any, Any]) -> None:
    white = draw(models, TROUSER, WHITE, SEEDS[:1])[0]
    mask = foreground_mask(white)
    limit = GateSettings().max_colour_delta_e
    assert colour_check(white, mask, WHITE, max_delta_e=limit).passed
    assert not colour_check(white, mask, GREY, max_delta_e=limit).passed


def test_the_reference_is_the_palette_colour_at_garment_shade() -> None:
    rgb = np.asarray(colour_by_name("red").rgb, np.float64)
    garment = np.full((32, 32, 3), 255, np.uint8)
    garment[8:24, 8:24] = np.rint(GARMENT_SHADE * rgb).astype(np.uint8)
    check = colour_check(garment, foreground_mask(garment), colour_by_name("red").index, max_delta_e=1.0)
    assert check.passed and check.score < 0.5
    np.testing.assert_allclose(reference_lab(colour_by_name("red").index), srgb_to_lab(GARMENT_SHADE * rgb))


def test_a_near_copy_fails_only_the_later_variant(models: tuple[Any, Any], job: np.ndarray) -> None:
    planted = job.copy()
    planted[3] = near_copy(job[1], np.random.default_rng(0))
    verdicts = gate(models, planted)
    assert verdicts[3].failed == ("duplicate",)
    assert verdicts[3].check("duplicate").score < GateSettings().min_duplicate_hamming
    assert all(v.passed for v in verdicts[:3])  # the original stays


@pytest.mark.parametrize(
    ("kind", "failing"),
    [("white", {"variance", "foreground", "clipping"}), ("flat", {"variance"}), ("blown_out", {"clipping"})],
)
def test_blank_and_blown_out_images_fail_the_degenerate_checks(
    models: tuple[Any, Any], job: np.ndarray, kind: str, failing: set[str]
) -> None:
    planted = job.copy()
    planted[1] = blank(job[1], kind, BLUE)
    verdict = gate(models, planted)[1]
    assert failing <= set(verdict.failed)


def test_checks_compare_by_their_rule_and_a_missing_score_fails() -> None:
    assert Check.at_least("category", 0.5, 0.5).passed and not Check.at_least("category", 0.49, 0.5).passed
    assert Check.at_most("colour", 3.0, 3.0).passed and not Check.at_most("colour", 3.1, 3.0).passed
    assert not Check.at_most("colour", float("nan"), 3.0).passed
    blank_image = np.full((32, 32, 3), 255, np.uint8)
    assert not colour_check(blank_image, foreground_mask(blank_image), BLUE, max_delta_e=1e9).passed


def test_thresholds_come_from_atelier_gate_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_GATE_MIN_CATEGORY_PROBABILITY", "0.5")
    monkeypatch.setenv("ATELIER_GATE_MIN_DUPLICATE_HAMMING", "30")
    settings = GateSettings()
    assert (settings.min_category_probability, settings.min_duplicate_hamming) == (0.5, 30)
    monkeypatch.setenv("ATELIER_GATE_MIN_CATEGORY_PROBABILITY", "1.5")
    with pytest.raises(ValidationError, match="min_category_probability"):
        GateSettings()


def test_a_job_needs_one_row_of_probabilities_per_image(job: np.ndarray) -> None:
    with pytest.raises(ValueError, match="4 images but 3 rows"):
        judge_job(job, np.full((3, 10), 0.1), category=TROUSER, colour=BLUE, settings=GateSettings())
