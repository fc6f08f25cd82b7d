"""Train the product cGAN on colourised Fashion-MNIST.

Each epoch recolours every training image with fresh seeded colours (and, with
``CganConfig.patterns``, fresh seeded patterns: ``training/cgan/patterns.py``), runs one discriminator
and one generator step per batch (TTUR: the discriminator learns 4x faster), keeps an
exponential moving average of the generator (the weights that get exported), writes a
category x colour sample grid, appends the epoch's metrics, and checkpoints.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from serving_contract.palette import NUM_COLOURS, PALETTE
from serving_contract.patterns import NUM_PATTERNS
from serving_contract.taxonomy import CATEGORIES, NUM_CATEGORIES
from training import checkpoints
from training.cgan.model import (
    LATENT_DIM,
    Discriminator,
    Generator,
    discriminator_hinge_loss,
    generator_hinge_loss,
)
from training.cgan.patterns import epoch_data, save_pattern_sheet
from training.data import fashion_mnist
from training.data.products import to_unit_range
from training.grids import save_grid, to_uint8_hwc
from training.layout import channels_last
from training.progress import MetricsLog, progress_bar

CHANNELS_LAST = torch.channels_last


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


@torch.no_grad()
def update_ema(ema: Generator, live: Generator, decay: float) -> None:
    for ema_param, param in zip(ema.parameters(), live.parameters(), strict=True):
        ema_param.lerp_(param, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), live.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def train(run_dir: Path, config: CganConfig) -> Path:
    """Train (or resume) into ``run_dir``; returns the checkpoint path."""
    checkpoints.seed_everything(config.seed)
    data = fashion_mnist.load("train")
    if config.limit:
        data = fashion_mnist.FashionMNIST(data.images[: config.limit], data.labels[: config.limit])
    generator, discriminator = build(config)
    ema = copy.deepcopy(generator).eval()
    opt_g = torch.optim.Adam(generator.parameters(), config.lr_generator, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), config.lr_discriminator, betas=(0.0, 0.9))
    start_epoch = 0
    state = checkpoints.load(run_dir)
    if state is not None:
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        ema.load_state_dict(state["ema"])
        opt_g.load_state_dict(state["opt_generator"])
        opt_d.load_state_dict(state["opt_discriminator"])
        start_epoch = state["epoch"]
    log = MetricsLog(run_dir)
    labels = torch.from_numpy(data.labels)
    steps = len(labels) // config.batch_size
    with progress_bar() as progress:
        epochs = progress.add_task("cGAN epochs", total=config.epochs, completed=start_epoch, status="")
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            images_np, colours_np, patterns_np = epoch_data(
                data, config.seed * 1000 + epoch, patterns=config.patterns
            )
            images = torch.from_numpy(to_unit_range(images_np))
            colours = torch.from_numpy(colours_np)
            patterns = None if patterns_np is None else torch.from_numpy(patterns_np)
            order = torch.randperm(len(labels))
            totals = np.zeros(4)
            batches = progress.add_task(f"epoch {epoch + 1}", total=steps, status="")
            generator.train()
            for step in range(steps):
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                real = images[index].contiguous(memory_format=CHANNELS_LAST)
                category, colour = labels[index], colours[index]
                pattern = None if patterns is None else patterns[index]
                z = torch.randn(len(index), LATENT_DIM)
                with torch.no_grad():
                    fake = generator(z, category, colour, pattern)
                d_real = discriminator(real, category, colour, pattern)
                d_fake = discriminator(fake, category, colour, pattern)
                loss_d = discriminator_hinge_loss(d_real, d_fake)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()

                fake = generator(torch.randn(len(index), LATENT_DIM), category, colour, pattern)
                loss_g = generator_hinge_loss(discriminator(fake, category, colour, pattern))
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                update_ema(ema, generator, config.ema_decay)

                totals += [loss_d.item(), loss_g.item(), d_real.mean().item(), d_fake.mean().item()]
                if step % 20 == 0:
                    mean = totals / (step + 1)
                    progress.update(batches, completed=step + 1, status=f"D {mean[0]:.3f} G {mean[1]:.3f}")
            progress.remove_task(batches)
            mean = totals / steps
            if config.patterns:
                save_pattern_sheet(run_dir / "samples" / f"patterns_epoch_{epoch + 1:03d}.png", ema)
            save_grid(
                run_dir / "samples" / f"epoch_{epoch + 1:03d}.png",
                sample_sheet(ema),
                NUM_COLOURS,
                row_labels=[c.slug for c in CATEGORIES],
                column_labels=[c.name for c in PALETTE],
            )
            checkpoints.save(
                run_dir,
                {
                    "epoch": epoch + 1,
                    "config": asdict(config),
                    "generator": generator.state_dict(),
                    "discriminator": discriminator.state_dict(),
                    "ema": ema.state_dict(),
                    "opt_generator": opt_g.state_dict(),
                    "opt_discriminator": opt_d.state_dict(),
                },
            )
            log.append(
                {
                    "epoch": epoch + 1,
                    "loss_d": mean[0],
                    "loss_g": mean[1],
                    "d_real": mean[2],
                    "d_fake": mean[3],
                    "seconds": time.perf_counter() - started,
                }
            )
            progress.console.print(
                f"cGAN epoch {epoch + 1}/{config.epochs}: D {mean[0]:.3f} G {mean[1]:.3f} "
                f"D(real) {mean[2]:.2f} D(fake) {mean[3]:.2f} ({time.perf_counter() - started:.0f} s)"
            )
            progress.update(epochs, completed=epoch + 1, status=f"D {mean[0]:.3f} G {mean[1]:.3f}")
    return run_dir / checkpoints.CHECKPOINT_NAME
