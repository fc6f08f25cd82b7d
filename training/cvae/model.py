"""Encoder q(z | image, condition) and decoder p(image | z, condition) of the try-on cVAE.

The condition is the body measurements (normalised to [-1, 1]), the garment size and category
(one-hot) and the garment's own product image, summarised by a small conv encoder. The
decoder is FiLM-conditioned at every resolution and sees coordinate channels (CoordConv):
body widths are positions, and a conv net places edges far more precisely when it can read
where it is.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from serving_contract.sizing import MEASUREMENTS, NUM_SIZES
from serving_contract.taxonomy import NUM_CATEGORIES

#: size of the latent code (the seed draws it from N(0, I) at serving time)
LATENT_DIM = 16
#: size of the garment image summary
GARMENT_DIM = 128
#: size of the vector condition: measurements + one-hot size + one-hot category
VECTOR_DIM = len(MEASUREMENTS) + NUM_SIZES + NUM_CATEGORIES

_LOW = torch.tensor([m.low for m in MEASUREMENTS])
_HIGH = torch.tensor([m.high for m in MEASUREMENTS])


def normalise_measurements(raw: torch.Tensor) -> torch.Tensor:
    """cm/kg -> [-1, 1] over each measurement's accepted range (sizing.MEASUREMENTS)."""
    return 2.0 * (raw - _LOW.to(raw.device)) / (_HIGH - _LOW).to(raw.device) - 1.0


def vector_condition(measurements: torch.Tensor, size: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
    return torch.cat(
        [
            normalise_measurements(measurements),
            F.one_hot(size, NUM_SIZES).float(),
            F.one_hot(category, NUM_CATEGORIES).float(),
        ],
        dim=1,
    )


def coordinates(x: torch.Tensor) -> torch.Tensor:
    """Two channels holding each pixel's x and y in [-1, 1]."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, device=x.device).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([xs, ys], dim=1)


class GarmentEncoder(nn.Module):
    """32x32 product image -> a GARMENT_DIM summary of its shape, texture and colour."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2, padding=1),  # 16
            nn.SiLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),  # 8
            nn.SiLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1),  # 4
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, GARMENT_DIM),
        )

    def forward(self, garment: torch.Tensor) -> torch.Tensor:
        return self.net(garment)


class FilmUpBlock(nn.Module):
    """x2 upsample, conv over features + coordinates, then a FiLM gain/bias from the condition."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 2, out_channels, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * out_channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.conv(torch.cat([x, coordinates(x)], dim=1))
        gain, bias = self.film(cond).chunk(2, dim=1)
        return F.silu(x * (1.0 + gain[:, :, None, None]) + bias[:, :, None, None])


class Decoder(nn.Module):
    """(z, vector condition, garment summary) -> image, ``[N, 3, 64, 64]``, about [-1, 1].

    The output is linear, not tanh: most pixels are the white background at exactly 1.0, where
    a tanh saturates, its gradient vanishes and training stalls on an all-white image.

    Blocks take 4x4 features to 32x32; a stride-2 transposed conv makes the 64x64 pixels. Full
    conv stages at 64x64 cost 5x the training time on CPU for no visible gain.
    """

    def __init__(self, widths: tuple[int, ...] = (128, 96, 64, 32)) -> None:
        super().__init__()
        cond_dim = LATENT_DIM + VECTOR_DIM + GARMENT_DIM
        self.start = widths[0]
        self.project = nn.Sequential(nn.Linear(cond_dim, 256), nn.SiLU(), nn.Linear(256, widths[0] * 4 * 4))
        self.blocks = nn.ModuleList([FilmUpBlock(a, b, cond_dim) for a, b in itertools.pairwise(widths)])
        self.to_rgb = nn.ConvTranspose2d(widths[-1] + 2, 3, 4, stride=2, padding=1)

    def forward(self, z: torch.Tensor, vector: torch.Tensor, garment: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([z, vector, garment], dim=1)
        x = self.project(cond).view(-1, self.start, 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        return self.to_rgb(torch.cat([x, coordinates(x)], dim=1))


class Encoder(nn.Module):
    """(image, condition) -> mean and log-variance of q(z | image, condition)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3 + 2, 32, 4, stride=2, padding=1),  # 32
            nn.SiLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),  # 16
            nn.SiLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1),  # 8
            nn.SiLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1),  # 4
            nn.SiLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(64 * 16 + VECTOR_DIM + GARMENT_DIM, 256), nn.SiLU(), nn.Linear(256, 2 * LATENT_DIM)
        )

    def forward(
        self, image: torch.Tensor, vector: torch.Tensor, garment: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(torch.cat([image, coordinates(image)], dim=1))
        mean, log_var = self.head(torch.cat([h, vector, garment], dim=1)).chunk(2, dim=1)
        return mean, log_var.clamp(-10.0, 10.0)


class TryOnVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.garment_encoder = GarmentEncoder()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(
        self, image: torch.Tensor, vector: torch.Tensor, garment_image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct ``image``; returns (reconstruction, mean, log-variance)."""
        garment = self.garment_encoder(garment_image)
        mean, log_var = self.encoder(image, vector, garment)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return self.decoder(z, vector, garment), mean, log_var

    def generate(self, z: torch.Tensor, vector: torch.Tensor, garment_image: torch.Tensor) -> torch.Tensor:
        return self.decoder(z, vector, self.garment_encoder(garment_image))


def loss_terms(
    image: torch.Tensor, reconstruction: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image squared error (summed over pixels: a Gaussian likelihood) and KL(q || N(0, I)).

    Squared error, not L1: L1's optimum is the per-pixel median, which for a figure that moves
    with the measurements is the empty background.
    """
    n = image.shape[0]
    recon = F.mse_loss(reconstruction, image, reduction="sum") / n
    kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()) / n
    return recon, kl
