"""The cGAN recipe both trainers run: the nets and their optimisers, one epoch of steps, the
checkpoint and the epoch's report.

The Fashion-MNIST trainer (``training/cgan/train.py``) and the catalog trainer
(``training/catalog/train_cgan.py``) differ in their data, their noise source, the EMA decay
schedule and DDP; each passes those in. A step is the same in both: one discriminator step
(hinge loss), one generator step, then the generator's exponential moving average (the weights
that get exported) moves towards the live generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import Progress
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from training.cgan.model import (
    LATENT_DIM,
    Discriminator,
    Generator,
    discriminator_hinge_loss,
    generator_hinge_loss,
)
from training.progress import MetricsLog

#: Adam's betas for both nets: no first-moment momentum (the SNGAN/BigGAN setting)
BETAS = (0.0, 0.9)
#: what an epoch's mean holds, in this order
METRICS = ("loss_d", "loss_g", "d_real", "d_fake")


@dataclass
class Adversaries:
    """The generator, the discriminator, the generator's EMA and both optimisers of one run.

    ``train_generator`` and ``train_discriminator`` are the modules the steps call: the nets
    themselves, or their DDP wrappers after :meth:`distribute`.
    """

    generator: Generator
    discriminator: Discriminator
    ema: Generator
    opt_generator: torch.optim.Adam
    opt_discriminator: torch.optim.Adam
    train_generator: nn.Module
    train_discriminator: nn.Module

    @classmethod
    def create(
        cls,
        generator: Generator,
        discriminator: Discriminator,
        *,
        lr_generator: float,
        lr_discriminator: float,
    ) -> Adversaries:
        """Nets already on their device; the learning rates differ (TTUR: D learns faster)."""
        return cls(
            generator,
            discriminator,
            copy.deepcopy(generator).eval(),
            torch.optim.Adam(generator.parameters(), lr_generator, betas=BETAS),
            torch.optim.Adam(discriminator.parameters(), lr_discriminator, betas=BETAS),
            generator,
            discriminator,
        )

    def restore(self, state: dict[str, Any]) -> int:
        """Load a checkpoint's five states; returns the epoch it ended."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_generator.load_state_dict(state["opt_generator"])
        self.opt_discriminator.load_state_dict(state["opt_discriminator"])
        epoch: int = state["epoch"]
        return epoch

    def distribute(self) -> None:
        """Average gradients over processes; after :meth:`restore`, as DDP broadcasts rank 0's
        parameters when it wraps them."""
        self.train_generator = DistributedDataParallel(self.generator)
        self.train_discriminator = DistributedDataParallel(self.discriminator)

    def checkpoint(self, epoch: int, **about: Any) -> dict[str, Any]:
        """The state :meth:`restore` reads, with the trainer's own entries (``about``) after the epoch."""
        return {
            "epoch": epoch,
            **about,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_generator": self.opt_generator.state_dict(),
            "opt_discriminator": self.opt_discriminator.state_dict(),
        }


@dataclass(frozen=True)
class Samples:
    """An epoch's training tensors: images in ``[-1, 1]`` and their conditions, one row each."""

    images: torch.Tensor
    categories: torch.Tensor
    colours: torch.Tensor
    patterns: torch.Tensor | None = None


@torch.no_grad()
def update_ema(ema: Generator, live: Generator, decay: float) -> None:
    for ema_param, param in zip(ema.parameters(), live.parameters(), strict=True):
        ema_param.lerp_(param, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), live.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def train_epoch(
    nets: Adversaries,
    samples: Samples,
    order: torch.Tensor,
    epoch: int,
    *,
    batch_size: int,
    steps: int,
    ema_decay: Callable[[int], float],
    progress: Progress,
    noise: torch.Generator | None = None,
    device: torch.device | None = None,
    one_discriminator_call: bool = False,
    sum_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Run ``steps`` steps over ``samples`` in ``order``; returns the epoch's mean of :data:`METRICS`.

    ``noise`` draws every latent (``None``: the global generator); ``ema_decay`` maps the run's
    step count to the EMA decay. ``one_discriminator_call`` scores real and fake images in one
    forward (DDP allows one forward per backward), else in two. ``sum_dtype`` is the dtype the
    steps' metrics are summed in.
    """
    device = device or torch.device("cpu")
    generator, discriminator = nets.train_generator, nets.train_discriminator
    nets.generator.train()  # the sample sheets put it in eval mode
    totals = torch.zeros(len(METRICS), dtype=sum_dtype)
    task = progress.add_task(f"epoch {epoch + 1}", total=steps, status="")
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        real = samples.images[index].to(device).contiguous(memory_format=torch.channels_last)
        wanted = [samples.categories[index], samples.colours[index]]
        if samples.patterns is not None:
            wanted.append(samples.patterns[index])
        conditions = [c.to(device) for c in wanted]
        # both latents first: neither step draws from ``noise`` (nor from the global generator)
        z_d = torch.randn(len(index), LATENT_DIM, generator=noise).to(device)
        z_g = torch.randn(len(index), LATENT_DIM, generator=noise).to(device)

        with torch.no_grad():
            fake = generator(z_d, *conditions)
        if one_discriminator_call:
            scores = discriminator(torch.cat([real, fake]), *(c.repeat(2) for c in conditions))
            d_real, d_fake = scores[: len(index)], scores[len(index) :]
        else:
            d_real, d_fake = discriminator(real, *conditions), discriminator(fake, *conditions)
        loss_d = discriminator_hinge_loss(d_real, d_fake)
        _descend(nets.opt_discriminator, loss_d)

        loss_g = generator_hinge_loss(discriminator(generator(z_g, *conditions), *conditions))
        _descend(nets.opt_generator, loss_g)
        update_ema(nets.ema, nets.generator, ema_decay(epoch * steps + step))

        metrics = [loss_d.item(), loss_g.item(), d_real.mean().item(), d_fake.mean().item()]
        totals += torch.tensor(metrics, dtype=sum_dtype)
        mean = (totals / (step + 1)).tolist()
        progress.update(task, completed=step + 1, status=f"D {mean[0]:.3f} G {mean[1]:.3f}")
    progress.remove_task(task)
    return totals / steps


def report_epoch(
    log: MetricsLog, progress: Progress, epoch: int, epochs: int, mean: list[float], seconds: float
) -> None:
    """Append the epoch's metrics row and print its one-line summary."""
    log.append({"epoch": epoch + 1, **dict(zip(METRICS, mean, strict=True)), "seconds": seconds})
    progress.console.print(
        f"cGAN epoch {epoch + 1}/{epochs}: D {mean[0]:.3f} G {mean[1]:.3f} "
        f"D(real) {mean[2]:.2f} D(fake) {mean[3]:.2f} ({seconds:.0f} s)"
    )


def _descend(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
