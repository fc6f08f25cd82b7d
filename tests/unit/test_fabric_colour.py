"""The gate's colour check reads patterned garments (``quality/fabric.py``, ``quality/colour.py``):
on real Fashion-MNIST garments textured as the pattern models' data is, in every pattern and
every palette colour, the colour drawn passes and is the nearest reference."""

from __future__ import annotations

import numpy as np
import pytest

from quality import GateSettings, judge_job
from quality.colour import colour_check, colour_checks, reference_lab
from quality.fabric import DARK_LIGHTNESS, DARKEN, INK_SHARE, LIGHTEN, fabric_rgb, ink_rgb
from quality.foreground import foreground_mask
from serving_contract.palette import PALETTE, colour_by_name
from serving_contract.patterns import PATTERNS, Pattern
from training.data import fashion_mnist, patterns
from training.evaluate.colour_check_eval import cell

#: real test garments per (pattern, colour) cell
GARMENTS = 100
THRESHOLD = GateSettings().max_colour_delta_e


@pytest.fixture(scope="module")
def garments() -> fashion_mnist.FashionMNIST:
    test = fashion_mnist.load("test")
    pick = np.random.default_rng(16).choice(len(test.labels), size=GARMENTS, replace=False)
    return fashion_mnist.FashionMNIST(test.images[pick], test.labels[pick])


def drawn(garments: fashion_mnist.FashionMNIST, colour: int, pattern: int) -> np.ndarray:
    n = len(garments.labels)
    return patterns.patterned_product_images(garments, np.full(n, colour), np.full(n, pattern))


def test_the_fabric_rule_is_the_one_the_texturing_draws() -> None:
    assert (DARK_LIGHTNESS, LIGHTEN, DARKEN) == (
        patterns.DARK_LIGHTNESS,
        patterns.LIGHTEN,
        patterns.DARKEN,
    )
    for colour in PALETTE:
        np.testing.assert_allclose(ink_rgb(colour.rgb), patterns.ink_rgb(colour), rtol=1e-6)
    assert list(INK_SHARE) == [p.name for p in PATTERNS]
    for p in PATTERNS:  # 24 px hold whole periods of every field (4, 6 and the dots' 12)
        assert INK_SHARE[p.name] == pytest.approx(patterns.pattern_field(p, 32)[:24, :24].mean())


def test_solid_and_no_pattern_share_the_colour_only_reference() -> None:
    for colour in PALETTE:
        np.testing.assert_array_equal(reference_lab(colour.index, "solid"), reference_lab(colour.index))
        np.testing.assert_array_equal(fabric_rgb(colour.rgb, "solid"), np.asarray(colour.rgb, float))
    red = colour_by_name("red")
    np.testing.assert_array_equal(reference_lab(red.rgb, "denim"), reference_lab(red.index, "denim"))


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_real_garments_of_every_colour_pass_and_read_as_their_colour(
    garments: fashion_mnist.FashionMNIST, pattern: Pattern
) -> None:
    pass_rates, nearest = {}, {}
    for colour in PALETTE:
        measured = cell(drawn(garments, colour.index, pattern.index), colour.index, pattern.name, THRESHOLD)
        pass_rates[colour.name], nearest[colour.name] = measured["pass_rate"], measured["nearest_accuracy"]
    assert min(pass_rates.values()) >= 0.99, pass_rates
    assert np.mean(list(nearest.values())) >= 0.98, nearest
    # black with grey ink on a half-ink pattern averages to a dark grey, 10 delta E from grey's mix
    assert min(nearest.values()) >= (0.8 if INK_SHARE[pattern.name] == 0.5 else 0.97), nearest


def test_read_without_its_pattern_a_striped_garment_fails_more_often(
    garments: fashion_mnist.FashionMNIST,
) -> None:
    stripes = PATTERNS[1]
    blind = [
        cell(drawn(garments, c.index, stripes.index), c.index, None, THRESHOLD)["nearest_accuracy"]
        for c in PALETTE
    ]
    assert min(blind) < 0.5  # black's stripes read as grey: what the pattern's reference fixes


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_a_garment_of_an_opposite_colour_fails_in_every_pattern(
    garments: fashion_mnist.FashionMNIST, pattern: Pattern
) -> None:
    for drawn_as, asked in (("red", "green"), ("yellow", "navy"), ("blue", "orange"), ("white", "black")):
        images = drawn(garments, colour_by_name(drawn_as).index, pattern.index)
        checks = colour_checks(
            images,
            foreground_mask(images),
            colour_by_name(asked).index,
            max_delta_e=THRESHOLD,
            pattern=pattern.name,
        )
        assert not any(c.passed for c in checks), (drawn_as, asked)


def test_a_pattern_the_gate_does_not_know_leaves_the_colour_not_judged() -> None:
    image = np.full((32, 32, 3), 255, np.uint8)
    image[8:24, 8:24] = (10, 200, 10)
    check = colour_check(image, foreground_mask(image), 3, max_delta_e=THRESHOLD, pattern="tweed")
    assert check.passed and not check.judged
    assert colour_check(image, foreground_mask(image), 3, max_delta_e=THRESHOLD, pattern="stripes").judged


def test_a_job_judges_each_image_with_the_jobs_pattern(garments: fashion_mnist.FashionMNIST) -> None:
    black = colour_by_name("black").index
    images = drawn(garments, black, PATTERNS[4].index)[:6]
    verdicts = judge_job(
        images, np.full((6, 10), 0.1), category=0, colour=black, settings=GateSettings(), pattern="denim"
    )
    for image, verdict in zip(images, verdicts, strict=True):
        alone = colour_check(image, foreground_mask(image), black, max_delta_e=THRESHOLD, pattern="denim")
        assert verdict.check("colour") == alone and alone.passed
