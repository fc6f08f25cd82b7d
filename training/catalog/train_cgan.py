"""Train the product cGAN on a checked catalog, on one process or many (DDP).

The recipe is the Fashion-MNIST one (training/cgan/adversarial.py: hinge loss, TTUR, EMA generator)
at the catalog's resolution and vocabulary sizes, with the EMA decay warmed up (``ema_decay``).
Every random draw of an epoch comes from generators seeded by (seed, epoch, rank): the data
order from ``DistributedSampler`` and the noise from a per-rank ``torch.Generator``. A run
resumed from its last checkpoint (saved at the end of each epoch) therefore takes exactly the
steps the uninterrupted run would have.

A catalog whose ``conditions.json`` lists patterns trains the pattern condition too: the nets
get one more embedding (``num_patterns``), every step passes each row's pattern, and the grid has
a row per (category, pattern). A catalog without patterns builds and trains the colour-only
model exactly as before.

Rank 0 writes the per-epoch sample grid (rows: categories, or categories x patterns; columns:
colours), the metrics and the checkpoint; the others wait for it at the end of each epoch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from serving_contract.manifest import Conditions
from training import checkpoints
from training.catalog.dataset import CatalogImages
from training.cgan.adversarial import Adversaries, Samples, report_epoch, train_epoch
from training.cgan.model import LATENT_DIM, Discriminator, Generator
from training.data.products import to_unit_range
from training.distributed import Distributed
from training.grids import save_grid, to_uint8_hwc
from training.layout import channels_last
from training.progress import MetricsLog, progress_bar

#: the noise seed of every sample grid, so grids of successive epochs compare like for like
GRID_SEED = 1234


@dataclass(frozen=True)
class CatalogCganConfig:
    resolution: int = 32
    epochs: int = 20
    batch_size: int = 64  #: per process: a DDP run of N processes takes N x this per step
    generator_width: int = 256
    discriminator_width: int = 32
    lr_generator: float = 1e-4
    lr_discriminator: float = 4e-4
    ema_decay: float = 0.999
    seed: int = 0
    steps_per_epoch: int | None = None  #: cap the steps of an epoch (smoke runs)


def build(config: CatalogCganConfig, conditions: Conditions) -> tuple[Generator, Discriminator]:
    sizes = {
        "num_categories": len(conditions.categories),
        "num_colours": len(conditions.colours),
        "num_patterns": len(conditions.patterns),  # 0: the colour-only model
    }
    generator = Generator(config.generator_width, resolution=config.resolution, **sizes)
    discriminator = Discriminator(config.discriminator_width, resolution=config.resolution, **sizes)
    return channels_last(generator), channels_last(discriminator)


@torch.no_grad()
def sample_sheet(generator: Generator, conditions: Conditions, device: torch.device) -> np.ndarray:
    """One image per (category[, pattern], colour) as uint8 HWC: a row per category, or per
    (category, pattern) when the catalog lists patterns; a column per colour."""
    generator.eval()
    categories, colours = len(conditions.categories), len(conditions.colours)
    rows = categories * max(1, len(conditions.patterns))
    category = torch.arange(categories).repeat_interleave(rows // categories * colours)
    colour = torch.arange(colours).repeat(rows)
    pattern = None
    if conditions.patterns:
        pattern = torch.arange(len(conditions.patterns)).repeat_interleave(colours).repeat(categories)
        pattern = pattern.to(device)
    z = torch.randn(len(category), LATENT_DIM, generator=torch.Generator().manual_seed(GRID_SEED))
    images = generator(z.to(device), category.to(device), colour.to(device), pattern).cpu().numpy()
    generator.train()
    return to_uint8_hwc(images)


def sheet_rows(conditions: Conditions) -> list[str]:
    """The grid's row labels: the category slugs, or ``slug pattern`` for each pair."""
    slugs = conditions.category_slugs()
    if not conditions.patterns:
        return list(slugs)
    return [f"{slug} {pattern}" for slug in slugs for pattern in conditions.pattern_names()]


def save_sheet(path: Path, sheet: np.ndarray, conditions: Conditions) -> None:
    save_grid(
        path,
        sheet,
        len(conditions.colours),
        scale=2 if sheet.shape[1] <= 32 else 1,
        row_labels=sheet_rows(conditions),
        column_labels=list(conditions.colour_names()),
    )


def ema_decay(target: float, step: int) -> float:
    """``target``, warmed up as ``(1 + step) / (10 + step)`` (Tan & Le's EfficientNet schedule):
    a small catalog takes few steps, and at 0.999 from the first one the exported EMA weights
    would still be mostly the random initialisation after a few hundred."""
    return min(target, (1.0 + step) / (10.0 + step))


def train_catalog_cgan(
    run_dir: Path,
    data: CatalogImages,
    conditions: Conditions,
    config: CatalogCganConfig,
    *,
    provenance: dict[str, Any],
    run: Distributed | None = None,
) -> Path:
    """Train (or resume) into ``run_dir``; returns the checkpoint path.

    ``provenance`` (data set, hash, skipped rows, command) is stored in the checkpoint for the
    export's manifest and model card; a resume refuses a checkpoint of other data.
    """
    run = run or Distributed()
    checkpoints.seed_everything(config.seed)
    generator, discriminator = build(config, conditions)
    nets = Adversaries.create(
        generator.to(run.device),
        discriminator.to(run.device),
        lr_generator=config.lr_generator,
        lr_discriminator=config.lr_discriminator,
    )
    start_epoch = 0
    state = checkpoints.load(run_dir)
    if state is not None:
        _check_resumable(state, config, conditions, provenance)
        start_epoch = nets.restore(state)
    if run.enabled:  # parameters start equal: DDP broadcasts rank 0's
        nets.distribute()
    samples = Samples(
        torch.from_numpy(to_unit_range(data.images)),
        torch.from_numpy(data.categories),
        torch.from_numpy(data.colours),
        None if data.patterns is None else torch.from_numpy(data.patterns),
    )
    indexes: Any = range(len(data))  # a Dataset is any sized sequence; the sampler draws indexes
    sampler: DistributedSampler[int] = DistributedSampler(
        indexes, num_replicas=run.world_size, rank=run.rank, shuffle=True, seed=config.seed
    )
    batch = min(config.batch_size, len(sampler))
    steps = max(1, len(sampler) // batch)
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    log = MetricsLog(run_dir)
    with progress_bar(disable=not run.main) as progress:
        epochs = progress.add_task("cGAN epochs", total=config.epochs, completed=start_epoch, status="")
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            epoch_mean = train_epoch(
                nets,
                samples,
                torch.tensor(list(sampler)),
                epoch,
                batch_size=batch,
                steps=steps,
                ema_decay=lambda step: ema_decay(config.ema_decay, step),
                progress=progress,
                noise=torch.Generator().manual_seed((config.seed * 1_000_003 + epoch) * 1009 + run.rank),
                device=run.device,
                one_discriminator_call=True,
            )
            mean = run.mean(epoch_mean).tolist()  # over every process
            if run.main:
                save_sheet(
                    run_dir / "samples" / f"epoch_{epoch + 1:03d}.png",
                    sample_sheet(nets.ema, conditions, run.device),
                    conditions,
                )
                about = {
                    "kind": "catalog_cgan",
                    "config": asdict(config),
                    "conditions": conditions.model_dump(mode="json"),
                    "provenance": provenance,
                    "world_size": run.world_size,
                }
                checkpoints.save(run_dir, nets.checkpoint(epoch + 1, **about))
                report_epoch(log, progress, epoch, config.epochs, mean, time.perf_counter() - started)
            run.barrier()
            progress.update(epochs, completed=epoch + 1, status=f"D {mean[0]:.3f} G {mean[1]:.3f}")
    return run_dir / checkpoints.CHECKPOINT_NAME


def _check_resumable(
    state: dict[str, Any], config: CatalogCganConfig, conditions: Conditions, provenance: dict[str, Any]
) -> None:
    """A checkpoint continues only the same run: same kind, model settings, vocabularies, data."""
    if state.get("kind") != "catalog_cgan":
        raise ValueError(
            "the run directory holds a checkpoint of another kind of run: choose a new --run-dir"
        )
    saved = {k: v for k, v in state["config"].items() if k not in ("epochs", "steps_per_epoch")}
    asked = {k: v for k, v in asdict(config).items() if k not in ("epochs", "steps_per_epoch")}
    changed = sorted(k for k in asked if saved.get(k) != asked[k])
    if changed:
        raise ValueError(f"cannot resume: settings changed since the checkpoint: {', '.join(changed)}")
    if Conditions.model_validate(state["conditions"]) != conditions:
        raise ValueError("cannot resume: the catalog's conditions changed since the checkpoint")
    if state["provenance"].get("catalog_sha256") != provenance.get("catalog_sha256"):
        raise ValueError("cannot resume: the catalog's rows or images changed since the checkpoint")
