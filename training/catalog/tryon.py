"""The try-on cVAE's garments from a catalog: its wearable products, rendered on sampled bodies.

The renderer (training/data/tryon_render.py) knows how to dress a body in the committed wearable
categories (a T-shirt's box, a dress's length, sleeves). A catalog category is drawn as the
committed category of the same slug, or the one ``fits_like`` maps it to (``tee=t_shirt``), and
the cVAE is conditioned on that template category: its ``CATEGORY`` input keeps the committed
taxonomy. Rows are split by line number, one in ten held out, so the held-out PSNR is measured
on garments the model did not train on.
"""

from __future__ import annotations

import numpy as np

from serving_contract.sizing import NUM_SIZES
from serving_contract.taxonomy import CATEGORIES
from serving_contract.tensors import PRODUCT_IMAGE_SIZE
from training.catalog.images import load_training_image
from training.catalog.validate import CatalogCheck, CatalogError, CatalogRow
from training.cvae.dataset import TryOnExamples
from training.data.bodies import sample_measurements
from training.data.tryon_render import render_batch

#: one row in this many (by CSV line) is held out for the per-epoch PSNR
HELD_OUT_EVERY = 10


def templates(check: CatalogCheck, fits_like: dict[str, str]) -> dict[int, int]:
    """Catalog category index -> the committed wearable category it is drawn as."""
    wearable = {c.slug: c.index for c in CATEGORIES if c.wearable}
    known = {c.slug for c in check.conditions.categories}
    unknown = sorted(set(fits_like) - known)
    if unknown:
        raise CatalogError(f"--fits-like names categories the catalog lacks: {', '.join(unknown)}")
    mapping, unmapped = {}, []
    for category in check.conditions.categories:
        if not category.wearable:
            continue
        template = fits_like.get(category.slug, category.slug)
        if template not in wearable:
            unmapped.append(category.slug)
            continue
        mapping[category.index] = wearable[template]
    if unmapped:
        raise CatalogError(
            f"wearable categories {', '.join(unmapped)} have no try-on shape: map each with "
            f"--fits-like SLUG=TEMPLATE, TEMPLATE one of {', '.join(wearable)}"
        )
    if not mapping:
        raise CatalogError("the catalog has no wearable category: nothing to try on")
    return mapping


def tryon_examples(
    check: CatalogCheck, rows: list[CatalogRow], mapping: dict[int, int], count: int, seed: int
) -> TryOnExamples:
    """``count`` renders of ``rows``' garments (drawn with replacement) on bodies from ``seed``."""
    rng = np.random.default_rng(seed)
    garments = np.stack([load_training_image(check.directory / r.file, PRODUCT_IMAGE_SIZE) for r in rows])
    chosen = rng.choice(len(rows), size=count, replace=True)
    categories = np.array([mapping[rows[i].category] for i in chosen], np.int64)
    measurements = sample_measurements(count, seed + 2)
    sizes = rng.integers(0, NUM_SIZES, size=count)
    images = render_batch(measurements, garments[chosen], categories, sizes)
    return TryOnExamples(measurements.astype(np.float32), sizes, categories, garments[chosen], images)


def split_rows(check: CatalogCheck, mapping: dict[int, int]) -> tuple[list[CatalogRow], list[CatalogRow]]:
    """(train, held out) rows of wearable categories; both get every row if there are under 10."""
    rows = [r for r in check.rows if r.category in mapping]
    if not rows:
        raise CatalogError("no valid rows of a wearable category")
    held_out = [r for r in rows if r.line % HELD_OUT_EVERY == 0]
    train = [r for r in rows if r.line % HELD_OUT_EVERY != 0]
    return (train, held_out) if train and held_out else (rows, rows)
