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


def up_blocks(resolution: int) -> int:
    """How many 2x upsampling blocks take the 4x4 start to ``resolution`` (32, 64 or 128)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution {resolution} not supported; choose one of {RESOLUTIONS}")
    return resolution.bit_length() - 3  # log2(resolution / 4)


#: image sides the generator and discriminator are built for
RESOLUTIONS = (32, 64, 128)


class Generator(nn.Module):
    """(z, category, colour[, pattern]) -> image in [-1, 1], ``[N, 3, resolution, resolution]``.

    Each upsampling block halves the channels: ``width`` must be at least ``2 ** blocks``
    (8 at 32 px, 16 at 64 px, 32 at 128 px). The vocabulary sizes default to the committed
    taxonomy and palette; a catalog-trained model passes its own.
    """

    def __init__(
        self,
        width: int = 128,
        *,
        num_categories: int = NUM_CATEGORIES,
        num_colours: int = NUM_COLOURS,
        resolution: int = 32,
        num_patterns: int = 0,
    ) -> None:
        super().__init__()
        blocks = up_blocks(resolution)
        if width < 2**blocks:
            raise ValueError(f"generator width {width} below {2**blocks}, the minimum at {resolution} px")
        cond_dim = (3 if num_patterns else 2) * EMBED_DIM
        self.width = width
        self.category = nn.Embedding(num_categories, EMBED_DIM)
        self.colour = nn.Embedding(num_colours, EMBED_DIM)
        # the pattern condition (serving_contract.patterns); 0 builds the colour-only model
        self.pattern = nn.Embedding(num_patterns, EMBED_DIM) if num_patterns else None
        self.project = nn.Linear(LATENT_DIM + cond_dim, width * 4 * 4)
        self.blocks = nn.ModuleList(
            [UpBlock(width // 2**i, width // 2 ** (i + 1), cond_dim) for i in range(blocks)]  # 8, 16, ...
        )
        self.out_norm = ConditionalBatchNorm(width // 2**blocks, cond_dim)
        self.to_rgb = nn.Conv2d(width // 2**blocks, 3, 3, padding=1)

    def forward(
        self,
        z: torch.Tensor,
        category: torch.Tensor,
        colour: torch.Tensor,
        pattern: torch.Tensor | None = None,
    ) -> torch.Tensor:
        parts = [self.category(category), self.colour(colour), *pattern_condition(self.pattern, pattern)]
        cond = torch.cat(parts, dim=1)
        x = self.project(torch.cat([z, cond], dim=1)).view(-1, self.width, 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        x = F.relu(self.out_norm(x, cond))
        return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
    """Projection discriminator: ``psi(h) + <embed_category(y), h> + <embed_colour(c), h>``."""

    def __init__(
        self,
        width: int = 32,
        *,
        num_categories: int = NUM_CATEGORIES,
        num_colours: int = NUM_COLOURS,
        resolution: int = 32,
        num_patterns: int = 0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, width, 3, padding=1)), nn.LeakyReLU(0.1)]
        channels = width
        for i in range(up_blocks(resolution)):  # halves the side down to 4x4; channels stop at 8x
            out = width * 2 ** min(i + 1, 3)
            layers += [spectral_norm(nn.Conv2d(channels, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.1)]
            channels = out
        self.features = nn.Sequential(*layers)
        features = width * 8
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.category = spectral_norm(nn.Embedding(num_categories, features))
        self.colour = spectral_norm(nn.Embedding(num_colours, features))
        self.pattern = spectral_norm(nn.Embedding(num_patterns, features)) if num_patterns else None

    def forward(
        self,
        image: torch.Tensor,
        category: torch.Tensor,
        colour: torch.Tensor,
        pattern: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.features(image).sum(dim=(2, 3))
        projection = (self.category(category) * h).sum(1) + (self.colour(colour) * h).sum(1)
        for embedded in pattern_condition(self.pattern, pattern):  # one more projection, if any
            projection = projection + (embedded * h).sum(1)
        return self.linear(h).squeeze(1) + projection


def pattern_condition(embedding: nn.Module | None, pattern: torch.Tensor | None) -> list[torch.Tensor]:
    """The embedded pattern as a list of zero or one tensors: a model built with patterns needs
    one, a colour-only model refuses one (silently ignoring it would hide a wrong model)."""
    if embedding is None:
        if pattern is not None:
            raise ValueError("pattern given to a model built without patterns (num_patterns=0)")
        return []
    if pattern is None:
        raise ValueError("pattern missing: this model was built with num_patterns > 0")
    return [embedding(pattern)]


def discriminator_hinge_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def generator_hinge_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()
