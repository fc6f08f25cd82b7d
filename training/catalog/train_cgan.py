"""Train the product cGAN on a checked catalog, on one process or many (DDP).

The recipe is the Fashion-MNIST one (training/cgan/train.py: hinge loss, TTUR, EMA generator)
at the catalog's resolution and vocabulary sizes, with the EMA decay warmed up (``ema_decay``).
Every random draw of an epoch comes from generators seeded by (seed, epoch, rank): the data
order from ``DistributedSampler`` and the noise from a per-rank ``torch.Generator``. A run
resumed from its last checkpoint (saved at the end of each epoch) therefore takes exactly the
steps the uninterrupted run would have.

Rank 0 writes the per-epoch sample grid (rows: categories, columns: colours), the metrics and
the checkpoint; the others wait for it at the end of each epoch.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from serving_contract.manifest import Conditions
from training import checkpoints
from training.catalog.dataset import CatalogImages
from training.cgan.model import (
    LATENT_DIM,
    Discriminator,
    Generator,
    discriminator_hinge_loss,
    generator_hinge_loss,
)
from training.cgan.train import update_ema
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
    sizes = {"num_categories": len(conditions.categories), "num_colours": len(conditions.colours)}
    generator = Generator(config.generator_width, resolution=config.resolution, **sizes)
    discriminator = Discriminator(config.discriminator_width, resolution=config.resolution, **sizes)
    return channels_last(generator), channels_last(discriminator)


@torch.no_grad()
def sample_sheet(generator: Generator, conditions: Conditions, device: torch.device) -> np.ndarray:
    """One image per (category, colour), rows = categories, as uint8 HWC."""
    generator.eval()
    categories, colours = len(conditions.categories), len(conditions.colours)
    category = torch.arange(categories).repeat_interleave(colours)
    colour = torch.arange(colours).repeat(categories)
    z = torch.randn(len(category), LATENT_DIM, generator=torch.Generator().manual_seed(GRID_SEED))
    images = generator(z.to(device), category.to(device), colour.to(device)).cpu().numpy()
    generator.train()
    return to_uint8_hwc(images)


def save_sheet(path: Path, sheet: np.ndarray, conditions: Conditions) -> None:
    save_grid(
        path,
        sheet,
        len(conditions.colours),
        scale=2 if sheet.shape[1] <= 32 else 1,
        row_labels=list(conditions.category_slugs()),
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
    generator, discriminator = generator.to(run.device), discriminator.to(run.device)
    ema = copy.deepcopy(generator).eval()
    opt_g = torch.optim.Adam(generator.parameters(), config.lr_generator, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), config.lr_discriminator, betas=(0.0, 0.9))
    start_epoch = 0
    state = checkpoints.load(run_dir)
    if state is not None:
        _check_resumable(state, config, conditions, provenance)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        ema.load_state_dict(state["ema"])
        opt_g.load_state_dict(state["opt_generator"])
        opt_d.load_state_dict(state["opt_discriminator"])
        start_epoch = state["epoch"]
    g_train: torch.nn.Module = generator
    d_train: torch.nn.Module = discriminator
    if run.enabled:  # averages gradients over processes; parameters start equal (broadcast by rank 0)
        g_train, d_train = DistributedDataParallel(generator), DistributedDataParallel(discriminator)
    images = torch.from_numpy(to_unit_range(data.images))
    categories, colours = torch.from_numpy(data.categories), torch.from_numpy(data.colours)
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
            order = torch.tensor(list(sampler))
            noise = torch.Generator().manual_seed((config.seed * 1_000_003 + epoch) * 1009 + run.rank)
            totals = torch.zeros(4)
            task = progress.add_task(f"epoch {epoch + 1}", total=steps, status="")
            for step in range(steps):
                index = order[step * batch : (step + 1) * batch]
                real = images[index].to(run.device).contiguous(memory_format=torch.channels_last)
                category, colour = categories[index].to(run.device), colours[index].to(run.device)
                z_d = torch.randn(len(index), LATENT_DIM, generator=noise).to(run.device)
                z_g = torch.randn(len(index), LATENT_DIM, generator=noise).to(run.device)
                with torch.no_grad():
                    fake = g_train(z_d, category, colour)
                # one discriminator call for real and fake: one DDP forward per backward
                scores = d_train(torch.cat([real, fake]), category.repeat(2), colour.repeat(2))
                d_real, d_fake = scores[: len(index)], scores[len(index) :]
                loss_d = discriminator_hinge_loss(d_real, d_fake)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()

                loss_g = generator_hinge_loss(d_train(g_train(z_g, category, colour), category, colour))
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                update_ema(ema, generator, ema_decay(config.ema_decay, epoch * steps + step))
                totals += torch.tensor(
                    [loss_d.item(), loss_g.item(), d_real.mean().item(), d_fake.mean().item()]
                )
                progress.update(
                    task, completed=step + 1, status=f"D {loss_d.item():.3f} G {loss_g.item():.3f}"
                )
            progress.remove_task(task)
            mean = run.mean(totals / steps).tolist()
            if run.main:
                save_sheet(
                    run_dir / "samples" / f"epoch_{epoch + 1:03d}.png",
                    sample_sheet(ema, conditions, run.device),
                    conditions,
                )
                checkpoints.save(
                    run_dir,
                    {
                        "epoch": epoch + 1,
                        "kind": "catalog_cgan",
                        "config": asdict(config),
                        "conditions": conditions.model_dump(mode="json"),
                        "provenance": provenance,
                        "world_size": run.world_size,
                        "generator": generator.state_dict(),
                        "discriminator": discriminator.state_dict(),
                        "ema": ema.state_dict(),
                        "opt_generator": opt_g.state_dict(),
                        "opt_discriminator": opt_d.state_dict(),
                    },
                )
                seconds = time.perf_counter() - started
                log.append(
                    {
                        "epoch": epoch + 1,
                        "loss_d": mean[0],
                        "loss_g": mean[1],
                        "d_real": mean[2],
                        "d_fake": mean[3],
                        "seconds": seconds,
                    }
                )
                progress.console.print(
                    f"cGAN epoch {epoch + 1}/{config.epochs}: D {mean[0]:.3f} G {mean[1]:.3f} "
                    f"D(real) {mean[2]:.2f} D(fake) {mean[3]:.2f} ({seconds:.0f} s)"
                )
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
