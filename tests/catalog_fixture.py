"""A small catalog folder written by the tests: PNG files, conditions.json and an attributes CSV
with one bad row of each kind the check must catch. ``write_catalog(..., patterns=True)`` writes
the patterned variant: conditions.json lists ``PATTERNS`` and the CSV has a ``pattern`` column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CONDITIONS: dict[str, list[dict[str, Any]]] = {
    "categories": [
        {"index": 0, "slug": "scarf", "label": "Scarf", "department": "accessories", "wearable": False},
        {"index": 1, "slug": "tee", "label": "T-shirt", "department": "tops", "wearable": True},
        {"index": 2, "slug": "skirt", "label": "Skirt", "department": "bottoms", "wearable": True},
    ],
    "colours": [
        {"index": 0, "name": "teal", "rgb": [0, 128, 128]},
        {"index": 1, "name": "coral", "rgb": [255, 127, 80]},
    ],
}

#: (rule the check reports, the CSV row) for each bad row, in CSV order after the good ones
BAD_ROWS = {
    "missing image": "missing.png,tee,teal",
    "corrupt image": "corrupt.png,tee,coral",
    "unknown category": "hat.png,hat,teal",
    "image too small": "tiny.png,skirt,teal",
    "duplicate row": "good_01.png,tee,coral",
    "unknown colour": "other.png,scarf,mauve",
}

GOOD_ROWS = 12

#: the patterned variant's patterns (names of serving_contract/patterns.py)
PATTERNS: list[dict[str, Any]] = [
    {"index": 0, "name": "solid", "description": "plain fabric"},
    {"index": 1, "name": "stripes", "description": "horizontal stripes"},
    {"index": 2, "name": "dots", "description": "spots on a grid"},
]

#: the patterned variant's extra bad row, after ``BAD_ROWS`` (which it gives the pattern ``solid``)
BAD_PATTERN_ROW = ("unknown pattern", "plaid.png,skirt,coral,plaid")


def product_photo(category: int, colour: tuple[int, int, int], size: int, seed: int) -> Image.Image:
    """A flat-colour silhouette per category on white, with a little seeded jitter."""
    rng = np.random.default_rng(seed)
    pixels = np.full((size, size, 3), 255, np.uint8)
    margin = size // 8 + int(rng.integers(0, 3))
    if category == 0:  # a long horizontal band
        pixels[size // 2 - size // 8 : size // 2 + size // 8, margin:-margin] = colour
    elif category == 1:  # a T: shoulders and body
        pixels[margin : margin + size // 5, margin:-margin] = colour
        pixels[margin : size - margin, size // 3 : size - size // 3] = colour
    else:  # a trapezoid-ish block
        for row in range(margin, size - margin):
            half = size // 6 + (row - margin) // 3
            pixels[row, size // 2 - half : size // 2 + half] = colour
    pixels[-1, seed % size] = (200, 200, 200)  # every photo's bytes differ
    return Image.fromarray(pixels)


def with_pattern(photo: Image.Image, pattern: int) -> Image.Image:
    """``photo`` with its garment (the non-white pixels) darkened in stripes (1) or dots (2)."""
    pixels = np.asarray(photo).copy()
    rows, columns = np.indices(pixels.shape[:2])
    marks = {0: rows < 0, 1: rows % 4 < 2, 2: (rows % 6 < 2) & (columns % 6 < 2)}[pattern]
    garment = (pixels < 250).any(axis=2)
    pixels[marks & garment] = pixels[marks & garment] // 2
    return Image.fromarray(pixels)


def write_catalog(directory: Path, *, size: int = 40, patterns: bool = False) -> Path:
    """Write the catalog into ``directory``; returns the attributes CSV path. With ``patterns``
    the catalog also defines ``PATTERNS``: good rows cycle through them, and one more bad row
    names an unknown pattern."""
    directory.mkdir(parents=True, exist_ok=True)
    conditions = CONDITIONS | ({"patterns": PATTERNS} if patterns else {})
    (directory / "conditions.json").write_text(json.dumps(conditions))
    lines = ["file,category,colour,pattern,sku" if patterns else "file,category,colour,sku"]
    for i in range(GOOD_ROWS):
        category, colour, pattern = i % 3, (i // 3) % 2, (i // 2) % len(PATTERNS)
        red, green, blue = CONDITIONS["colours"][colour]["rgb"]
        photo = product_photo(category, (red, green, blue), size, seed=i)
        (with_pattern(photo, pattern) if patterns else photo).save(directory / f"good_{i:02d}.png")
        slug = CONDITIONS["categories"][category]["slug"]
        attributes = f"good_{i:02d}.png,{slug},{CONDITIONS['colours'][colour]['name']}"
        lines.append(
            f"{attributes},{PATTERNS[pattern]['name']},SKU-{i}" if patterns else f"{attributes},SKU-{i}"
        )
    (directory / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    product_photo(1, (0, 128, 128), 16, seed=99).save(directory / "tiny.png")
    product_photo(0, (255, 127, 80), size, seed=98).save(directory / "other.png")
    product_photo(2, (0, 128, 128), size, seed=97).save(directory / "hat.png")
    if patterns:
        lines += [f"{row},solid,SKU-BAD" for row in BAD_ROWS.values()]
        product_photo(2, (255, 127, 80), size, seed=96).save(directory / "plaid.png")
        lines.append(f"{BAD_PATTERN_ROW[1]},SKU-BAD")
    else:
        lines += [f"{row},SKU-BAD" for row in BAD_ROWS.values()]
    path = directory / "attributes.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
