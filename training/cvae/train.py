"""Train the try-on cVAE on rendered examples.

Loss: squared error summed over pixels plus a KL term warmed up over the first epoch, Adam
with cosine decay. Each epoch writes a size-by-body sample grid (decoded from the prior, as
served), PSNR on a fixed held-out batch, metrics and a checkpoint.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from serving_contract.sizing import NUM_SIZES
from training import checkpoints
from training.cvae import dataset
from training.cvae.model import LATENT_DIM, TryOnVAE, loss_terms, vector_condition
from training.data.products import to_unit_range
from training.data.tryon_render import render_batch
from training.grids import save_grid, to_uint8_hwc
from training.layout import channels_last
from training.progress import MetricsLog, progress_bar

CHANNELS_LAST = torch.channels_last


@dataclass(frozen=True)
class CvaeConfig:
    epochs: int = 15
    batch_size: int = 64
    train_examples: int = 40_000
    lr: float = 1e-3
    kl_weight: float = 1.0
    seed: int = 0
    data_dir: str = "runs/data"


def tensors(examples: dataset.TryOnExamples, index: np.ndarray | slice) -> tuple[torch.Tensor, ...]:
    """(image, vector condition, garment image) as model-ready tensors for ``index``."""
    image = torch.from_numpy(to_unit_range(examples.images[index])).contiguous(memory_format=CHANNELS_LAST)
    garment = torch.from_numpy(to_unit_range(examples.garments[index])).contiguous(
        memory_format=CHANNELS_LAST
    )
    vector = vector_condition(
        torch.from_numpy(examples.measurements[index]),
        torch.from_numpy(examples.sizes[index]),
        torch.from_numpy(examples.categories[index]),
    )
    return image, vector, garment


@torch.no_grad()
def generate(
    model: TryOnVAE, examples: dataset.TryOnExamples, index: np.ndarray | slice, seed: int
) -> np.ndarray:
    """Decode from the prior (z ~ N(0, I) from ``seed``), exactly as served: uint8 HWC."""
    model.eval()
    _, vector, garment = tensors(examples, index)
    z = torch.randn(len(vector), LATENT_DIM, generator=torch.Generator().manual_seed(seed))
    return to_uint8_hwc(model.generate(z, vector, garment).numpy())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * math.log10(255.0**2 / max(mse, 1e-10))


def size_by_body_sheet(model: TryOnVAE, held_out: dataset.TryOnExamples) -> np.ndarray:
    """Rows: sizes S..XL; columns: 6 held-out bodies light to heavy, generated then rendered."""
    bodies = np.argsort(held_out.measurements[:6, 1])
    rows = []
    for size in range(NUM_SIZES):
        sizes = np.full(len(bodies), size)
        categories = np.full(len(bodies), held_out.categories[0])
        garments = np.repeat(held_out.garments[:1], len(bodies), axis=0)
        truth = render_batch(held_out.measurements[bodies], garments, categories, sizes)
        picked = dataset.TryOnExamples(held_out.measurements[bodies], sizes, categories, garments, truth)
        rows += [generate(model, picked, slice(None), seed=0), truth]
    return np.concatenate(rows)


def train(
    run_dir: Path,
    config: CvaeConfig,
    *,
    examples: dataset.TryOnExamples | None = None,
    held_out: dataset.TryOnExamples | None = None,
) -> Path:
    """Train (or resume) into ``run_dir``; ``examples`` and ``held_out`` default to the
    Fashion-MNIST renders (a catalog run passes renders of its own garments)."""
    checkpoints.seed_everything(config.seed)
    data_dir = Path(config.data_dir)
    if examples is None:
        examples = dataset.cached(data_dir, "train", config.train_examples, seed=config.seed)
    if held_out is None:
        held_out = dataset.cached(data_dir, "test", 512, seed=config.seed + 10_000)
    model = channels_last(TryOnVAE())
    optimiser = torch.optim.Adam(model.parameters(), config.lr)
    steps = len(examples) // config.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs * steps)
    start_epoch = 0
    state = checkpoints.load(run_dir)
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = state["epoch"]
    log = MetricsLog(run_dir)
    with progress_bar() as progress:
        epochs = progress.add_task("cVAE epochs", total=config.epochs, completed=start_epoch, status="")
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            order = np.random.permutation(len(examples))
            totals = np.zeros(2)
            batches = progress.add_task(f"epoch {epoch + 1}", total=steps, status="")
            model.train()
            for step in range(steps):
                image, vector, garment = tensors(
                    examples, order[step * config.batch_size : (step + 1) * config.batch_size]
                )
                reconstruction, mean, log_var = model(image, vector, garment)
                recon, kl = loss_terms(image, reconstruction, mean, log_var)
                warmup = min(1.0, (epoch * steps + step + 1) / steps)
                loss = recon + config.kl_weight * warmup * kl
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                totals += [recon.item(), kl.item()]
                if step % 20 == 0:
                    mean_terms = totals / (step + 1)
                    progress.update(
                        batches, completed=step + 1, status=f"SE {mean_terms[0]:.0f} KL {mean_terms[1]:.2f}"
                    )
            progress.remove_task(batches)
            generated = generate(model, held_out, slice(None), seed=epoch)
            held_out_psnr = psnr(generated, held_out.images)
            sheet = size_by_body_sheet(model, held_out)
            save_grid(run_dir / "samples" / f"epoch_{epoch + 1:03d}.png", sheet, 12)
            checkpoints.save(
                run_dir,
                {
                    "epoch": epoch + 1,
                    "config": asdict(config),
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "schedule": schedule.state_dict(),
                },
            )
            mean_terms = totals / steps
            log.append(
                {
                    "epoch": epoch + 1,
                    "sq_error_per_image": mean_terms[0],
                    "kl": mean_terms[1],
                    "held_out_psnr": held_out_psnr,
                    "seconds": time.perf_counter() - started,
                }
            )
            progress.console.print(
                f"cVAE epoch {epoch + 1}/{config.epochs}: SE {mean_terms[0]:.0f} KL {mean_terms[1]:.2f} "
                f"held-out PSNR {held_out_psnr:.2f} dB ({time.perf_counter() - started:.0f} s)"
            )
            progress.update(epochs, completed=epoch + 1, status=f"PSNR {held_out_psnr:.2f}")
    return run_dir / checkpoints.CHECKPOINT_NAME
