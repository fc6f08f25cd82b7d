"""Generator and projection discriminator of the product cGAN.

The recipe is the small-scale SNGAN/BigGAN one: hinge loss, spectral norm on every
discriminator layer, a projection discriminator (Miyato & Koyama 2018) with one projection per
condition, and conditional batch norm in the generator whose gains come from the category and
colour embeddings. Upsample + 3x3 conv avoids transposed-conv checkerboards. Widths were cut to
what a 2-core CPU trains in minutes per epoch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from serving_contract.palette import NUM_COLOURS
from serving_contract.taxonomy import NUM_CATEGORIES

#: size of the noise vector drawn from the request's seed
LATENT_DIM = 64
#: size of each condition embedding (category, colour)
EMBED_DIM = 32


class ConditionalBatchNorm(nn.Module):
    """Batch norm without affine terms, then a gain and bias predicted from the condition."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.ones_(self.gain.bias)
        nn.init.zeros_(self.bias.weight)
        nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = self.gain(cond)[:, :, None, None]
        bias = self.bias(cond)[:, :, None, None]
        return self.norm(x) * gain + bias


class UpBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = ConditionalBatchNorm(in_channels, cond_dim)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(x, cond))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Generator(nn.Module):
    """(z, category, colour) -> image in [-1, 1], ``[N, 3, 32, 32]``."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        cond_dim = 2 * EMBED_DIM
        self.width = width
        self.category = nn.Embedding(NUM_CATEGORIES, EMBED_DIM)
        self.colour = nn.Embedding(NUM_COLOURS, EMBED_DIM)
        self.project = nn.Linear(LATENT_DIM + cond_dim, width * 4 * 4)
        self.blocks = nn.ModuleList(
            [
                UpBlock(width, width // 2, cond_dim),  # 8x8
                UpBlock(width // 2, width // 4, cond_dim),  # 16x16
                UpBlock(width // 4, width // 8, cond_dim),  # 32x32
            ]
        )
        self.out_norm = ConditionalBatchNorm(width // 8, cond_dim)
        self.to_rgb = nn.Conv2d(width // 8, 3, 3, padding=1)

    def forward(self, z: torch.Tensor, category: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.category(category), self.colour(colour)], dim=1)
        x = self.project(torch.cat([z, cond], dim=1)).view(-1, self.width, 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        x = F.relu(self.out_norm(x, cond))
        return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
    """Projection discriminator: ``psi(h) + <embed_category(y), h> + <embed_colour(c), h>``."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(3, width, 3, padding=1)),
            nn.LeakyReLU(0.1),
            spectral_norm(nn.Conv2d(width, width * 2, 4, stride=2, padding=1)),  # 16
            nn.LeakyReLU(0.1),
            spectral_norm(nn.Conv2d(width * 2, width * 4, 4, stride=2, padding=1)),  # 8
            nn.LeakyReLU(0.1),
            spectral_norm(nn.Conv2d(width * 4, width * 8, 4, stride=2, padding=1)),  # 4
            nn.LeakyReLU(0.1),
        )
        features = width * 8
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.category = spectral_norm(nn.Embedding(NUM_CATEGORIES, features))
        self.colour = spectral_norm(nn.Embedding(NUM_COLOURS, features))

    def forward(self, image: torch.Tensor, category: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        h = self.features(image).sum(dim=(2, 3))
        projection = (self.category(category) * h).sum(1) + (self.colour(colour) * h).sum(1)
        return self.linear(h).squeeze(1) + projection


def discriminator_hinge_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def generator_hinge_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()
