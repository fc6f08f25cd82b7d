"""The pattern judge: the judge's CNN with a pattern head, trained on textured real garments.

It tells which ``serving_contract.patterns`` pattern a product image shows, so the cGAN's
pattern condition can be scored the way the category judge scores categories. Categories and
colours are random per image, so it judges the fabric, not the garment. Trained on the train
split; its accuracy is measured on held-out test garments textured with other seeds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from serving_contract.patterns import NUM_PATTERNS, PATTERNS
from training import checkpoints
from training.data import fashion_mnist
from training.data.patterns import patterned_product_images, random_patterns
from training.data.products import random_colours, to_unit_range
from training.evaluate.classifier import Judge, judge_images
from training.layout import channels_last
from training.progress import progress_bar

#: where the trained pattern judge is kept, beside the category judge
PATTERN_JUDGE_PATH = Path(__file__).resolve().parent / "weights" / "pattern_judge.pt"

BATCH = 128


def textured(data: fashion_mnist.FashionMNIST, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real images with seeded random colours and patterns: (uint8 images, pattern indices)."""
    patterns = random_patterns(len(data.labels), seed)
    return patterned_product_images(data, random_colours(len(data.labels), seed), patterns), patterns


def per_pattern_accuracy(predicted: np.ndarray, patterns: np.ndarray) -> dict[str, float]:
    """Share of each pattern's images judged as that pattern; NaN for a pattern never asked for."""
    return {
        p.name: float((predicted[patterns == p.index] == p.index).mean())
        if (patterns == p.index).any()
        else np.nan
        for p in PATTERNS
    }


def train_pattern_judge(
    path: Path = PATTERN_JUDGE_PATH, *, epochs: int = 4, train_limit: int | None = None, seed: int = 0
) -> tuple[Judge, dict[str, float]]:
    """Train on textured train images, save to ``path``; returns the judge and its held-out
    accuracy (``"all"`` and per pattern) on the whole test split, textured with another seed."""
    checkpoints.seed_everything(seed)
    train, test = fashion_mnist.load("train"), fashion_mnist.load("test")
    if train_limit:
        train = fashion_mnist.FashionMNIST(train.images[:train_limit], train.labels[:train_limit])
    test_images, test_patterns = textured(test, seed + 99)
    judge = channels_last(Judge(NUM_PATTERNS))
    optimiser = torch.optim.Adam(judge.parameters(), 1e-3)
    steps = len(train.labels) // BATCH
    # cosine decay: at a fixed 1e-3 the second epoch ended no better than the first (0.965)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps)
    accuracy: dict[str, float] = {}
    with progress_bar() as progress:
        task = progress.add_task("pattern judge", total=epochs * steps, status="")
        for epoch in range(epochs):
            started = time.perf_counter()
            images_np, patterns_np = textured(train, seed + epoch)
            images, patterns = torch.from_numpy(to_unit_range(images_np)), torch.from_numpy(patterns_np)
            order = torch.randperm(len(patterns))
            judge.train()
            for step in range(steps):
                index = order[step * BATCH : (step + 1) * BATCH]
                logits, _ = judge(images[index].contiguous(memory_format=torch.channels_last))
                loss = F.cross_entropy(logits, patterns[index])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                progress.advance(task)
            predicted, _ = judge_images(judge, test_images)
            accuracy = {"all": float((predicted == test_patterns).mean())}
            accuracy |= per_pattern_accuracy(predicted, test_patterns)
            progress.console.print(
                f"pattern judge epoch {epoch + 1}/{epochs}: held-out accuracy {accuracy['all']:.4f} "
                f"({time.perf_counter() - started:.0f} s)"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": judge.state_dict(), "test_accuracy": accuracy}, path)
    return judge, accuracy


def load_pattern_judge(path: Path = PATTERN_JUDGE_PATH) -> tuple[Judge, dict[str, float]]:
    """The saved pattern judge and its held-out accuracy (``"all"`` and per pattern)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    judge = channels_last(Judge(NUM_PATTERNS))
    judge.load_state_dict(saved["state"])
    return judge.eval(), dict(saved["test_accuracy"])


def pattern_accuracy(judge: Judge, images: np.ndarray, patterns: np.ndarray) -> dict[str, float]:
    """How often ``judge`` sees the requested pattern in uint8 ``[N, 32, 32, 3]`` images."""
    predicted, _ = judge_images(judge, images)
    return {"all": float((predicted == patterns).mean())} | per_pattern_accuracy(predicted, patterns)


if __name__ == "__main__":
    torch.set_num_threads(1)
    _, measured = train_pattern_judge()
    print({name: round(value, 4) for name, value in measured.items()})
