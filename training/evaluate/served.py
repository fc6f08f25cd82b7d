"""Run the exported serving artifacts (``model.pt`` in the Triton repository) in-process.

Evaluation measures exactly what Triton serves: the same TorchScript file, and noise drawn per
item from its seed the way the backends draw it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR, ModelSpec


def model_file(repository: Path, spec: ModelSpec, version: int = 1) -> Path:
    return repository / spec.name / str(version) / "model.pt"


def seeded_noise(seeds: np.ndarray, latent_dim: int) -> torch.Tensor:
    """One N(0, I) vector per seed, from its own CPU generator (as the backends do)."""
    return torch.stack(
        [torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    )


class ServedProductModel:
    def __init__(self, repository: Path, latent_dim: int, version: int = 1) -> None:
        self.module = torch.jit.load(str(model_file(repository, PRODUCT_GENERATOR, version))).eval()
        self.latent_dim = latent_dim

    @torch.no_grad()
    def __call__(
        self, categories: np.ndarray, colours: np.ndarray, seeds: np.ndarray, batch: int = 500
    ) -> np.ndarray:
        out = []
        for s in range(0, len(seeds), batch):
            z = seeded_noise(seeds[s : s + batch], self.latent_dim)
            category = torch.from_numpy(np.asarray(categories[s : s + batch], np.int64))
            colour = torch.from_numpy(np.asarray(colours[s : s + batch], np.int64))
            out.append(self.module(z, category, colour).numpy())
        return np.concatenate(out)


class ServedTryOnModel:
    def __init__(self, repository: Path, latent_dim: int, version: int = 1) -> None:
        self.module = torch.jit.load(str(model_file(repository, TRYON_GENERATOR, version))).eval()
        self.latent_dim = latent_dim

    @torch.no_grad()
    def __call__(
        self,
        measurements: np.ndarray,
        sizes: np.ndarray,
        categories: np.ndarray,
        garments: np.ndarray,
        seeds: np.ndarray,
        batch: int = 250,
    ) -> np.ndarray:
        out = []
        for s in range(0, len(seeds), batch):
            window = slice(s, s + batch)
            out.append(
                self.module(
                    seeded_noise(seeds[window], self.latent_dim),
                    torch.from_numpy(np.asarray(measurements[window], np.float32)),
                    torch.from_numpy(np.asarray(sizes[window], np.int64)),
                    torch.from_numpy(np.asarray(categories[window], np.int64)),
                    torch.from_numpy(np.ascontiguousarray(garments[window])),
                ).numpy()
            )
        return np.concatenate(out)
