"""The try-on decoder as served: raw request tensors in, uint8 HWC image out.

Everything between the Triton tensors and the network (measurement normalisation, one-hot
conditions, garment scaling) lives inside this module, so the exported TorchScript file is
all the serving side needs.
"""

from __future__ import annotations

import torch
from torch import nn

from training.cvae.model import TryOnVAE, vector_condition


class TryOnServing(nn.Module):
    def __init__(self, vae: TryOnVAE) -> None:
        super().__init__()
        self.garment_encoder = vae.garment_encoder
        self.decoder = vae.decoder

    def forward(
        self,
        z: torch.Tensor,
        measurements: torch.Tensor,
        size: torch.Tensor,
        category: torch.Tensor,
        garment: torch.Tensor,
    ) -> torch.Tensor:
        """z [N, L] f32, measurements [N, 5] cm/kg, size/category [N] i64, garment [N, 32, 32, 3] u8."""
        garment_unit = garment.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        vector = vector_condition(measurements, size, category)
        image = self.decoder(z, vector, self.garment_encoder(garment_unit))
        return ((image.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
