"""How well the quality gate's colour check (``quality/colour.py``) reads real patterned garments.

Every test garment (or the first ``limit``) is drawn in every palette colour and every pattern
(``training/data/patterns.py``); each image goes through the gate's own check for the colour it
was drawn in, with its pattern (``pass_rate``: the share that passes at the gate's threshold)
and against every palette colour (``nearest_accuracy``: the share whose closest reference is the
colour drawn). The pattern-blind check (the colour-only reference, as before patterns) is
measured on the same images beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quality.colour import colour_checks, reference_lab
from quality.foreground import foreground_mask
from quality.settings import GateSettings
from serving_contract.palette import NUM_COLOURS, PALETTE, srgb_to_lab
from serving_contract.patterns import PATTERNS
from training.data import fashion_mnist
from training.data.patterns import patterned_product_images


def garment_means(images: np.ndarray) -> np.ndarray:
    """Mean CIELAB of each image's product pixels ``[N, 3]``, as the gate's check takes it."""
    masks = foreground_mask(images)
    lab = srgb_to_lab(images.astype(np.float64))
    return (lab * masks[..., None]).sum(axis=(1, 2)) / masks.sum(axis=(1, 2))[:, None]


def cell(images: np.ndarray, colour: int, pattern: str | None, threshold: float) -> dict[str, float]:
    """The check on images of ``colour``, read as ``pattern`` (``None``: pattern-blind)."""
    masks = foreground_mask(images)
    checks = colour_checks(images, masks, colour, max_delta_e=threshold, pattern=pattern)
    references = np.stack([reference_lab(k, pattern) for k in range(NUM_COLOURS)])
    distances = np.linalg.norm(garment_means(images)[:, None] - references[None], axis=-1)
    return {
        "pass_rate": float(np.mean([c.passed for c in checks])),
        "nearest_accuracy": float((distances.argmin(axis=1) == colour).mean()),
        "median_delta_e": float(np.median([c.score for c in checks])),
    }


def evaluate_colour_check(*, limit: int | None = 2000) -> dict[str, Any]:
    """Per pattern x colour: the check with the pattern and pattern-blind, on real test garments."""
    threshold = GateSettings().max_colour_delta_e
    test = fashion_mnist.load("test")
    data = fashion_mnist.FashionMNIST(test.images[:limit], test.labels[:limit])
    n = len(data.labels)
    cells: dict[str, dict[str, Any]] = {}
    for p in PATTERNS:
        cells[p.name] = {}
        for c in PALETTE:
            images = patterned_product_images(data, np.full(n, c.index), np.full(n, p.index))
            cells[p.name][c.name] = {
                "with_pattern": cell(images, c.index, p.name, threshold),
                "pattern_blind": cell(images, c.index, None, threshold),
            }
    return {
        "what": "the gate's colour check (quality/colour.py) on real Fashion-MNIST test garments drawn "
        "in every colour and pattern",
        "garments_per_cell": n,
        "threshold_delta_e": threshold,
        "summary": summarise(cells),
        "cells": cells,
    }


def summarise(cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean and worst cell of each measure, per pattern and overall, for each reading."""
    out: dict[str, Any] = {}
    for reading in ("with_pattern", "pattern_blind"):
        out[reading] = {}
        for measure in ("pass_rate", "nearest_accuracy"):
            per_pattern = {
                pattern: {
                    "mean": float(np.mean([v[reading][measure] for v in row.values()])),
                    "worst": min(((v[reading][measure], colour) for colour, v in row.items())),
                }
                for pattern, row in cells.items()
            }
            values = [v[reading][measure] for row in cells.values() for v in row.values()]
            out[reading][measure] = {
                "all": float(np.mean(values)),
                "worst_cell": float(np.min(values)),
                "per_pattern": per_pattern,
            }
    return out
