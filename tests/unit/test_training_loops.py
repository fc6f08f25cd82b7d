"""The training commands on a sliver of real data: they run, checkpoint, log, and resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from training import checkpoints
from training.cgan.train import CganConfig, sample_sheet
from training.cgan.train import train as train_cgan
from training.cvae.train import CvaeConfig
from training.cvae.train import train as train_cvae


def epochs_logged(run_dir: Path) -> list[int]:
    with (run_dir / "metrics.csv").open() as handle:
        return [int(float(row["epoch"])) for row in csv.DictReader(handle)]


def test_cgan_training_writes_checkpoint_metrics_and_samples_then_resumes(tmp_path: Path) -> None:
    train_cgan(tmp_path, CganConfig(epochs=1, limit=128, batch_size=32, generator_width=64))
    assert (tmp_path / "checkpoint.pt").exists()
    assert (tmp_path / "samples" / "epoch_001.png").exists()
    assert (tmp_path / "metrics.png").exists()
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["ema"]

    train_cgan(tmp_path, CganConfig(epochs=2, limit=128, batch_size=32, generator_width=64))
    assert epochs_logged(tmp_path) == [1, 2]
    second = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert second["epoch"] == 2
    assert not torch.equal(first["project.weight"], second["ema"]["project.weight"])


def test_cgan_sample_sheet_covers_every_category_and_colour() -> None:
    from training.cgan.model import Generator

    sheet = sample_sheet(Generator(64).eval())
    assert sheet.shape == (120, 32, 32, 3) and sheet.dtype == np.uint8


def test_checkpoint_restores_random_state(tmp_path: Path) -> None:
    checkpoints.seed_everything(3)
    checkpoints.save(tmp_path, {"epoch": 1})
    expected = torch.rand(3)
    torch.rand(5)
    state = checkpoints.load(tmp_path)
    assert state is not None and state["epoch"] == 1
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_cvae_training_runs_on_rendered_examples_and_resumes(tmp_path: Path) -> None:
    config = CvaeConfig(epochs=1, train_examples=128, batch_size=32, data_dir=str(tmp_path / "data"))
    train_cvae(tmp_path / "run", config)
    assert (tmp_path / "run" / "samples" / "epoch_001.png").exists()
    assert list((tmp_path / "data").glob("tryon_train_128_0.npz"))
    train_cvae(tmp_path / "run", CvaeConfig(**{**config.__dict__, "epochs": 2}))
    assert epochs_logged(tmp_path / "run") == [1, 2]
