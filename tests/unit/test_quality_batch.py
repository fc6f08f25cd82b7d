"""The quality gate checks a job's images as one stack (``quality.gate.judge_job``): the same
scores, to the last bit, as each image's own checks and as ImageHash's ``phash``."""

from __future__ import annotations

import math

import imagehash
import numpy as np
import pytest
from PIL import Image

from quality import Check, GateSettings, judge_job
from quality.category import category_check
from quality.colour import colour_check, reference_lab
from quality.degenerate import degenerate_checks
from quality.duplicates import HASH_SIZE, duplicate_checks, perceptual_hashes
from quality.foreground import foreground_mask
from serving_contract.palette import PALETTE

SETTINGS = GateSettings()


def product_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """White catalog backgrounds with a noisy product in the middle, one of them left blank and
    one blown out (pure black and white pixels): every check's edge cases in one stack."""
    images = np.full((n, 32, 32, 3), 255, np.uint8)
    images[:, 5:27, 7:25] = rng.integers(0, 220, (n, 22, 18, 3), dtype=np.uint8)
    images[0] = 255
    if n > 2:
        images[2, 8:20, 8:20] = 0
    return images


def each_image_on_its_own(images: np.ndarray, probabilities: np.ndarray, category: int, colour: int) -> list:
    duplicates = duplicate_checks(images, min_hamming=SETTINGS.min_duplicate_hamming)
    checks = []
    for image, row, duplicate in zip(images, probabilities, duplicates, strict=True):
        mask = foreground_mask(image)
        checks.append(
            (
                category_check(row, category, min_probability=SETTINGS.min_category_probability),
                colour_check(image, mask, colour, max_delta_e=SETTINGS.max_colour_delta_e),
                duplicate,
                *degenerate_checks(image, mask, SETTINGS),
            )
        )
    return checks


def same(a: Check, b: Check) -> bool:
    both_nan = math.isnan(a.score) and math.isnan(b.score)
    return a == b or (both_nan and (a.name, a.threshold, a.passed) == (b.name, b.threshold, b.passed))


@pytest.mark.parametrize("seed", range(6))
def test_a_stack_of_images_scores_exactly_as_each_image_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2 + seed % 5
    images = product_like(rng, n) if seed % 2 else rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    probabilities = rng.dirichlet(np.ones(10), n)
    category, colour = seed % 10, seed % len(PALETTE)
    stacked = judge_job(images, probabilities, category=category, colour=colour, settings=SETTINGS)
    alone = each_image_on_its_own(images, probabilities, category, colour)
    for verdict, checks in zip(stacked, alone, strict=True):
        assert len(verdict.checks) == len(checks)
        assert all(same(a, b) for a, b in zip(verdict.checks, checks, strict=True)), (verdict, checks)


def test_the_stacked_hashes_are_imagehash_phash_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    images = np.concatenate([product_like(rng, 6), rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)])
    hashes = perceptual_hashes(images)
    for image, bits in zip(images, hashes, strict=True):
        expected = imagehash.phash(Image.fromarray(image), hash_size=HASH_SIZE).hash
        np.testing.assert_array_equal(bits, expected)


def test_an_empty_job_has_no_verdicts() -> None:
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    assert judge_job(empty, np.zeros((0, 10)), category=0, colour=0, settings=SETTINGS) == []


def test_a_colour_given_as_rgb_is_judged_like_its_palette_entry() -> None:
    colour = PALETTE[3]
    np.testing.assert_array_equal(reference_lab(tuple(colour.rgb)), reference_lab(3))  # type: ignore[arg-type]
    images = product_like(np.random.default_rng(3), 4)
    probabilities = np.full((4, 10), 0.1)
    by_index = judge_job(images, probabilities, category=1, colour=3, settings=SETTINGS)
    by_rgb = judge_job(images, probabilities, category=1, colour=tuple(colour.rgb), settings=SETTINGS)  # type: ignore[arg-type]
    assert all(
        same(a, b)
        for x, y in zip(by_index, by_rgb, strict=True)
        for a, b in zip(x.checks, y.checks, strict=True)
    )
