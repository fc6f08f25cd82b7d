"""The procedural try-on renderer and the body sampler behind the try-on cVAE's training data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from serving_contract.sizing import MEASUREMENTS
from serving_contract.taxonomy import category_by_slug
from training.data.bodies import sample_measurements
from training.data.fashion_mnist import FashionMNIST, load
from training.data.products import product_images
from training.data.tryon_render import (
    BACKGROUND_RGB,
    LANDMARKS,
    PX_PER_CM,
    ambiguous_landmarks,
    figure,
    garment_box,
    landmark_rows,
    measure_widths,
    px_to_cm,
    render,
    render_batch,
    render_body,
)

T_SHIRT = category_by_slug("t_shirt").index
TROUSER = category_by_slug("trouser").index
DRESS = category_by_slug("dress").index
S, XL = 0, 3

SMALL = np.array([152, 46, 82, 64, 86], np.float32)
AVERAGE = np.array([175, 72, 100, 86, 102], np.float32)
LARGE = np.array([198, 128, 134, 126, 136], np.float32)


@pytest.fixture(scope="module")
def fashion() -> FashionMNIST:
    return load("test")  # raises, saying how to install dataset-fashion-mnist


def product(data: FashionMNIST, slug: str, colour: int = 3, nth: int = 0) -> np.ndarray:
    index = int(np.flatnonzero(data.labels == category_by_slug(slug).index)[nth])
    one = FashionMNIST(data.images[index : index + 1], data.labels[index : index + 1])
    return product_images(one, np.array([colour]))[0]


def solid_block() -> np.ndarray:
    """A product image that is one blue rectangle: its pasted width is exactly the garment box."""
    image = np.full((32, 32, 3), 255, np.uint8)
    image[2:30, 6:26] = (40, 100, 220)
    return image


def foreground_rows(image: np.ndarray) -> np.ndarray:
    return np.flatnonzero((np.abs(image.astype(int) - BACKGROUND_RGB).sum(-1) > 60).any(axis=1))


def test_render_is_a_64_pixel_rgb_image(fashion: FashionMNIST) -> None:
    image = render(AVERAGE, product(fashion, "t_shirt"), T_SHIRT, 1)
    assert image.shape == (64, 64, 3)
    assert image.dtype == np.uint8
    assert (image[0] == 255).all(), "the top row is background"


def test_same_inputs_give_byte_identical_images_and_batches_match(fashion: FashionMNIST) -> None:
    garments = np.stack([product(fashion, "t_shirt"), product(fashion, "dress", colour=6)])
    bodies = np.stack([SMALL, LARGE])
    batch = render_batch(bodies, garments, np.array([T_SHIRT, DRESS]), np.array([S, XL]))
    again = render_batch(bodies, garments, np.array([T_SHIRT, DRESS]), np.array([S, XL]))
    assert batch.shape == (2, 64, 64, 3)
    assert batch.tobytes() == again.tobytes()
    assert (batch[1] == render(LARGE, garments[1], DRESS, XL)).all()
    assert not (batch[0] == batch[1]).all()


def test_bigger_girths_give_a_wider_measured_silhouette() -> None:
    slim = measure_widths(render_body(AVERAGE), landmark_rows(AVERAGE))
    for column, name in zip((2, 3, 4), LANDMARKS, strict=True):
        wider = AVERAGE.copy()
        wider[column] += 20.0
        grown = measure_widths(render_body(wider), landmark_rows(wider))
        expected = 20.0 / 2.9 * PX_PER_CM
        assert grown[f"silhouette_{name}"] - slim[f"silhouette_{name}"] == pytest.approx(expected, abs=0.6)


@pytest.mark.parametrize("body", [SMALL, AVERAGE, LARGE])
def test_measured_body_widths_match_the_renderer_geometry(body: np.ndarray) -> None:
    widths = measure_widths(render_body(body), landmark_rows(body))
    geometry = figure(body)
    for name in LANDMARKS:
        assert widths[f"silhouette_{name}"] == pytest.approx(2 * geometry.half[name], abs=1.0)
        assert widths[f"garment_{name}"] == 0.0


@pytest.mark.parametrize("size", [S, XL])
def test_measured_garment_width_matches_the_garment_box(size: int) -> None:
    for body in (SMALL, LARGE):
        widths = measure_widths(render(body, solid_block(), DRESS, size), landmark_rows(body))
        left, _, right, _ = garment_box(body, DRESS, size)
        for name in LANDMARKS:
            assert widths[f"garment_{name}"] == pytest.approx(right - left, abs=1.0)


def test_trousers_leave_the_chest_bare_and_cover_the_hips(fashion: FashionMNIST) -> None:
    widths = measure_widths(render(AVERAGE, product(fashion, "trouser"), TROUSER, 1), landmark_rows(AVERAGE))
    assert widths["garment_chest"] == 0.0
    assert widths["silhouette_chest"] == pytest.approx(2 * figure(AVERAGE).half["chest"], abs=1.0)
    assert widths["garment_hips"] > 5.0


def test_size_xl_on_a_small_body_is_wider_than_size_s(fashion: FashionMNIST) -> None:
    t_shirt = product(fashion, "t_shirt")
    rows = landmark_rows(SMALL)
    small = measure_widths(render(SMALL, t_shirt, T_SHIRT, S), rows)
    large = measure_widths(render(SMALL, t_shirt, T_SHIRT, XL), rows)
    assert large["garment_waist"] > small["garment_waist"] + 2.0
    assert large["garment_waist"] > 2 * figure(SMALL).half["waist"] + 1.0, "XL stands off a small body"


def test_size_s_on_a_large_body_leaves_skin_showing_at_the_sides(fashion: FashionMNIST) -> None:
    widths = measure_widths(render(LARGE, product(fashion, "t_shirt"), T_SHIRT, S), landmark_rows(LARGE))
    assert widths["silhouette_waist"] > widths["garment_waist"] + 1.5


def test_the_same_size_is_longer_on_a_shorter_body(fashion: FashionMNIST) -> None:
    dress = product(fashion, "dress", colour=6)
    short, tall = SMALL.copy(), SMALL.copy()
    tall[0] = 200.0
    hem = []
    for body in (short, tall):
        _, top, _, bottom = garment_box(body, DRESS, S)
        hem.append((bottom - top) / figure(body).height)
        assert foreground_rows(render(body, dress, DRESS, S)).size > 0
    assert hem[0] > hem[1] + 0.1


def test_a_taller_body_is_a_taller_figure() -> None:
    heights = []
    for height in (150.0, 175.0, 200.0):
        body = AVERAGE.copy()
        body[0] = height
        rows = foreground_rows(render_body(body))
        heights.append(rows[-1] - rows[0] + 1)
        assert heights[-1] == pytest.approx(height * PX_PER_CM, abs=1.5)
    assert heights[0] < heights[1] < heights[2]
    assert px_to_cm(60.0) == pytest.approx(205.0)


def test_widths_survive_slight_blur_and_noise(fashion: FashionMNIST) -> None:
    image = render(AVERAGE, product(fashion, "t_shirt"), T_SHIRT, 2)
    rows = landmark_rows(AVERAGE)
    assert ambiguous_landmarks(image, rows) == []
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(0.6)), np.float32)
    noisy = np.clip(blurred + np.random.default_rng(0).normal(0, 3, blurred.shape), 0, 255).astype(np.uint8)
    clean, degraded = measure_widths(image, rows), measure_widths(noisy, rows)
    for key, value in clean.items():
        assert degraded[key] == pytest.approx(value, abs=1.5), key


def test_arms_are_not_part_of_the_measured_silhouette() -> None:
    image = render_body(LARGE)
    rows = landmark_rows(LARGE)
    assert ambiguous_landmarks(image, rows) == []
    skin_columns = np.flatnonzero((image[rows["waist"]] != 255).any(axis=-1))
    assert skin_columns[-1] - skin_columns[0] > measure_widths(image, rows)["silhouette_waist"] + 6


def test_a_shape_a_pixel_from_the_torso_is_flagged_ambiguous() -> None:
    image = render_body(AVERAGE)
    rows = landmark_rows(AVERAGE)
    row = rows["waist"]
    line = np.flatnonzero((image[row] != 255).any(axis=-1))
    torso_right = max(c for c in line if c < 40 and all((image[row, 32 : c + 1] != 255).any(axis=-1)))
    image[row, torso_right + 2 : torso_right + 5] = (230, 180, 150)
    assert ambiguous_landmarks(image, rows) == ["waist"]


@pytest.mark.parametrize("category", [5, 7, 8, 9])
def test_non_wearable_categories_are_refused_by_name(category: int) -> None:
    with pytest.raises(ValueError, match="cannot be worn") as refused:
        render(AVERAGE, solid_block(), category, 1)
    assert ("sandal", "sneaker", "bag", "ankle_boot")[[5, 7, 8, 9].index(category)] in str(refused.value)


def test_unknown_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="size 4"):
        render(AVERAGE, solid_block(), T_SHIRT, 4)


def test_sampled_bodies_stay_in_range_and_cover_it() -> None:
    bodies = sample_measurements(20_000, seed=3)
    assert bodies.shape == (20_000, 5)
    assert bodies.dtype == np.float32
    for column, spec in enumerate(MEASUREMENTS):
        values = bodies[:, column]
        assert values.min() >= spec.low and values.max() <= spec.high, spec.name
        span = spec.high - spec.low
        assert np.quantile(values, 0.005) < spec.low + 0.15 * span, f"{spec.name}: small bodies missing"
        assert np.quantile(values, 0.995) > spec.high - 0.15 * span, f"{spec.name}: large bodies missing"


def test_sampled_bodies_are_plausibly_correlated() -> None:
    height, weight, chest, waist, hips = sample_measurements(20_000, seed=4).T
    bmi = weight / (height / 100) ** 2
    assert bmi.min() > 15.0 and bmi.max() < 45.0
    for girth in (chest, waist, hips):
        assert np.corrcoef(weight, girth)[0, 1] > 0.7
    assert np.corrcoef(height, weight)[0, 1] > 0.3


def test_the_sampler_is_deterministic_per_seed() -> None:
    assert sample_measurements(50, seed=1).tobytes() == sample_measurements(50, seed=1).tobytes()
    assert not np.array_equal(sample_measurements(50, seed=1), sample_measurements(50, seed=2))
