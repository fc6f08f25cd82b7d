"""Checkpoints that let a training run stop anywhere and resume where it left off."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"


def seed_everything(seed: int) -> None:
    """Fix every generator a run draws from, so a run is repeatable on one machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def save(run_dir: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): a kill mid-save never corrupts the last one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {**state, "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state()}
    tmp = run_dir / (CHECKPOINT_NAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, run_dir / CHECKPOINT_NAME)


def load_path(run_dir: Path) -> Path:
    """Where ``run_dir``'s checkpoint is (it may not exist yet)."""
    return run_dir / CHECKPOINT_NAME


def load(run_dir: Path) -> dict[str, Any] | None:
    """The last checkpoint of ``run_dir`` with generator states restored, or ``None``."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    return state
