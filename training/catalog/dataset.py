"""A checked catalog loaded into memory as training arrays (images at the training resolution),
with each row's pattern when the catalog lists patterns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.catalog.images import load_training_image
from training.catalog.validate import CatalogCheck
from training.progress import progress_bar


@dataclass(frozen=True)
class CatalogImages:
    images: np.ndarray  #: uint8 [N, R, R, 3]
    categories: np.ndarray  #: int64 [N], condition indexes
    colours: np.ndarray  #: int64 [N]
    patterns: np.ndarray | None = None  #: int64 [N] when the catalog lists patterns, else None

    def __len__(self) -> int:
        return len(self.categories)

    def counts(self, values: np.ndarray, size: int) -> list[int]:
        return np.bincount(values, minlength=size).tolist()


def load_images(check: CatalogCheck, resolution: int, *, quiet: bool = False) -> CatalogImages:
    """Every valid row's image, squared and resized to ``resolution`` (Lanczos)."""
    images = np.empty((len(check.rows), resolution, resolution, 3), np.uint8)
    with progress_bar(disable=quiet) as progress:
        task = progress.add_task("loading catalog images", total=len(check.rows), status="")
        for i, row in enumerate(check.rows):
            images[i] = load_training_image(check.directory / row.file, resolution)
            progress.advance(task)
    categories = np.array([r.category for r in check.rows], np.int64)
    colours = np.array([r.colour for r in check.rows], np.int64)
    if not check.conditions.patterns:
        return CatalogImages(images, categories, colours)
    patterns = np.array([r.pattern for r in check.rows], np.int64)  # every valid row has one
    return CatalogImages(images, categories, colours, patterns)
