"""Training beyond one process: a two-process DDP run (torchrun, gloo on CPU) of a tiny cGAN on a
small catalog trains, writes its files once (rank 0) and exports one version."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from serving_contract.manifest import read_manifest
from tests.catalog_fixture import GOOD_ROWS, write_catalog
from training import distributed


def test_two_process_gloo_run_trains_and_exports_once(tmp_path: Path) -> None:
    catalog, run_dir, repository = tmp_path / "catalog", tmp_path / "run", tmp_path / "repository"
    write_catalog(catalog)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "training.cli", "train-cgan", "--distributed",
        "--catalog", str(catalog), "--skip-invalid", "--run-dir", str(run_dir), "--out", str(repository),
        "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "3",
        "--generator-width", "16", "--discriminator-width", "4",
    ]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert time.perf_counter() - started < 120
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert (state["epoch"], state["world_size"]) == (2, 2)
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    output = result.stdout + result.stderr
    assert output.count("exported ") == 1 and output.count("cGAN epoch 2/2") == 1  # rank 0 only
    assert [p.name for p in (repository / "product_cgan").iterdir() if p.is_dir()] == ["1"]
    assert read_manifest(repository / "product_cgan" / "1").provenance.images == GOOD_ROWS


def test_distributed_needs_torchrun_and_torchrun_needs_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="needs torchrun's environment"):
        distributed.start(distributed=True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="without --distributed"):
        distributed.start(distributed=False)
