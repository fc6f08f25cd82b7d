"""Image grids (contact sheets) written as PNG for people to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def to_uint8_hwc(images: np.ndarray) -> np.ndarray:
    """``[N, 3, H, W]`` float in [-1, 1] -> ``[N, H, W, 3]`` uint8 (the served encoding)."""
    scaled = np.rint((np.clip(images, -1.0, 1.0) + 1.0) * 127.5)
    return scaled.astype(np.uint8).transpose(0, 2, 3, 1)


def grid(
    images: np.ndarray,
    columns: int,
    *,
    scale: int = 2,
    row_labels: list[str] | None = None,
    column_labels: list[str] | None = None,
    gap: int = 2,
) -> Image.Image:
    """Tile ``[N, H, W, 3]`` uint8 images row by row, optionally with row/column captions."""
    count, height, width, _ = images.shape
    rows = -(-count // columns)
    left = 70 if row_labels else 0
    top = 14 if column_labels else 0
    cell_w, cell_h = width * scale + gap, height * scale + gap
    sheet = Image.new("RGB", (left + columns * cell_w, top + rows * cell_h), (200, 200, 200))
    draw = ImageDraw.Draw(sheet)
    for index in range(count):
        tile = Image.fromarray(images[index]).resize(
            (width * scale, height * scale), Image.Resampling.NEAREST
        )
        row, column = divmod(index, columns)
        sheet.paste(tile, (left + column * cell_w, top + row * cell_h))
    for row, label in enumerate(row_labels or []):
        draw.text((2, top + row * cell_h + cell_h // 2 - 5), label, fill=(0, 0, 0))
    for column, label in enumerate(column_labels or []):
        draw.text((left + column * cell_w + 1, 1), label[: max(3, cell_w // 6)], fill=(0, 0, 0))
    return sheet


def save_grid(path: Path, images: np.ndarray, columns: int, **kwargs: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    grid(images, columns, **kwargs).save(path)  # type: ignore[arg-type]
