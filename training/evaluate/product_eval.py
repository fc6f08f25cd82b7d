"""Evaluation of the product cGAN: conditional accuracy, coverage, colour error, Frechet distance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving_contract.palette import NUM_COLOURS, PALETTE
from serving_contract.taxonomy import CATEGORIES, NUM_CATEGORIES
from training.cgan.model import LATENT_DIM
from training.data import fashion_mnist
from training.data.products import product_images, random_colours
from training.evaluate.classifier import Judge, judge_images
from training.evaluate.metrics import colour_errors, colour_reference, frechet_distance
from training.evaluate.served import ServedProductModel
from training.grids import save_grid


@dataclass
class ProductReport:
    samples: int
    judge_test_accuracy: float
    conditional_accuracy: float
    per_category_accuracy: dict[str, float]
    predicted_share: dict[str, float]
    colour_accuracy: float
    median_delta_e: float
    per_colour_delta_e: dict[str, float]
    real_colour_accuracy: float
    fd_generated_vs_test: float
    fd_floor_train_vs_test: float
    fd_ratio: float
    fd_real_blurred: float  #: calibration: real test images blurred by CALIBRATION_BLUR_PX
    per_category_fd: dict[str, float] = field(default_factory=dict)


def evaluate_product(
    repository: Path,
    judge: Judge,
    judge_accuracy: float,
    out_dir: Path,
    *,
    samples: int = 10_000,
    seed: int = 7,
) -> ProductReport:
    test = fashion_mnist.load("test")
    train = fashion_mnist.load("train")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(test.labels), size=min(samples, len(test.labels)), replace=False)
    categories = test.labels[pick]
    colours = random_colours(len(pick), seed)
    real_test = product_images(fashion_mnist.FashionMNIST(test.images[pick], categories), colours)
    train_pick = rng.choice(len(train.labels), size=len(pick), replace=False)
    real_train = product_images(
        fashion_mnist.FashionMNIST(train.images[train_pick], train.labels[train_pick]),
        random_colours(len(pick), seed + 1),
    )

    model = ServedProductModel(repository, LATENT_DIM)
    seeds = rng.integers(0, 2**31 - 1, size=len(pick))
    generated = model(categories, colours, seeds)

    predicted, gen_features = judge_images(judge, generated)
    _, test_features = judge_images(judge, real_test)
    _, train_features = judge_images(judge, real_train)

    reference = colour_reference(real_test, categories, colours)
    delta_e, nearest = colour_errors(generated, categories, colours, reference, NUM_COLOURS)
    _, real_nearest = colour_errors(real_test, categories, colours, reference, NUM_COLOURS)

    per_category_fd = {}
    for c in CATEGORIES:
        chosen = categories == c.index
        per_category_fd[c.slug] = frechet_distance(gen_features[chosen], test_features[chosen])

    _, blurred_features = judge_images(judge, blurred(real_test))
    fd = frechet_distance(gen_features, test_features)
    floor = frechet_distance(train_features, test_features)
    report = ProductReport(
        samples=len(pick),
        judge_test_accuracy=judge_accuracy,
        conditional_accuracy=float((predicted == categories).mean()),
        per_category_accuracy={
            c.slug: float((predicted[categories == c.index] == c.index).mean()) for c in CATEGORIES
        },
        predicted_share={c.slug: float((predicted == c.index).mean()) for c in CATEGORIES},
        colour_accuracy=float((nearest == colours).mean()),
        median_delta_e=float(np.nanmedian(delta_e)),
        per_colour_delta_e={p.name: float(np.nanmedian(delta_e[colours == p.index])) for p in PALETTE},
        real_colour_accuracy=float((real_nearest == colours).mean()),
        fd_generated_vs_test=fd,
        fd_floor_train_vs_test=floor,
        fd_ratio=fd / floor,
        fd_real_blurred=frechet_distance(blurred_features, test_features),
        per_category_fd=per_category_fd,
    )
    write_product_figures(model, report, generated, real_test, out_dir)
    return report


#: Gaussian blur radius (px) of the calibration row: a change a person barely sees at 32x32
CALIBRATION_BLUR_PX = 0.6


def blurred(images: np.ndarray) -> np.ndarray:
    """Real images slightly blurred: shows how much the judge's features weigh fine texture."""
    from PIL import Image, ImageFilter

    blur = ImageFilter.GaussianBlur(CALIBRATION_BLUR_PX)
    return np.stack([np.asarray(Image.fromarray(image).filter(blur)) for image in images])


def write_product_figures(
    model: ServedProductModel, report: ProductReport, generated: np.ndarray, real: np.ndarray, out_dir: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    category = np.arange(NUM_CATEGORIES).repeat(NUM_COLOURS)
    colour = np.tile(np.arange(NUM_COLOURS), NUM_CATEGORIES)
    for variant in range(2):
        sheet = model(category, colour, np.full(len(category), 1000 + variant))
        save_grid(
            out_dir / f"product_contact_sheet_{variant + 1}.png",
            sheet,
            NUM_COLOURS,
            scale=3,
            row_labels=[c.slug for c in CATEGORIES],
            column_labels=[p.name for p in PALETTE],
        )
    save_grid(
        out_dir / "product_generated_vs_real.png", np.concatenate([generated[:40], real[:40]]), 20, scale=2
    )

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    slugs = list(report.per_category_accuracy)
    axes[0].bar(slugs, list(report.per_category_accuracy.values()), color="steelblue")
    axes[0].axhline(0.9, color="red", linestyle="--", label="target 0.90")
    axes[0].set_title(f"conditional accuracy per category (all: {report.conditional_accuracy:.3f})")
    axes[0].tick_params(axis="x", rotation=60)
    axes[0].legend()
    axes[1].bar(slugs, list(report.per_category_fd.values()), color="darkorange")
    axes[1].set_title("judge-feature FD per category")
    axes[1].tick_params(axis="x", rotation=60)
    names = list(report.per_colour_delta_e)
    axes[2].bar(
        names, list(report.per_colour_delta_e.values()), color=[p.hex for p in PALETTE], edgecolor="k"
    )
    axes[2].set_title(f"median colour error ΔE76 per colour (all: {report.median_delta_e:.1f})")
    axes[2].tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(out_dir / "product_metrics.png", dpi=90)
    plt.close(fig)
