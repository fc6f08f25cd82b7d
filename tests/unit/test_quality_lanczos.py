"""``quality.lanczos`` resizes a stack of grey images exactly as Pillow's LANCZOS resizes each one,
the pHash's first step (``quality.duplicates``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from quality.lanczos import resize


def pillow(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.fromarray(g, "L").resize((width, height), Image.Resampling.LANCZOS)) for g in grey]
    )


def stacks(rng: np.random.Generator, shape: tuple[int, int]) -> list[np.ndarray]:
    """Noise, black-and-white noise (the most ringing: clipped at both ends), flat fills and a
    few levels at the extremes, in stacks of 8."""
    n = 8
    return [
        rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        (rng.integers(0, 2, (n, *shape)) * 255).astype(np.uint8),
        np.repeat(np.arange(0, 256, 32, dtype=np.uint8), shape[0] * shape[1]).reshape(n, *shape),
        rng.choice(np.array([0, 1, 127, 254, 255], np.uint8), (n, *shape)),
    ]


@pytest.mark.parametrize(
    ("shape", "size"), [((32, 32), (64, 64)), ((32, 32), (16, 24)), ((30, 17), (40, 64))]
)
def test_a_stack_resizes_exactly_as_pillow_resizes_each_image(
    shape: tuple[int, int], size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(sum(shape) + sum(size))
    width, height = size
    for _ in range(10):
        for grey in stacks(rng, shape):
            resized = resize(grey, width, height)
            assert resized.shape == (len(grey), height, width)
            np.testing.assert_array_equal(resized, pillow(grey, width, height))


def test_whole_levels_given_as_floats_resize_as_the_same_uint8_levels() -> None:
    grey = np.random.default_rng(3).integers(0, 256, (4, 32, 32), dtype=np.uint8)
    np.testing.assert_array_equal(resize(grey.astype(np.float64), 64, 64), resize(grey, 64, 64))


def test_a_side_of_the_same_size_is_not_resampled() -> None:
    grey = np.random.default_rng(4).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    np.testing.assert_array_equal(resize(grey, 32, 32), grey)
    np.testing.assert_array_equal(resize(grey, 64, 32), pillow(grey, 64, 32))
