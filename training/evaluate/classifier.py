"""The judge: a small CNN trained on colourised Fashion-MNIST (train split only).

It tells which category a generated product image shows (conditional accuracy) and supplies
the feature space for a Frechet distance that, unlike Inception's, was learned on this domain.
Colours are random per image, so it judges shape, not colour.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from serving_contract.taxonomy import NUM_CATEGORIES
from training import checkpoints
from training.data import fashion_mnist
from training.data.products import product_images, random_colours, to_unit_range
from training.layout import channels_last
from training.progress import progress_bar

#: size of the penultimate layer used as the feature space for Frechet distances
FEATURE_DIM = 128


class Judge(nn.Module):
    """The CNN; ``classes`` is the size of its head (categories, or patterns for the pattern judge)."""

    def __init__(self, classes: int = NUM_CATEGORIES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 16
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8
            nn.Conv2d(64, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(128 * 16, FEATURE_DIM),
            nn.ReLU(),
        )
        self.classify = nn.Linear(FEATURE_DIM, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits, features)."""
        features = self.features(x)
        return self.classify(features), features


@torch.no_grad()
def judge_images(judge: Judge, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[N, 32, 32, 3]`` -> (predicted category [N], features [N, FEATURE_DIM])."""
    judge.eval()
    predictions, features = [], []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(to_unit_range(images[start : start + batch]))
        logits, feats = judge(x.contiguous(memory_format=torch.channels_last))
        predictions.append(logits.argmax(1).numpy())
        features.append(feats.numpy())
    return np.concatenate(predictions), np.concatenate(features)


def train_judge(path: Path, *, epochs: int = 4, seed: int = 0) -> Judge:
    """Train on the train split and save to ``path``; prints test accuracy per epoch."""
    checkpoints.seed_everything(seed)
    train, test = fashion_mnist.load("train"), fashion_mnist.load("test")
    test_images = product_images(test, random_colours(len(test.labels), seed + 99))
    judge = channels_last(Judge())
    optimiser = torch.optim.Adam(judge.parameters(), 1e-3)
    labels = torch.from_numpy(train.labels)
    steps = len(labels) // 128
    with progress_bar() as progress:
        task = progress.add_task("judge classifier", total=epochs * steps, status="")
        for epoch in range(epochs):
            started = time.perf_counter()
            images = torch.from_numpy(
                to_unit_range(product_images(train, random_colours(len(labels), seed + epoch)))
            )
            order = torch.randperm(len(labels))
            judge.train()
            for step in range(steps):
                index = order[step * 128 : (step + 1) * 128]
                logits, _ = judge(images[index].contiguous(memory_format=torch.channels_last))
                loss = F.cross_entropy(logits, labels[index])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                progress.advance(task)
            predicted, _ = judge_images(judge, test_images)
            accuracy = float((predicted == test.labels).mean())
            progress.console.print(
                f"judge epoch {epoch + 1}/{epochs}: test accuracy {accuracy:.4f} "
                f"({time.perf_counter() - started:.0f} s)"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": judge.state_dict(), "test_accuracy": accuracy}, path)
    return judge


def load_judge(path: Path) -> tuple[Judge, float]:
    """The saved judge and its test accuracy."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    judge = channels_last(Judge())
    judge.load_state_dict(saved["state"])
    return judge.eval(), float(saved["test_accuracy"])
