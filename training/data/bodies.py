"""Synthetic adult body measurements: the bodies the try-on renderer dresses.

No data set pairs measurements with images, so bodies are sampled from a small generative
model instead: height and BMI are drawn, weight follows from them, and the girths grow with
``sqrt(weight / height)`` (a body's cross-section) plus a shape variable that trades waist
against hips and chest (straight vs hourglass) and a little independent noise. The spreads are
wide on purpose so the extremes of ``sizing.MEASUREMENTS`` are well covered; every value is
kept inside its range (height, weight and BMI by resampling, girths by clipping).
"""

from __future__ import annotations

import numpy as np

from serving_contract.sizing import MEASUREMENTS

#: mean and spread of height in cm (the range 145..205 sits at about +-2.1 sd)
HEIGHT_MEAN_CM, HEIGHT_SD_CM = 175.0, 14.0

#: median BMI and the spread of its logarithm (BMI about 16..40 at +-2 sd)
BMI_MEDIAN, LOG_BMI_SD = 25.0, 0.22

#: BMIs outside this range are redrawn (no emaciated or implausibly heavy adults)
BMI_RANGE = (16.0, 42.0)

#: girths in cm of the reference body (``sqrt(weight / height)`` of 70 kg / 1.75 m)
REFERENCE_GIRTH_CM = {"chest": 100.0, "waist": 86.0, "hips": 102.0}

#: how fast each girth grows with ``sqrt(weight / height)`` (the waist carries most fat)
GIRTH_EXPONENT = {"chest": 1.1, "waist": 1.5, "hips": 1.15}

#: cm each girth moves per unit of the shape variable (positive: hourglass)
SHAPE_CM = {"chest": 1.5, "waist": -5.0, "hips": 5.0}

#: sd in cm of the independent noise on each girth
GIRTH_NOISE_CM = 3.0

_REFERENCE_BUILD = np.sqrt(70.0 / 1.75)
_RANGE = {m.name: (m.low, m.high) for m in MEASUREMENTS}


def sample_measurements(count: int, seed: int) -> np.ndarray:
    """``count`` bodies as float32 ``[count, 5]`` in ``MEASUREMENTS`` order, deterministic per seed."""
    rng = np.random.default_rng(seed)
    height, weight = _height_and_weight(rng, count)
    build = np.sqrt(weight / (height / 100.0)) / _REFERENCE_BUILD
    shape = rng.standard_normal(count)
    columns = [height, weight]
    for name in ("chest", "waist", "hips"):
        girth = REFERENCE_GIRTH_CM[name] * build ** GIRTH_EXPONENT[name]
        girth += SHAPE_CM[name] * shape + GIRTH_NOISE_CM * rng.standard_normal(count)
        columns.append(np.clip(girth, *_RANGE[name]))
    return np.stack(columns, axis=1).astype(np.float32)


def _height_and_weight(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw (height, BMI) pairs, keeping those whose height, weight and BMI are all in range."""
    heights: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    kept = 0
    while kept < count:
        batch = 2 * (count - kept) + 16
        height = rng.normal(HEIGHT_MEAN_CM, HEIGHT_SD_CM, batch)
        bmi = BMI_MEDIAN * np.exp(LOG_BMI_SD * rng.standard_normal(batch))
        weight = bmi * (height / 100.0) ** 2
        ok = (
            _inside("height", height)
            & _inside("weight", weight)
            & (bmi >= BMI_RANGE[0])
            & (bmi <= BMI_RANGE[1])
        )
        heights.append(height[ok])
        weights.append(weight[ok])
        kept += int(ok.sum())
    return np.concatenate(heights)[:count], np.concatenate(weights)[:count]


def _inside(name: str, values: np.ndarray) -> np.ndarray:
    low, high = _RANGE[name]
    return (values >= low) & (values <= high)
