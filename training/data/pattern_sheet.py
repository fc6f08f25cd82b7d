"""Contact sheet of the pattern texturing, for people to judge what reads at 32 px.

``python -m training.data.pattern_sheet`` writes ``docs/evaluation/patterns.png``: one row per
category (its first test image), one column per pattern, each pattern in two colours, a light
and a dark one, so both ink rules (darker ink, lighter ink) show on every category.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving_contract.palette import colour_by_name
from serving_contract.patterns import PATTERNS
from serving_contract.taxonomy import CATEGORIES
from training.data.fashion_mnist import load, pad_to
from training.data.patterns import texture
from training.grids import save_grid

#: where the sheet goes (the repository's docs/evaluation)
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "evaluation" / "patterns.png"

#: per category row, a light colour and a dark one (cycled)
LIGHT_COLOURS = ("red", "yellow", "green", "blue", "pink", "orange", "grey", "white")
DARK_COLOURS = ("navy", "black", "brown", "purple")


def sheet_tiles() -> np.ndarray:
    """``[10 * 12, 32, 32, 3]``: categories by (pattern x {light, dark} colour)."""
    data = load("test")
    tiles = []
    for category in CATEGORIES:
        gray = pad_to(data.images[np.flatnonzero(data.labels == category.index)[:1]], 32)[0]
        light = colour_by_name(LIGHT_COLOURS[category.index % len(LIGHT_COLOURS)])
        dark = colour_by_name(DARK_COLOURS[category.index % len(DARK_COLOURS)])
        for pattern in PATTERNS:
            tiles += [texture(gray, light, pattern), texture(gray, dark, pattern)]
    return np.stack(tiles)


def write_sheet(path: Path = DEFAULT_PATH) -> Path:
    columns = [name for p in PATTERNS for name in (p.name, "")]
    rows = [c.slug for c in CATEGORIES]
    save_grid(path, sheet_tiles(), 2 * len(PATTERNS), scale=3, row_labels=rows, column_labels=columns)
    return path


if __name__ == "__main__":
    print(write_sheet())
