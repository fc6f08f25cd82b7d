"""Train the product cGAN on colourised Fashion-MNIST.

Each epoch recolours every training image with fresh seeded colours (and, with
``CganConfig.patterns``, fresh seeded patterns: ``training/cgan/patterns.py``), runs one discriminator
and one generator step per batch (TTUR: the discriminator learns 4x faster), keeps an
exponential moving average of the generator (the weights that get exported), writes a
category x colour sample grid, appends the epoch's metrics, and checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from serving_contract.palette import NUM_COLOURS, PALETTE
from serving_contract.patterns import NUM_PATTERNS
from serving_contract.taxonomy import CATEGORIES, NUM_CATEGORIES
from training import checkpoints
from training.cgan.adversarial import Adversaries, Samples, report_epoch, train_epoch
from training.cgan.model import LATENT_DIM, Discriminator, Generator
from training.cgan.patterns import epoch_data, save_pattern_sheet
from training.data import fashion_mnist
from training.data.products import to_unit_range
from training.grids import save_grid, to_uint8_hwc
from training.layout import channels_last
from training.progress import MetricsLog, progress_bar


@dataclass(frozen=True)
class CganConfig:
    epochs: int = 12
    batch_size: int = 64
    generator_width: int = 256
    discriminator_width: int = 32
    lr_generator: float = 1e-4
    lr_discriminator: float = 4e-4
    ema_decay: float = 0.999
    seed: int = 0
    limit: int | None = None  #: train on the first N images only (smoke tests)
    patterns: bool = False  #: condition on serving_contract.patterns too (textured data)


def build(config: CganConfig) -> tuple[Generator, Discriminator]:
    num_patterns = NUM_PATTERNS if config.patterns else 0
    generator = channels_last(Generator(config.generator_width, num_patterns=num_patterns))
    discriminator = channels_last(Discriminator(config.discriminator_width, num_patterns=num_patterns))
    return generator, discriminator


@torch.no_grad()
def sample_sheet(generator: Generator, seed: int = 1234) -> np.ndarray:
    """One image per (category, colour), rows = categories: ``[120, 32, 32, 3]`` uint8
    (plain fabric for a model with patterns)."""
    generator.eval()
    category = torch.arange(NUM_CATEGORIES).repeat_interleave(NUM_COLOURS)
    colour = torch.arange(NUM_COLOURS).repeat(NUM_CATEGORIES)
    pattern = None if generator.pattern is None else torch.zeros_like(category)
    z = torch.randn(len(category), LATENT_DIM, generator=torch.Generator().manual_seed(seed))
    return to_uint8_hwc(generator(z, category, colour, pattern).numpy())


def train(run_dir: Path, config: CganConfig) -> Path:
    """Train (or resume) into ``run_dir``; returns the checkpoint path."""
    checkpoints.seed_everything(config.seed)
    data = fashion_mnist.load("train")
    if config.limit:
        data = fashion_mnist.FashionMNIST(data.images[: config.limit], data.labels[: config.limit])
    generator, discriminator = build(config)
    nets = Adversaries.create(
        generator, discriminator, lr_generator=config.lr_generator, lr_discriminator=config.lr_discriminator
    )
    state = checkpoints.load(run_dir)
    start_epoch = 0 if state is None else nets.restore(state)
    log = MetricsLog(run_dir)
    labels = torch.from_numpy(data.labels)
    steps = len(labels) // config.batch_size
    with progress_bar() as progress:
        epochs = progress.add_task("cGAN epochs", total=config.epochs, completed=start_epoch, status="")
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            images, colours, patterns = epoch_data(data, config.seed * 1000 + epoch, patterns=config.patterns)
            samples = Samples(
                torch.from_numpy(to_unit_range(images)),
                labels,
                torch.from_numpy(colours),
                None if patterns is None else torch.from_numpy(patterns),
            )
            mean = train_epoch(
                nets,
                samples,
                torch.randperm(len(labels)),
                epoch,
                batch_size=config.batch_size,
                steps=steps,
                ema_decay=lambda _: config.ema_decay,
                progress=progress,
                sum_dtype=torch.float64,
            ).tolist()
            if config.patterns:
                save_pattern_sheet(run_dir / "samples" / f"patterns_epoch_{epoch + 1:03d}.png", nets.ema)
            save_grid(
                run_dir / "samples" / f"epoch_{epoch + 1:03d}.png",
                sample_sheet(nets.ema),
                NUM_COLOURS,
                row_labels=[c.slug for c in CATEGORIES],
                column_labels=[c.name for c in PALETTE],
            )
            checkpoints.save(run_dir, nets.checkpoint(epoch + 1, config=asdict(config)))
            report_epoch(log, progress, epoch, config.epochs, mean, time.perf_counter() - started)
            progress.update(epochs, completed=epoch + 1, status=f"D {mean[0]:.3f} G {mean[1]:.3f}")
    return run_dir / checkpoints.CHECKPOINT_NAME
