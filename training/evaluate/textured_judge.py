"""The category judge for patterned models: the judge's CNN trained on textured garments.

The category judge (``classifier.py``) learned categories from colour-only garments; on real
garments textured with ``serving_contract.patterns`` it reads fewer right (0.880 against 0.893
plain; denim 0.858). This judge starts from those weights and trains on the train split
textured with seeded random colours *and* patterns (solid among them, so plain images stay in
its diet), so a pattern model's category accuracy measures the generator, not the judge. Its
held-out accuracy is read on real test garments drawn in every pattern, per category and per
pattern, beside the plain judge's on the same images, so readers can tell judge error from
generator error.

``atelier-models train-textured-judge`` trains it (minutes on 2 CPU threads) and saves the
weights with their held-out accuracy; ``atelier-models pattern-checks`` writes the tables.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from serving_contract.patterns import NUM_PATTERNS, PATTERNS
from serving_contract.taxonomy import CATEGORIES
from training import checkpoints
from training.data import fashion_mnist
from training.data.patterns import patterned_product_images, random_patterns
from training.data.products import product_images, random_colours, to_unit_range
from training.evaluate.classifier import Judge, judge_images, load_judge
from training.layout import channels_last
from training.progress import progress_bar

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: the colour-only category judge it starts from (and the one plain models are judged by)
PLAIN_JUDGE_PATH = WEIGHTS / "judge.pt"
#: where the textured category judge is kept; the evaluation of pattern models reads it
TEXTURED_JUDGE_PATH = WEIGHTS / "textured_judge.pt"
#: seed of the held-out textures (colours of the test garments); training uses seed + epoch
HELD_OUT_SEED = 99


@dataclass(frozen=True)
class TexturedJudgeConfig:
    """How the textured judge is trained: sized to finish in minutes on a 2-core CPU."""

    #: passes, each over ``images_per_epoch`` train garments freshly textured
    epochs: int = 3
    #: train garments drawn (without replacement) for each epoch, each in a new colour and pattern
    images_per_epoch: int = 30_000
    batch_size: int = 128
    #: Adam's starting learning rate, decayed to 0 by a cosine over all steps
    learning_rate: float = 1e-3
    seed: int = 0
    #: the weights it starts from (``None``: from scratch)
    start_from: Path | None = PLAIN_JUDGE_PATH
    #: test garments its held-out accuracy is read on (``None``: all 10,000, in every pattern)
    held_out_limit: int | None = None


def textured_epoch(train: fashion_mnist.FashionMNIST, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` train garments in seeded random colours and patterns: (uint8 images, categories)."""
    pick = np.random.default_rng([seed, 17]).choice(len(train.labels), size=count, replace=False)
    data = fashion_mnist.FashionMNIST(train.images[pick], train.labels[pick])
    colours, patterns = random_colours(count, seed), random_patterns(count, seed)
    return patterned_product_images(data, colours, patterns), data.labels


def train_textured_judge(
    path: Path = TEXTURED_JUDGE_PATH, config: TexturedJudgeConfig = TexturedJudgeConfig()
) -> Judge:
    """Train on textured train garments, save to ``path`` (with its held-out accuracy, see
    :func:`held_out_accuracy`); a progress bar, then the loss, wall and CPU time of each epoch."""
    checkpoints.seed_everything(config.seed)
    train = fashion_mnist.load("train")
    judge = load_judge(config.start_from)[0] if config.start_from else channels_last(Judge())
    optimiser = torch.optim.Adam(judge.parameters(), config.learning_rate)
    steps = config.images_per_epoch // config.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs * steps)
    with progress_bar() as progress:
        task = progress.add_task("textured judge", total=config.epochs * steps, status="")
        for epoch in range(config.epochs):
            started, cpu, losses = time.perf_counter(), time.process_time(), []
            images_np, labels_np = textured_epoch(train, config.images_per_epoch, config.seed + epoch)
            images, labels = torch.from_numpy(to_unit_range(images_np)), torch.from_numpy(labels_np)
            judge.train()
            for step in range(steps):
                rows = slice(step * config.batch_size, (step + 1) * config.batch_size)
                logits, _ = judge(images[rows].contiguous(memory_format=torch.channels_last))
                loss = F.cross_entropy(logits, labels[rows])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                losses.append(loss.item())
                progress.update(task, advance=1, status=f"loss {np.mean(losses[-50:]):.3f}")
            progress.console.print(
                f"textured judge epoch {epoch + 1}/{config.epochs}: loss {np.mean(losses):.4f} "
                f"({time.perf_counter() - started:.0f} s, {time.process_time() - cpu:.0f} s of CPU)"
            )
    judge.eval()
    accuracy = held_out_accuracy(judge, limit=config.held_out_limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state": judge.state_dict(),
            "test_accuracy": accuracy["textured"]["all"],
            "held_out": accuracy,
            "config": {k: v.name if isinstance(v, Path) else v for k, v in asdict(config).items()},
        },
        path,
    )
    return judge


def held_out_garments(
    limit: int | None = None, seed: int = HELD_OUT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every test garment (or the first ``limit``) drawn in every pattern, in seeded random
    colours (one per garment, the same in each pattern): (uint8 images ``[P * N, 32, 32, 3]``,
    categories, patterns), pattern-major."""
    test = fashion_mnist.load("test")
    data = fashion_mnist.FashionMNIST(test.images[:limit], test.labels[:limit])
    colours = random_colours(len(data.labels), seed)
    images = [patterned_product_images(data, colours, np.full(len(data.labels), p.index)) for p in PATTERNS]
    return (
        np.concatenate(images),
        np.tile(data.labels, NUM_PATTERNS),
        np.repeat(np.arange(NUM_PATTERNS), len(data.labels)),
    )


def category_accuracy(predicted: np.ndarray, categories: np.ndarray, patterns: np.ndarray) -> dict[str, Any]:
    """Share of images whose predicted category is theirs: ``all``, ``per_category``,
    ``per_pattern`` (the patterns present) and ``per_category_and_pattern`` (category -> pattern
    -> share); NaN for a category never shown, never a silent 0 or 1."""
    right = predicted == categories

    def share(chosen: np.ndarray) -> float:
        return float(right[chosen].mean()) if chosen.any() else float("nan")

    present = [p for p in PATTERNS if (patterns == p.index).any()]
    return {
        "all": share(np.ones_like(right)),
        "per_category": {c.slug: share(categories == c.index) for c in CATEGORIES},
        "per_pattern": {p.name: share(patterns == p.index) for p in present},
        "per_category_and_pattern": {
            c.slug: {p.name: share((categories == c.index) & (patterns == p.index)) for p in present}
            for c in CATEGORIES
        },
    }


def held_out_accuracy(judge: Judge, *, limit: int | None = None) -> dict[str, Any]:
    """``judge``'s category accuracy on real test garments: ``textured`` (every garment in every
    pattern, :func:`held_out_garments`) and ``plain`` (colour-only, as the plain judge was
    measured: ``classifier.train_judge``'s test images)."""
    images, categories, patterns = held_out_garments(limit)
    predicted, _ = judge_images(judge, images)
    test = fashion_mnist.load("test")
    plain = product_images(test, random_colours(len(test.labels), HELD_OUT_SEED))[:limit]
    plain_predicted, _ = judge_images(judge, plain)
    return {
        "garments": len(categories) // NUM_PATTERNS,
        "textured": category_accuracy(predicted, categories, patterns),
        "plain": float((plain_predicted == test.labels[:limit]).mean()),
    }


def load_textured_judge(path: Path = TEXTURED_JUDGE_PATH) -> tuple[Judge, dict[str, Any]]:
    """The saved textured judge and its held-out accuracy (see :func:`held_out_accuracy`)."""
    judge, _ = load_judge(path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return judge, dict(saved["held_out"])


def compare_judges(*, textured: Path = TEXTURED_JUDGE_PATH, plain: Path = PLAIN_JUDGE_PATH) -> dict[str, Any]:
    """Held-out accuracy of both judges on the same real garments (:func:`held_out_accuracy`)."""
    saved = torch.load(textured, map_location="cpu", weights_only=True)
    return {
        "what": "category accuracy on real Fashion-MNIST test garments (never trained on), each drawn "
        "in every pattern (training/data/patterns.py) in a seeded random colour",
        "textured_judge": held_out_accuracy(load_judge(textured)[0]),
        "plain_judge": held_out_accuracy(load_judge(plain)[0]),
        "textured_judge_training": saved.get("config"),
    }


def on_served_plain_model(
    repository: Path, *, samples: int = 2000, seed: int = 7, plain: Path = PLAIN_JUDGE_PATH
) -> dict[str, Any]:
    """Both judges on the served colour-only ``product_cgan`` (version 1): top-1 category accuracy
    and the share passing the gate's category check (``GateSettings().min_category_probability``),
    the measure the worker applies, so a switch of the served judge can be weighed."""
    from quality.settings import GateSettings
    from training.cgan.model import LATENT_DIM
    from training.evaluate.inception_score import class_probabilities
    from training.evaluate.served import ServedProductModel

    test = fashion_mnist.load("test")
    rng = np.random.default_rng(seed)
    categories = test.labels[rng.choice(len(test.labels), size=samples, replace=False)]
    seeds = rng.integers(0, 2**31 - 1, size=samples)
    images = ServedProductModel(repository, LATENT_DIM)(categories, random_colours(samples, seed), seeds)
    threshold = GateSettings().min_category_probability
    out: dict[str, Any] = {"samples": samples, "min_category_probability": threshold}
    for name, path in (("plain_judge", plain), ("textured_judge", TEXTURED_JUDGE_PATH)):
        probabilities = class_probabilities(load_judge(path)[0], images)
        asked = probabilities[np.arange(samples), categories]
        out[name] = {
            "top1_accuracy": float((probabilities.argmax(axis=1) == categories).mean()),
            "category_check_pass_rate": float((asked >= threshold).mean()),
        }
    return out


if __name__ == "__main__":
    torch.set_num_threads(2)
    began = time.perf_counter()
    train_textured_judge()
    print(f"trained in {time.perf_counter() - began:.0f} s")
