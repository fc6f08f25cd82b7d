"""The models in the worker process: the same TorchScript files Triton serves, behind the same
calls as ``worker.inference.InferenceClient`` (``generate_products``, ``generate_tryon``,
``judge_products`` for the quality gate).

The committed python backends do the work (``bench.backends``): each item's noise drawn on the CPU
from its own seed, the model run ``forward_batch`` rows at a time, ``inference_mode``. Used only by
the benchmark's in-process alternative (``bench.perf.inprocess_app``): torch never enters
``worker/``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backends import VERSION, load_backend
from bench.perf.intra_op import intra_op_threads
from embedded.triton import DEFAULT_REPOSITORY
from serving_contract.tensors import PRODUCT_GENERATOR, QUALITY_JUDGE, TRYON_GENERATOR
from worker.inference import Generated


class TorchInference:
    """The models loaded in this process on first use (after the pool's fork).

    Parameters (keyword-only): ``repository`` (default the committed ``triton_models/``),
    ``threads`` (torch intra-op threads; default the backends' ``intra_op_threads`` from
    ``repository``'s configs, what each Triton instance runs with: ``bench.perf.intra_op``).
    """

    def __init__(self, *, repository: Path = DEFAULT_REPOSITORY, threads: int | None = None) -> None:
        self.repository = repository
        self.threads = threads if threads is not None else intra_op_threads(repository)
        self._backends: dict[str, Any] = {}
        self._pid: int | None = None

    def load(self) -> None:
        """Load every backend (once per process)."""
        if self._pid == os.getpid():
            return
        self._backends = {
            spec.name: load_backend(spec.name, repository=self.repository)
            for spec in (PRODUCT_GENERATOR, TRYON_GENERATOR, QUALITY_JUDGE)
        }
        # after the backends' initialize, each of which sets the threads from its own config
        torch.set_num_threads(self.threads)
        self._pid = os.getpid()

    def _forward(self, name: str, seeds: Sequence[int], *conditions: torch.Tensor) -> np.ndarray:
        self.load()
        images = self._backends[name].forward(*conditions, seeds=np.asarray(seeds, dtype=np.int64))
        return np.asarray(images.numpy())

    def generate_products(
        self,
        categories: Sequence[int],
        colours: Sequence[int],
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
        patterns: Sequence[int] | None = None,
    ) -> Generated:
        if patterns is not None:  # the committed version 1 has none (worker.boundaries.Inference)
            raise ValueError("the in-process product model takes no patterns")
        images = self._forward(
            PRODUCT_GENERATOR.name,
            list(seeds),
            torch.tensor(list(categories), dtype=torch.long),
            torch.tensor(list(colours), dtype=torch.long),
        )
        return Generated(images, PRODUCT_GENERATOR.name, VERSION)

    def generate_tryon(
        self,
        measurements: np.ndarray | Sequence[Sequence[float]],
        sizes: Sequence[int],
        categories: Sequence[int],
        garments: np.ndarray,
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
    ) -> Generated:
        images = self._forward(
            TRYON_GENERATOR.name,
            list(seeds),
            torch.tensor(np.asarray(measurements, dtype=np.float32)),
            torch.tensor(list(sizes), dtype=torch.long),
            torch.tensor(list(categories), dtype=torch.long),
            torch.from_numpy(np.ascontiguousarray(garments, dtype=np.uint8)),
        )
        return Generated(images, TRYON_GENERATOR.name, VERSION)

    def judge_products(self, images: np.ndarray) -> np.ndarray:
        self.load()
        probabilities, _ = self._backends[QUALITY_JUDGE.name].forward(
            torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
        )
        return np.asarray(probabilities.numpy(), dtype=np.float32)

    def close(self) -> None:
        self._backends = {}
        self._pid = None
