"""One real Triton server for the integration tests, serving the committed ``triton_models/``.

Until trained weights are exported there, ``export_placeholders`` fills a repository with an
untrained (seeded) product generator and ``TryOnStandIn``, through the same export path the
trained models take. ``python tests/integration/conftest.py`` writes them into ``triton_models/``;
the fixture uses a temporary repository instead when the committed one is incomplete.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from embedded.triton import DEFAULT_REPOSITORY, TritonServer
from serving_contract.sizing import MEASUREMENTS, NUM_SIZES
from serving_contract.taxonomy import NUM_CATEGORIES
from serving_contract.tensors import PRODUCT_IMAGE_SIZE, TRYON_GENERATOR
from training.cgan.model import Generator
from training.export import export_model, export_product_generator, is_complete, to_uint8_hwc

#: latent size of the stand-in (the trained cVAE brings its own)
STAND_IN_LATENT_DIM = 16


class TryOnStandIn(nn.Module):
    """The try-on serving module's signature with no training behind it.

    ``(z [N, L], measurements [N, 5] cm/kg, size [N], category [N], garment uint8 [N, 32, 32, 3])
    -> uint8 [N, 64, 64, 3]``: the garment scaled up 2x, shifted by every condition and the noise,
    so each input changes the image.
    """

    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, latent_dim: int = STAND_IN_LATENT_DIM) -> None:
        super().__init__()
        self.noise = nn.Linear(latent_dim, 3)
        self.body = nn.Linear(len(MEASUREMENTS), 3)
        self.size = nn.Embedding(NUM_SIZES, 3)
        self.category = nn.Embedding(NUM_CATEGORIES, 3)
        self.register_buffer("low", torch.tensor([m.low for m in MEASUREMENTS]))
        self.register_buffer("high", torch.tensor([m.high for m in MEASUREMENTS]))

    def forward(
        self,
        z: torch.Tensor,
        measurements: torch.Tensor,
        size: torch.Tensor,
        category: torch.Tensor,
        garment: torch.Tensor,
    ) -> torch.Tensor:
        body = 2.0 * (measurements - self.low) / (self.high - self.low) - 1.0
        shift = self.noise(z) + self.body(body) + self.size(size) + self.category(category)
        x = garment.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return to_uint8_hwc(torch.tanh(x + 0.3 * shift[:, :, None, None]))


def export_placeholders(repository: Path, *, seed: int = 0) -> Path:
    """Export an untrained product generator and the try-on stand-in into ``repository``."""
    torch.manual_seed(seed)
    export_product_generator(Generator(), repository)
    example = (
        torch.randn(2, STAND_IN_LATENT_DIM),
        torch.tensor([[170.0, 70.0, 95.0, 80.0, 100.0]] * 2),
        torch.tensor([0, 1]),
        torch.tensor([0, 1]),
        torch.zeros(2, PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3, dtype=torch.uint8),
    )
    export_model(
        TRYON_GENERATOR,
        TryOnStandIn(),
        repository,
        1,
        latent_dim=STAND_IN_LATENT_DIM,
        example_inputs=example,
    )
    return repository


@pytest.fixture(scope="session")
def triton_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if is_complete(DEFAULT_REPOSITORY):
        return DEFAULT_REPOSITORY
    return export_placeholders(tmp_path_factory.mktemp("triton_models"))


@pytest.fixture(scope="session")
def triton(triton_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    with TritonServer(triton_repository, log_path=log) as server:
        yield server


if __name__ == "__main__":
    print(export_placeholders(DEFAULT_REPOSITORY))
