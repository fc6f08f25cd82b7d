"""The gate's thresholds, from ``ATELIER_GATE_*`` environment variables.

The category, colour and duplicate defaults are the thresholds ``python -m bench.gate`` calibrated
on its calibration split (rounded; bench/gate/results.json, docs/benchmarks/gate.md);
the degenerate-image limits sit far from every clean image measured there.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_GATE_", env_file=".env", extra="ignore")

    min_category_probability: float = Field(
        default=0.099,
        ge=0.0,
        le=1.0,
        description="the judge's probability of the requested category must reach this",
    )
    max_colour_delta_e: float = Field(
        default=24.8,
        gt=0.0,
        description="CIE76 distance between the garment's mean CIELAB colour and the requested colour's "
        "reference must stay within this",
    )
    min_duplicate_hamming: int = Field(
        default=15,
        ge=0,
        le=256,
        description="bits of the 256-bit perceptual hash by which a variant must differ from each "
        "earlier variant of its job",
    )
    min_pixel_std: float = Field(
        default=8.0,
        ge=0.0,
        description="standard deviation (levels) of the image's most varied channel below which it is blank",
    )
    min_foreground_fraction: float = Field(
        default=0.05, ge=0.0, le=1.0, description="share of product (non-background) pixels an image needs"
    )
    enabled: bool = Field(
        default=True, description="judge every generated listing image (off: images go unchecked)"
    )
    max_tries: int = Field(
        default=3,
        ge=1,
        le=8,
        description="generations a listing variant gets (the first, then regenerations with derived "
        "seeds) before it is kept as flagged",
    )
    max_clipped_fraction: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="share of the product's channel values at 0 or 255 above which it is blown out",
    )
