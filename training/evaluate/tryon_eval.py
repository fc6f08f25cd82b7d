"""Evaluation of the try-on cVAE against the renderer's ground truth on held-out examples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving_contract.sizing import NUM_SIZES, SIZE_CHART
from training.cvae import dataset
from training.cvae.model import LATENT_DIM
from training.data.tryon_render import (
    PX_PER_CM,
    ambiguous_landmarks,
    landmark_rows,
    measure_widths,
    render_batch,
)
from training.evaluate.metrics import ssim_psnr
from training.evaluate.served import ServedTryOnModel
from training.grids import save_grid

#: width keys that describe the body's outline (the 1.5 px target applies to these)
SILHOUETTE_KEYS = ("silhouette_chest", "silhouette_waist", "silhouette_hips")


@dataclass
class TryOnReport:
    samples: int
    ssim_mean: float
    ssim_p10: float
    psnr_mean: float
    width_mae_px: dict[str, float]
    width_mae_cm: dict[str, float]
    within_1_5_px: dict[str, float]
    silhouette_mae_px: float
    skipped_ambiguous_rows: float  #: share of (image, landmark) readings skipped


def width_table(images: np.ndarray, measurements: np.ndarray) -> dict[str, np.ndarray]:
    widths = [measure_widths(image, landmark_rows(m)) for image, m in zip(images, measurements, strict=True)]
    return {key: np.array([w[key] for w in widths]) for key in widths[0]}


def readable_rows(truth: np.ndarray, measurements: np.ndarray) -> dict[str, np.ndarray]:
    """Per width key, which images have a landmark row the width reader can read robustly.

    Rows where a sleeve or arm nearly touches the body in the renderer's own image
    (``ambiguous_landmarks``, about 2% of them) would measure the reader, not the model.
    """
    flagged = [
        set(ambiguous_landmarks(t, landmark_rows(m))) for t, m in zip(truth, measurements, strict=True)
    ]
    return {
        f"{kind}_{landmark}": np.array([landmark not in f for f in flagged])
        for kind in ("silhouette", "garment")
        for landmark in ("chest", "waist", "hips")
    }


def evaluate_tryon(
    repository: Path, out_dir: Path, *, samples: int = 1000, seed: int = 20_000
) -> TryOnReport:
    held_out = dataset.build("test", samples, seed)
    model = ServedTryOnModel(repository, LATENT_DIM)
    seeds = np.arange(len(held_out))
    generated = model(held_out.measurements, held_out.sizes, held_out.categories, held_out.garments, seeds)
    ssim, psnr = ssim_psnr(generated, held_out.images)
    truth_widths = width_table(held_out.images, held_out.measurements)
    generated_widths = width_table(generated, held_out.measurements)
    readable = readable_rows(held_out.images, held_out.measurements)
    errors = {k: np.abs(generated_widths[k] - truth_widths[k])[readable[k]] for k in truth_widths}
    report = TryOnReport(
        samples=len(held_out),
        ssim_mean=float(ssim.mean()),
        ssim_p10=float(np.percentile(ssim, 10)),
        psnr_mean=float(psnr.mean()),
        width_mae_px={k: float(v.mean()) for k, v in errors.items()},
        width_mae_cm={k: float(v.mean() / PX_PER_CM) for k, v in errors.items()},
        within_1_5_px={k: float((v <= 1.5).mean()) for k, v in errors.items()},
        silhouette_mae_px=float(np.mean([errors[k].mean() for k in SILHOUETTE_KEYS])),
        skipped_ambiguous_rows=float(1.0 - np.mean([r.mean() for r in readable.values()])),
    )
    write_tryon_figures(model, held_out, generated, ssim, errors, out_dir)
    return report


def body_sweep(steps: int) -> np.ndarray:
    """Measurements from a small, light body to a tall, heavy one (height, weight, chest, waist, hips)."""
    small = np.array([152.0, 48.0, 80.0, 62.0, 86.0])
    large = np.array([198.0, 125.0, 128.0, 120.0, 132.0])
    return np.linspace(small, large, steps).astype(np.float32)


def write_tryon_figures(
    model: ServedTryOnModel,
    held_out: dataset.TryOnExamples,
    generated: np.ndarray,
    ssim: np.ndarray,
    errors: dict[str, np.ndarray],
    out_dir: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bodies = body_sweep(8)
    for example in range(2):
        rows = []
        for size in range(NUM_SIZES):
            sizes = np.full(len(bodies), size)
            categories = np.full(len(bodies), held_out.categories[example])
            garments = np.repeat(held_out.garments[example : example + 1], len(bodies), axis=0)
            rows.append(model(bodies, sizes, categories, garments, np.zeros(len(bodies), np.int64)))
            rows.append(render_batch(bodies, garments, categories, sizes))
        save_grid(
            out_dir / f"tryon_size_by_body_{example + 1}.png",
            np.concatenate(rows),
            len(bodies),
            scale=2,
            row_labels=[f"{s.label} {kind}" for s in SIZE_CHART for kind in ("model", "truth")],
        )
    pairs = np.stack([generated[:16], held_out.images[:16]], axis=1).reshape(-1, *generated.shape[1:])
    save_grid(out_dir / "tryon_generated_vs_truth.png", pairs, 8, scale=2)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].hist(ssim, bins=40, color="steelblue")
    axes[0].axvline(0.85, color="red", linestyle="--", label="target 0.85")
    axes[0].set_title(f"SSIM on held-out examples (mean {ssim.mean():.3f})")
    axes[0].legend()
    keys = list(errors)
    axes[1].boxplot([errors[k] for k in keys], showfliers=False)
    axes[1].set_xticks(range(1, len(keys) + 1), keys, rotation=40, ha="right")
    axes[1].axhline(1.5, color="red", linestyle="--", label="target 1.5 px")
    axes[1].set_title("width error, generated vs renderer (px)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "tryon_metrics.png", dpi=90)
    plt.close(fig)
