"""Product taxonomy: the ten Fashion-MNIST classes under catalog-style names.

The index of a category is its class label in Fashion-MNIST and its condition index in both
models; never reorder this tuple, add new categories at the end with a new model version.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    index: int
    slug: str  #: stable identifier used in requests, e.g. ``"t_shirt"``
    label: str  #: the Fashion-MNIST class name
    department: str  #: coarse catalog grouping
    wearable: bool  #: can be tried on by the try-on model


CATEGORIES: tuple[Category, ...] = (
    Category(0, "t_shirt", "T-shirt/top", "tops", True),
    Category(1, "trouser", "Trouser", "bottoms", True),
    Category(2, "pullover", "Pullover", "tops", True),
    Category(3, "dress", "Dress", "dresses", True),
    Category(4, "coat", "Coat", "outerwear", True),
    Category(5, "sandal", "Sandal", "footwear", False),
    Category(6, "shirt", "Shirt", "tops", True),
    Category(7, "sneaker", "Sneaker", "footwear", False),
    Category(8, "bag", "Bag", "accessories", False),
    Category(9, "ankle_boot", "Ankle boot", "footwear", False),
)

#: number of categories the models are conditioned on
NUM_CATEGORIES = len(CATEGORIES)

_BY_SLUG = {c.slug: c for c in CATEGORIES}


def category_by_slug(slug: str) -> Category:
    """Look up a category by slug; raises ``KeyError`` naming the known slugs."""
    try:
        return _BY_SLUG[slug]
    except KeyError:
        known = ", ".join(_BY_SLUG)
        raise KeyError(f"unknown category {slug!r}; known: {known}") from None


def wearable_categories() -> tuple[Category, ...]:
    """Categories the try-on model dresses a body with (apparel, not shoes or bags)."""
    return tuple(c for c in CATEGORIES if c.wearable)
