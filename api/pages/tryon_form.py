"""What the try-on form offers and checks, read from the serving contract, never restated.

The page validates in the browser what the server validates (``core.contracts.v1``): each
measurement within its range of ``serving_contract.sizing`` after converting imperial to
metric exactly as :class:`~core.contracts.v1.BodyMeasurements` does (``value * factor``, then
``low <= metric <= high``); categories that can be tried on; palette colours; the size chart;
a listing job id of 32 lowercase hex digits and a variant 0-7. The browser gets the metric
bounds and the factor, so both sides compare the same numbers; the ranges shown to the shopper
are rounded *inwards* to one decimal, so every value shown as allowed is allowed.
``tests/unit/test_tryon_form.py`` holds these against the contract.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

from core.contracts.v1 import JOB_ID_CHARS, GarmentFromListing
from serving_contract.palette import PALETTE
from serving_contract.sizing import MEASUREMENTS, SIZE_CHART, MeasurementRange
from serving_contract.taxonomy import wearable_categories

#: centimetres per inch and kilograms per pound, as the contract converts imperial input
CM_PER_INCH: Final = 2.54
KG_PER_POUND: Final = 0.45359237
#: the imperial unit of each metric one, and how many metric units one of it is
IMPERIAL: Final = {"cm": ("in", CM_PER_INCH), "kg": ("lb", KG_PER_POUND)}
#: what the shopper reads for each measurement
LABELS: Final = {"height": "Height", "weight": "Weight", "chest": "Chest", "waist": "Waist", "hips": "Hips"}
#: a listing job's variants, as ``GarmentFromListing.variant`` bounds them
VARIANT_MAX: Final = next(
    int(rule.le) for rule in GarmentFromListing.model_fields["variant"].metadata if hasattr(rule, "le")
)


@dataclass(frozen=True)
class UnitRange:
    """One measurement in one unit system: what to show, and what the browser checks."""

    unit: str  #: cm, kg, in or lb
    factor: float  #: metric units per unit (1 for metric)
    shown_low: float  #: the range shown and the input's min/max, rounded inwards
    shown_high: float


@dataclass(frozen=True)
class MeasurementField:
    name: str
    label: str
    low: float  #: the contract's metric bounds: ``low <= value * factor <= high``
    high: float
    metric: UnitRange
    imperial: UnitRange


def _inwards(low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` to one decimal, rounded inwards (a shown bound is always allowed)."""
    return math.ceil(round(low * 10, 6)) / 10, math.floor(round(high * 10, 6)) / 10


def measurement_field(limits: MeasurementRange) -> MeasurementField:
    unit, factor = IMPERIAL[limits.unit]
    low, high = _inwards(limits.low / factor, limits.high / factor)
    return MeasurementField(
        name=limits.name,
        label=LABELS.get(limits.name, limits.name.capitalize()),
        low=limits.low,
        high=limits.high,
        metric=UnitRange(limits.unit, 1.0, limits.low, limits.high),
        imperial=UnitRange(unit, factor, low, high),
    )


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class Swatch:
    name: str
    hex: str


@dataclass(frozen=True)
class TryOnForm:
    """Everything the template and the page's script need to build and check the form."""

    measurements: tuple[MeasurementField, ...]
    categories: tuple[Choice, ...]
    colours: tuple[Swatch, ...]
    sizes: tuple[str, ...]
    job_id_pattern: str
    variant_max: int

    def script_config(self) -> dict[str, Any]:
        """The part the browser's checks read (JSON in the page)."""
        return {
            "measurements": [asdict(m) for m in self.measurements],
            "jobIdPattern": self.job_id_pattern,
            "variantMax": self.variant_max,
        }


def tryon_form() -> TryOnForm:
    return TryOnForm(
        measurements=tuple(measurement_field(m) for m in MEASUREMENTS),
        categories=tuple(Choice(c.slug, c.label) for c in wearable_categories()),
        colours=tuple(Swatch(c.name, c.hex) for c in PALETTE),
        sizes=tuple(s.label for s in SIZE_CHART),
        job_id_pattern=f"^[0-9a-f]{{{JOB_ID_CHARS}}}$",
        variant_max=VARIANT_MAX,
    )
