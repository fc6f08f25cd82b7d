"""Evaluation of a pattern-conditioned cGAN checkpoint: does it draw the pattern it is asked for?

Samples follow the test split's category mix with seeded random colours and patterns; the
pattern judge scores the pattern, the textured category judge (``textured_judge.py``: trained on
patterned garments, so a miss is the generator's, not the judge's) the category, and colour is read against
real textured test images of the same (category, pattern, colour). Real textured test images
go through the same measures as the reference row. Writes a JSON of the numbers, a
category x pattern contact sheet and a per-pattern bar chart.

``python -m training.evaluate.pattern_eval RUN_DIR OUT_PREFIX [SAMPLES]``
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serving_contract.palette import NUM_COLOURS
from serving_contract.patterns import NUM_PATTERNS, PATTERNS
from serving_contract.taxonomy import CATEGORIES, NUM_CATEGORIES
from training import checkpoints
from training.cgan.model import LATENT_DIM, Generator
from training.cgan.patterns import save_pattern_sheet
from training.data import fashion_mnist
from training.data.patterns import patterned_product_images, random_patterns
from training.data.products import random_colours
from training.evaluate.classifier import Judge, judge_images, load_judge
from training.evaluate.inception_score import judge_inception_score
from training.evaluate.metrics import colour_errors, colour_reference
from training.evaluate.pattern_judge import PATTERN_JUDGE_PATH, load_pattern_judge, pattern_accuracy
from training.evaluate.textured_judge import TEXTURED_JUDGE_PATH
from training.grids import to_uint8_hwc

#: the category judge of colour-only models (the report's); pattern models get ``TEXTURED_JUDGE_PATH``
JUDGE_PATH = Path(__file__).resolve().parent / "weights" / "judge.pt"


def load_generator(run_dir: Path, *, weights: str = "ema") -> tuple[Generator, dict[str, Any]]:
    """The generator of a pattern run's last checkpoint (``weights``: "ema" or "generator")."""
    from training.cgan.train import CganConfig, build

    state = torch.load(checkpoints.load_path(run_dir), map_location="cpu", weights_only=False)
    config = CganConfig(**state["config"])
    if not config.patterns:
        raise ValueError(f"{run_dir} was trained without patterns (CganConfig.patterns is False)")
    generator, _ = build(config)
    generator.load_state_dict(state[weights])
    return generator.eval(), state


@torch.no_grad()
def generate(
    generator: Generator, categories: np.ndarray, colours: np.ndarray, patterns: np.ndarray
) -> np.ndarray:
    """uint8 ``[N, 32, 32, 3]`` samples, noise seeded by position."""
    z = torch.randn(len(categories), LATENT_DIM, generator=torch.Generator().manual_seed(0))
    out = []
    for s in range(0, len(z), 500):
        chunk = slice(s, s + 500)
        as_tensor = [
            torch.from_numpy(np.asarray(a[chunk], np.int64)) for a in (categories, colours, patterns)
        ]
        out.append(to_uint8_hwc(generator(z[chunk], *as_tensor).numpy()))
    return np.concatenate(out)


def measure(
    images: np.ndarray,
    categories: np.ndarray,
    colours: np.ndarray,
    patterns: np.ndarray,
    judges: tuple[Judge, Judge],
    reference: dict[tuple[int, int], np.ndarray],
) -> dict[str, Any]:
    category_judge, pattern_judge = judges
    predicted, _ = judge_images(category_judge, images)
    keys = categories * NUM_PATTERNS + patterns  # colour reference per (category, pattern)
    _, nearest = colour_errors(images, keys, colours, reference, NUM_COLOURS)
    category_is, category_is_std = judge_inception_score(category_judge, images)
    pattern_is, pattern_is_std = judge_inception_score(pattern_judge, images)
    return {
        "pattern_accuracy": pattern_accuracy(pattern_judge, images, patterns),
        "category_accuracy": float((predicted == categories).mean()),
        "per_category_accuracy": {
            c.slug: float((predicted[categories == c.index] == c.index).mean()) for c in CATEGORIES
        },
        "colour_accuracy": float((nearest == colours).mean()),
        "judge_inception_score_category": [category_is, category_is_std],
        "judge_inception_score_pattern": [pattern_is, pattern_is_std],
    }


def evaluate_pattern_run(
    run_dir: Path,
    out_prefix: Path,
    *,
    samples: int = 3000,
    seed: int = 5,
    category_judge_path: Path = TEXTURED_JUDGE_PATH,
) -> dict[str, Any]:
    started = time.perf_counter()
    generator, state = load_generator(run_dir)
    category_judge, _ = load_judge(category_judge_path)
    pattern_judge, pattern_judge_accuracy = load_pattern_judge(PATTERN_JUDGE_PATH)
    judges = (category_judge, pattern_judge)
    test = fashion_mnist.load("test")
    pick = np.random.default_rng(seed).choice(len(test.labels), size=samples, replace=False)
    categories = test.labels[pick]
    colours, patterns = random_colours(samples, seed), random_patterns(samples, seed)
    real = patterned_product_images(
        fashion_mnist.FashionMNIST(test.images[pick], categories), colours, patterns
    )
    reference = colour_reference(real, categories * NUM_PATTERNS + patterns, colours)
    generated = generate(generator, categories, colours, patterns)
    results = {
        "run": str(run_dir),
        "epochs": state["epoch"],
        "config": state["config"],
        "samples": samples,
        "pattern_judge_held_out_accuracy": pattern_judge_accuracy,
        "category_judge": category_judge_path.name,
        "chance_pattern_accuracy": 1 / NUM_PATTERNS,
        "chance_category_accuracy": 1 / NUM_CATEGORIES,
        "generated": measure(generated, categories, colours, patterns, judges, reference),
        "real_textured_test": measure(real, categories, colours, patterns, judges, reference),
        "seconds": time.perf_counter() - started,
    }
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    out_prefix.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    save_pattern_sheet(out_prefix.with_name(out_prefix.name + "_sheet.png"), generator, scale=3)
    plot_per_pattern(results, out_prefix.with_suffix(".png"))
    return results


def plot_per_pattern(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p.name for p in PATTERNS]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for offset, (key, label) in enumerate(
        [("real_textured_test", "real textured"), ("generated", "generated")]
    ):
        values = [results[key]["pattern_accuracy"][n] for n in names]
        ax.bar(
            x + (offset - 0.5) * 0.4,
            values,
            0.4,
            label=f"{label} (all {results[key]['pattern_accuracy']['all']:.2f})",
        )
    ax.axhline(results["chance_pattern_accuracy"], color="grey", linestyle=":", label="chance")
    ax.axhline(0.9, color="red", linestyle="--", label="target 0.90")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"pattern accuracy by the pattern judge, {results['samples']} samples, epoch {results['epochs']}"
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    torch.set_num_threads(1)
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    measured = evaluate_pattern_run(Path(sys.argv[1]), Path(sys.argv[2]), samples=count)
    print(json.dumps({k: measured[k] for k in ("epochs", "generated", "real_textured_test")}, indent=1))
