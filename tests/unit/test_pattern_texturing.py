"""The pattern condition's data: the contract lists the patterns, the texturing draws them
inside the garment only, on top of the colour, deterministically and distinguishably."""

from __future__ import annotations

import numpy as np
import pytest

from serving_contract.palette import PALETTE, colour_by_name, colourise, srgb_to_lab
from serving_contract.patterns import DEFAULT_PATTERN, NUM_PATTERNS, PATTERNS, Pattern, pattern_by_name
from training.data.fashion_mnist import FashionMNIST
from training.data.patterns import (
    ink_rgb,
    pattern_field,
    patterned_product_images,
    random_patterns,
    texture,
    texture_batch,
)


def garment(size: int = 32) -> np.ndarray:
    """A synthetic garment: a bright block with a graded edge on a black background."""
    gray = np.zeros((size, size), np.uint8)
    gray[4 : size - 4, 6 : size - 6] = 200
    gray[4 : size - 4, 6] = 20  # a faint edge pixel column (alpha between 0 and 1)
    return gray


def test_patterns_are_indexed_in_order_with_unique_names() -> None:
    assert [p.index for p in PATTERNS] == list(range(NUM_PATTERNS))
    assert len({p.name for p in PATTERNS}) == NUM_PATTERNS
    assert DEFAULT_PATTERN.name == "solid"
    assert pattern_by_name("Denim") is PATTERNS[4]


def test_unknown_pattern_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown pattern 'tweed'; known: solid, stripes"):
        pattern_by_name("tweed")


def test_solid_is_exactly_the_colour_only_image() -> None:
    gray = garment()
    for colour in PALETTE:
        assert np.array_equal(texture(gray, colour, DEFAULT_PATTERN), colourise(gray, colour))


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_pattern_never_leaks_onto_the_background(pattern: Pattern) -> None:
    gray = garment()
    image = texture(gray, colour_by_name("navy"), pattern)
    assert (image[gray == 0] == 255).all()


@pytest.mark.parametrize("pattern", PATTERNS[1:], ids=lambda p: p.name)
def test_every_pattern_marks_the_garment_and_differs_from_the_others(pattern: Pattern) -> None:
    field = pattern_field(pattern, 32)
    assert 0.08 <= field.mean() <= 0.6, "ink must cover enough of the garment to read, not all of it"
    for other in PATTERNS:
        if other is not pattern:
            assert (np.abs(field - pattern_field(other, 32)) > 0).mean() >= 0.08, other.name


def test_fields_scale_with_the_image_size() -> None:
    for pattern in PATTERNS:
        at_32 = pattern_field(pattern, 32)
        assert np.array_equal(pattern_field(pattern, 64), at_32.repeat(2, 0).repeat(2, 1))


def test_ink_contrasts_with_every_colour_and_keeps_it_dark_or_light() -> None:
    for colour in PALETTE:
        lightness = srgb_to_lab(np.asarray(colour.rgb, float))[0]
        ink = srgb_to_lab(ink_rgb(colour).astype(float))[0]
        assert abs(ink - lightness) >= 8, colour.name
        assert (ink > lightness) == (lightness < 40), colour.name


def test_batch_texturing_matches_one_by_one_and_is_deterministic() -> None:
    gray = np.stack([garment(), garment()[::-1], garment().T])
    colours, patterns = np.array([3, 8, 1]), np.array([1, 4, 5])
    batch = texture_batch(gray, colours, patterns)
    for i in range(3):
        assert np.array_equal(batch[i], texture(gray[i], PALETTE[colours[i]], PATTERNS[patterns[i]]))
    assert np.array_equal(batch, texture_batch(gray, colours, patterns))


def test_product_images_are_padded_and_patterns_seeded_evenly() -> None:
    data = FashionMNIST(np.stack([garment(28)] * 4), np.zeros(4, np.int64))
    images = patterned_product_images(data, np.zeros(4, np.int64), np.arange(4))
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    drawn = random_patterns(6000, seed=5)
    assert np.array_equal(drawn, random_patterns(6000, seed=5))
    assert np.bincount(drawn, minlength=NUM_PATTERNS).min() > 900
