"""The cGAN's pattern condition: built on request, required when built, refused when not, and
trained by the ordinary loop, which then draws a category x pattern sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from serving_contract.patterns import NUM_PATTERNS
from training.cgan.model import LATENT_DIM, Discriminator, Generator
from training.cgan.patterns import epoch_data, pattern_sheet
from training.cgan.train import CganConfig, sample_sheet
from training.cgan.train import train as train_cgan
from training.data.fashion_mnist import FashionMNIST
from training.data.products import product_images


def conditions(n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.randn(n, LATENT_DIM),
        torch.arange(n) % 10,
        torch.arange(n) % 12,
        torch.arange(n) % NUM_PATTERNS,
    )


def test_pattern_model_uses_the_pattern() -> None:
    torch.manual_seed(0)
    generator = Generator(64, num_patterns=NUM_PATTERNS).eval()
    with torch.no_grad():  # a trained-looking embedding: the default init is random already
        z, category, colour, pattern = conditions()
        one = generator(z, category, colour, pattern)
        other = generator(z, category, colour, (pattern + 1) % NUM_PATTERNS)
    assert one.shape == (4, 3, 32, 32)
    assert not torch.allclose(one, other)
    d = Discriminator(16, num_patterns=NUM_PATTERNS)
    assert d(one, category, colour, pattern).shape == (4,)


def test_pattern_model_refuses_a_missing_pattern_and_colour_model_refuses_one() -> None:
    z, category, colour, pattern = conditions()
    with pytest.raises(ValueError, match="pattern missing"):
        Generator(64, num_patterns=NUM_PATTERNS)(z, category, colour)
    with pytest.raises(ValueError, match="built without patterns"):
        Generator(64)(z, category, colour, pattern)
    with pytest.raises(ValueError, match="built without patterns"):
        Discriminator(16)(torch.zeros(4, 3, 32, 32), category, colour, pattern)


def test_colour_only_model_keeps_its_weights_layout() -> None:
    """Exported colour-only checkpoints still load: no pattern parameters unless asked for."""
    assert not any("pattern" in key for key in Generator(64).state_dict())
    assert not any("pattern" in key for key in Discriminator(16).state_dict())


def test_colour_only_epoch_data_is_unchanged() -> None:
    data = FashionMNIST(np.full((8, 28, 28), 180, np.uint8), np.arange(8) % 10)
    images, colours, patterns = epoch_data(data, 3, patterns=False)
    assert patterns is None and np.array_equal(images, product_images(data, colours))
    textured, same_colours, drawn = epoch_data(data, 3, patterns=True)
    assert drawn is not None and np.array_equal(colours, same_colours)
    assert not np.array_equal(textured[drawn > 0], images[drawn > 0])


def test_pattern_training_writes_both_sheets_and_resumes(tmp_path: Path) -> None:
    config = CganConfig(epochs=1, limit=128, batch_size=32, generator_width=64, patterns=True)
    train_cgan(tmp_path, config)
    assert (tmp_path / "samples" / "patterns_epoch_001.png").exists()
    assert (tmp_path / "samples" / "epoch_001.png").exists()
    train_cgan(tmp_path, CganConfig(**{**config.__dict__, "epochs": 2}))
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 2 and state["config"]["patterns"] is True
    assert state["ema"]["pattern.weight"].shape == (NUM_PATTERNS, 32)


def test_sheets_cover_every_category_by_pattern_and_colour() -> None:
    generator = Generator(64, num_patterns=NUM_PATTERNS)
    assert pattern_sheet(generator).shape == (10 * NUM_PATTERNS, 32, 32, 3)
    assert sample_sheet(generator).shape == (120, 32, 32, 3)
