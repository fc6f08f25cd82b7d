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
from quality.colour import Colour, colour_check, pixels_lab, reference_lab
from quality.degenerate import degenerate_checks, spreads
from quality.duplicates import HASH_SIZE, duplicate_checks, perceptual_hashes
from quality.foreground import BACKGROUND_DISTANCE, foreground_mask
from serving_contract.palette import BACKGROUND_RGB, PALETTE, srgb_to_lab

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
    flat = np.stack([np.full((32, 32, 3), level, np.uint8) for level in (0, 1, 128, 254, 255)])
    stripes = np.zeros((2, 32, 32, 3), np.uint8)
    stripes[0, ::2], stripes[1, :, ::2] = 255, 255
    images = np.concatenate(
        [
            product_like(rng, 6),
            rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
            (rng.integers(0, 2, (4, 32, 32, 3)) * 255).astype(np.uint8),
            flat,
            stripes,
        ]
    )
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


def test_the_foreground_mask_is_the_float_distance_rule_for_every_colour() -> None:
    """The integer rule (squared distance > 1600) picks the same pixels as the float32 distance
    it replaced (``sqrt(sum(offset**2)) > 40``), for each of the 2**24 RGB colours."""
    levels = np.arange(256, dtype=np.uint8)
    green, blue = np.meshgrid(levels, levels, indexing="ij")
    for red in range(256):
        image = np.stack([np.full_like(green, red), green, blue], axis=-1)
        offset = image.astype(np.float32) - np.asarray(BACKGROUND_RGB, np.float32)
        expected = np.sqrt((offset * offset).sum(axis=-1)) > BACKGROUND_DISTANCE
        np.testing.assert_array_equal(foreground_mask(image), expected)


def test_pixels_are_converted_to_lab_exactly_as_srgb_to_lab_converts_them() -> None:
    """Every level of every channel, and a million random colours, in one stack."""
    rng = np.random.default_rng(12)
    levels = np.arange(256, dtype=np.uint8)
    pixels = np.concatenate(
        [
            np.stack([levels] * 3, axis=-1),
            np.stack([levels, np.zeros_like(levels), 255 - levels], axis=-1),
            rng.integers(0, 256, (1 << 20, 3), dtype=np.uint8),
        ]
    )
    np.testing.assert_array_equal(pixels_lab(pixels), srgb_to_lab(pixels.astype(np.float64)))


@pytest.mark.parametrize("side", [32, 16, 64, 31, 48])
def test_the_spreads_are_numpy_std_to_the_last_bit(side: int) -> None:
    rng = np.random.default_rng(side)
    stacks = [
        rng.integers(0, 256, (6, side * side, 3), dtype=np.uint8),
        (rng.integers(0, 2, (6, side * side, 3)) * 255).astype(np.uint8),
        np.full((2, side * side, 3), 37, np.uint8),
        product_like(rng, 4).reshape(4, -1, 3),
    ]
    for pixels in stacks:
        np.testing.assert_array_equal(spreads(pixels), pixels.std(axis=1).max(axis=1))


def test_a_fixed_job_keeps_its_recorded_scores() -> None:
    """Scores recorded from the per-image checks the stacked ones replaced: a blank variant, a
    blown-out one, a near-copy of an earlier one, by palette index and by RGB with a pattern."""
    images = product_like(np.random.default_rng(11), 5)
    images[4] = images[3]
    images[1, 10:14, 10:14] = 255
    probabilities = np.linspace(0.01, 0.3, 50).reshape(5, 10)
    common = [
        [("category", 0.027755102040816326), ("duplicate", 256.0), ("variance", 0.0)],
        [("category", 0.08693877551020407), ("duplicate", 127.0), ("variance", 82.83767973231464)],
        [("category", 0.14612244897959184), ("duplicate", 116.0), ("variance", 101.81104064888409)],
        [("category", 0.20530612244897958), ("duplicate", 110.0), ("variance", 82.00689184488456)],
        [("category", 0.26448979591836735), ("duplicate", 0.0), ("variance", 82.00689184488456)],
    ]
    shares = [(0.0, 1.0), (0.37109375, 0.0017543859649122807), (0.38671875, 0.36447811447811446)]
    shares += [(0.38671875, 0.0025252525252525255)] * 2
    colours: dict[tuple[str | None, Colour], list[float]] = {
        (None, 5): [math.nan, 71.17291202929553, 75.64339961860598, 68.01810742650039, 68.01810742650039],
        ("stripes", (200, 30, 40)): [
            math.nan,
            49.074564456017264,
            47.68794179329147,
            51.43822311170251,
            51.43822311170251,
        ],
    }
    failed = [
        ("category", "colour", "variance", "foreground", "clipping"),
        ("category", "colour"),
        ("colour", "clipping"),
        ("colour",),
        ("colour", "duplicate"),
    ]
    for (pattern, colour), colour_scores in colours.items():
        verdicts = judge_job(
            images, probabilities, category=3, colour=colour, settings=SETTINGS, pattern=pattern
        )
        for verdict, scores, (foreground, clipping), colour_score, names in zip(
            verdicts, common, shares, colour_scores, failed, strict=True
        ):
            expected = dict(scores) | {"foreground": foreground, "clipping": clipping}
            assert {c.name: c.score for c in verdict.checks if c.name != "colour"} == expected
            got = verdict.check("colour").score
            # the Lab conversion's vectorised float math may round its last bit differently on
            # another CPU (numpy picks SIMD paths per CPU: 71.1729120292955 on an AMD EPYC
            # against ...553 recorded); a real change moves far more than 1e-12
            assert math.isclose(got, colour_score, rel_tol=1e-12) or (
                math.isnan(got) and math.isnan(colour_score)
            )
            assert verdict.failed == names
