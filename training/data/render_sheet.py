"""Contact sheets of the try-on renderer, for people to judge fit at a glance.

``python -m training.data.render_sheet`` writes ``docs/images/tryon_renderer_sweep.png`` (a red
t-shirt in sizes S..XL on bodies from small to large, under the bare bodies) and
``docs/images/tryon_renderer_categories.png`` (other categories in S and XL on the same bodies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving_contract.palette import colour_by_name
from serving_contract.sizing import SIZE_CHART
from serving_contract.taxonomy import category_by_slug
from training.data.fashion_mnist import FashionMNIST, load
from training.data.products import product_images
from training.data.tryon_render import render, render_body
from training.grids import save_grid

#: where the sheets go (the repository's docs/images)
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "docs" / "images"

#: bodies from small to large: height cm, weight kg, chest, waist, hips cm
BODIES = np.array(
    [
        [150, 45, 80, 64, 86],
        [160, 55, 88, 72, 94],
        [170, 68, 98, 84, 102],
        [180, 82, 106, 94, 108],
        [190, 100, 118, 108, 118],
        [200, 125, 132, 124, 134],
    ],
    np.float32,
)

#: (category slug, colour, index among that category's test images) for the category sheet
SHEET_GARMENTS = (("trouser", "blue", 0), ("dress", "green", 1), ("pullover", "navy", 0), ("coat", "grey", 0))


def garment_image(data: FashionMNIST, slug: str, colour: str, nth: int) -> np.ndarray:
    """The ``nth`` test image of a category as a product image in a palette colour."""
    index = int(np.flatnonzero(data.labels == category_by_slug(slug).index)[nth])
    one = FashionMNIST(data.images[index : index + 1], data.labels[index : index + 1])
    return product_images(one, np.array([colour_by_name(colour).index]))[0]


def sweep(garment: np.ndarray, category: int, sizes: list[int]) -> list[np.ndarray]:
    return [render(body, garment, category, size) for size in sizes for body in BODIES]


def write_sheets(directory: Path = DEFAULT_DIR) -> list[Path]:
    data = load("test")
    columns = [f"{h:.0f}cm {w:.0f}kg" for h, w in BODIES[:, :2]]
    all_sizes = [s.index for s in SIZE_CHART]
    t_shirt = garment_image(data, "t_shirt", "red", 0)
    tiles = [render_body(body) for body in BODIES] + sweep(t_shirt, 0, all_sizes)
    labels = ["bare"] + [f"t-shirt {s.label}" for s in SIZE_CHART]
    first = directory / "tryon_renderer_sweep.png"
    save_grid(first, np.stack(tiles), len(BODIES), scale=3, row_labels=labels, column_labels=columns)

    tiles, labels = [], []
    for slug, colour, nth in SHEET_GARMENTS:
        garment = garment_image(data, slug, colour, nth)
        tiles += sweep(garment, category_by_slug(slug).index, [0, len(SIZE_CHART) - 1])
        labels += [f"{slug} S", f"{slug} XL"]
    second = directory / "tryon_renderer_categories.png"
    save_grid(second, np.stack(tiles), len(BODIES), scale=3, row_labels=labels, column_labels=columns)
    return [first, second]


if __name__ == "__main__":
    for path in write_sheets():
        print(path)
