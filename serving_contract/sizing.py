"""Body measurements and the garment size chart the try-on model understands.

Measurements are in centimetres and kilograms. The ranges are the plausible adult ranges the
renderer was trained on; requests outside them are refused rather than extrapolated.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MeasurementRange:
    name: str
    unit: str
    low: float
    high: float

    def normalise(self, value: float) -> float:
        """Map ``[low, high]`` onto ``[-1, 1]``: the encoding the try-on model receives."""
        return 2.0 * (value - self.low) / (self.high - self.low) - 1.0


#: body measurements in the order the try-on model's ``measurements`` tensor carries them
MEASUREMENTS: tuple[MeasurementRange, ...] = (
    MeasurementRange("height", "cm", 145.0, 205.0),
    MeasurementRange("weight", "kg", 40.0, 140.0),
    MeasurementRange("chest", "cm", 75.0, 140.0),
    MeasurementRange("waist", "cm", 55.0, 135.0),
    MeasurementRange("hips", "cm", 80.0, 145.0),
)

MEASUREMENT_NAMES = tuple(m.name for m in MEASUREMENTS)


@dataclass(frozen=True)
class GarmentSize:
    """One row of the size chart: the garment's own dimensions, not the wearer's."""

    index: int
    label: str
    chest_cm: float  #: garment circumference at the chest (tops, dresses, coats)
    waist_cm: float  #: garment circumference at the waist (trousers)
    top_length_cm: float  #: shoulder to hem for tops and shirts
    dress_length_cm: float  #: shoulder to hem for dresses and coats
    inseam_cm: float  #: crotch to hem for trousers


SIZE_CHART: tuple[GarmentSize, ...] = (
    GarmentSize(0, "S", 92.0, 74.0, 64.0, 92.0, 74.0),
    GarmentSize(1, "M", 102.0, 84.0, 69.0, 98.0, 78.0),
    GarmentSize(2, "L", 112.0, 94.0, 74.0, 104.0, 82.0),
    GarmentSize(3, "XL", 122.0, 104.0, 79.0, 110.0, 86.0),
)

NUM_SIZES = len(SIZE_CHART)

_BY_LABEL = {s.label: s for s in SIZE_CHART}


def size_by_label(label: str) -> GarmentSize:
    """Look up a size by label (S, M, L, XL); raises ``KeyError`` naming the known sizes."""
    try:
        return _BY_LABEL[label.upper()]
    except KeyError:
        raise KeyError(f"unknown size {label!r}; known: {', '.join(_BY_LABEL)}") from None
