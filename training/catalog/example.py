"""Write an example catalog folder from Fashion-MNIST's test split, to try the catalog commands
on: ``python -m training.catalog.example runs/example-catalog --per-class 400``.

Five of the ten classes under the shop's own slugs, each image a 32 px PNG in one of four
palette colours (colourised as the committed model's data), with ``conditions.json`` and
``attributes.csv``. Deterministic for a given ``--seed``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image

from serving_contract.palette import colour_by_name
from training.data import fashion_mnist
from training.data.products import product_images

#: (Fashion-MNIST class, slug, label, department, wearable) of the example shop
CATEGORIES = (
    (0, "tee", "T-shirt", "tops", True),
    (1, "trousers", "Trousers", "bottoms", True),
    (3, "dress", "Dress", "dresses", True),
    (7, "trainer", "Trainer", "footwear", False),
    (8, "tote", "Tote bag", "accessories", False),
)

#: palette colours the example shop sells
COLOURS = ("black", "red", "blue", "yellow")


def write_example(directory: Path, per_class: int, seed: int) -> Path:
    """Write the catalog; returns the attributes CSV."""
    data = fashion_mnist.load("test")
    rng = np.random.default_rng(seed)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    conditions = {
        "categories": [
            {"index": i, "slug": slug, "label": label, "department": department, "wearable": wearable}
            for i, (_, slug, label, department, wearable) in enumerate(CATEGORIES)
        ],
        "colours": [
            {"index": i, "name": name, "rgb": list(colour_by_name(name).rgb)}
            for i, name in enumerate(COLOURS)
        ],
    }
    (directory / "conditions.json").write_text(json.dumps(conditions, indent=2) + "\n")
    lines = ["file,category,colour,sku"]
    for source, slug, *_ in CATEGORIES:
        chosen = rng.choice(np.flatnonzero(data.labels == source), size=per_class, replace=False)
        colours = rng.integers(0, len(COLOURS), size=per_class)
        palette = np.array([colour_by_name(COLOURS[c]).index for c in colours])
        images = product_images(fashion_mnist.FashionMNIST(data.images[chosen], data.labels[chosen]), palette)
        for image, colour, index in zip(images, colours, chosen, strict=True):
            name = f"images/{slug}_{index:05d}.png"
            Image.fromarray(image).save(directory / name)
            lines.append(f"{name},{slug},{COLOURS[colour]},FM-{index:05d}")
    path = directory / "attributes.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(
    directory: Path,
    per_class: Annotated[int, typer.Option(help="images per category")] = 400,
    seed: int = 0,
) -> None:
    typer.echo(write_example(directory, per_class, seed))


if __name__ == "__main__":
    typer.run(main)
