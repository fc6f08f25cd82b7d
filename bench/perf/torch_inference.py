"""The models in the worker process: the same TorchScript files Triton serves, behind the same
two calls as ``worker.inference.InferenceClient`` (``generate_products``, ``generate_tryon``).

What the python backends (``training/serving_backends/``) do around the model is repeated here:
each item's noise drawn on the CPU from its own seed, the batch padded with zero rows to a
multiple of ``batch_multiple``, ``inference_mode``. The latent sizes and the multiple are read
from each model's ``config.pbtxt`` parameters, as the backends read them. Used only by the
benchmark's in-process alternative (``bench.perf.inprocess_app``): torch never enters ``worker/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from embedded.triton import DEFAULT_REPOSITORY
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR
from worker.inference import Generated, chunks

#: the model version the in-process worker loads (the committed one)
VERSION = "1"


def config_parameters(model_dir: Path) -> dict[str, str]:
    """``parameters`` of a generated ``config.pbtxt`` (key -> string value)."""
    text = (model_dir / "config.pbtxt").read_text()
    pattern = r'key: "([^"]+)"\s*value: \{ string_value: "((?:[^"\\]|\\.)*)" \}'
    return dict(re.findall(pattern, text))


def noise(seeds: Sequence[int], latent_dim: int) -> torch.Tensor:
    rows = [torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows)


def padded(values: torch.Tensor, multiple: int) -> torch.Tensor:
    extra = -len(values) % multiple
    return torch.cat([values, values.new_zeros((extra, *values.shape[1:]))]) if extra else values


class TorchInference:
    """Both models loaded in this process on first use (after the pool's fork).

    Parameters (keyword-only): ``repository`` (default the committed ``triton_models/``),
    ``threads`` (torch intra-op threads; default ``OMP_NUM_THREADS`` or 1).
    """

    def __init__(self, *, repository: Path = DEFAULT_REPOSITORY, threads: int | None = None) -> None:
        self.repository = repository
        self.threads = threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
        self._models: dict[str, tuple[torch.jit.ScriptModule, int, int]] = {}
        self._pid: int | None = None

    def load(self) -> None:
        """Load both TorchScript files (once per process)."""
        if self._pid == os.getpid():
            return
        torch.set_num_threads(self.threads)
        self._models = {}
        for spec in (PRODUCT_GENERATOR, TRYON_GENERATOR):
            model_dir = self.repository / spec.name
            parameters = config_parameters(model_dir)
            module = torch.jit.load(str(model_dir / VERSION / "model.pt"), map_location="cpu").eval()
            self._models[spec.name] = (
                module,
                int(parameters["latent_dim"]),
                int(parameters["batch_multiple"]),
            )
        self._pid = os.getpid()

    def _forward(self, name: str, seeds: Sequence[int], *conditions: torch.Tensor) -> np.ndarray:
        self.load()
        module, latent_dim, multiple = self._models[name]
        parts = []
        for part in chunks(len(seeds), 64):
            z = padded(noise(seeds[part], latent_dim), multiple)
            args = [padded(c[part], multiple) for c in conditions]
            with torch.inference_mode():
                parts.append(module(z, *args)[: len(seeds[part])].numpy())
        return np.concatenate(parts)

    def generate_products(
        self,
        categories: Sequence[int],
        colours: Sequence[int],
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
    ) -> Generated:
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

    def close(self) -> None:
        self._models = {}
        self._pid = None
