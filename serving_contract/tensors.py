"""The Triton interface of each model: names, tensor names, dtypes, shapes, value ranges.

Shapes exclude the batch dimension (both models batch on dim 0). ``export`` writes each model's
``config.pbtxt`` from these specs, and the worker builds its requests from them, so the two
cannot drift apart. An optional input (``ModelSpec.optional_inputs``) is one only some versions
of a model take: a request carries it exactly when the version's manifest says so.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from serving_contract.palette import NUM_COLOURS
from serving_contract.patterns import NUM_PATTERNS
from serving_contract.sizing import MEASUREMENTS, NUM_SIZES
from serving_contract.taxonomy import NUM_CATEGORIES

#: product image side in pixels (Fashion-MNIST's 28 padded to 32 with background)
PRODUCT_IMAGE_SIZE = 32

#: try-on image side in pixels (a 205 cm person is 60 px tall)
TRYON_IMAGE_SIZE = 64


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  #: numpy dtype name; ``TRITON_DTYPES`` maps it to Triton's
    shape: tuple[int, ...]  #: per-item shape, without the batch dimension
    doc: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    doc: str
    #: inputs a request may leave out (Triton's ``optional: true``): only the versions whose
    #: manifest lists them take them, and those require them
    optional_inputs: tuple[TensorSpec, ...] = ()

    def input(self, name: str) -> TensorSpec:
        return next(t for t in (*self.inputs, *self.optional_inputs) if t.name == name)


TRITON_DTYPES = {"int32": "TYPE_INT32", "int64": "TYPE_INT64", "float32": "TYPE_FP32", "uint8": "TYPE_UINT8"}
CLIENT_DTYPES = {"int32": "INT32", "int64": "INT64", "float32": "FP32", "uint8": "UINT8"}

SEED = TensorSpec(
    "SEED",
    "int64",
    (1,),
    "noise seed, >= 0; the same seed and condition give the same image",
)

PRODUCT_GENERATOR = ModelSpec(
    name="product_cgan",
    inputs=(
        TensorSpec("CATEGORY", "int32", (1,), f"taxonomy index in [0, {NUM_CATEGORIES})"),
        TensorSpec("COLOUR", "int32", (1,), f"palette index in [0, {NUM_COLOURS})"),
        SEED,
    ),
    outputs=(
        TensorSpec(
            "IMAGE",
            "uint8",
            (PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3),
            "RGB product image on a white background, HWC",
        ),
    ),
    max_batch_size=64,
    doc="conditional GAN: category + colour + seed -> product image",
    optional_inputs=(
        TensorSpec(
            "PATTERN",
            "int32",
            (1,),
            f"pattern index in [0, {NUM_PATTERNS}); sent only to a version whose manifest lists "
            "patterns (its own count), which then requires it",
        ),
    ),
)

TRYON_GENERATOR = ModelSpec(
    name="tryon_cvae",
    inputs=(
        TensorSpec(
            "MEASUREMENTS",
            "float32",
            (len(MEASUREMENTS),),
            "height cm, weight kg, chest cm, waist cm, hips cm, within sizing.MEASUREMENTS",
        ),
        TensorSpec("SIZE", "int32", (1,), f"size chart index in [0, {NUM_SIZES})"),
        TensorSpec("CATEGORY", "int32", (1,), "taxonomy index of a wearable category"),
        TensorSpec(
            "GARMENT",
            "uint8",
            (PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3),
            "the garment's product image, as product_cgan returns it",
        ),
        SEED,
    ),
    outputs=(
        TensorSpec(
            "IMAGE",
            "uint8",
            (TRYON_IMAGE_SIZE, TRYON_IMAGE_SIZE, 3),
            "RGB front view of the body wearing the garment, HWC",
        ),
    ),
    max_batch_size=64,
    doc="conditional VAE: measurements + garment + size + seed -> try-on image",
)

#: size of the judge's feature vector (its penultimate layer, training/evaluate/classifier.py)
JUDGE_FEATURE_DIM = 128

QUALITY_JUDGE = ModelSpec(
    name="quality_judge",
    inputs=(
        TensorSpec(
            "IMAGE",
            "uint8",
            (PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3),
            "a product image, as product_cgan returns it",
        ),
    ),
    outputs=(
        TensorSpec(
            "PROBABILITIES",
            "float32",
            (NUM_CATEGORIES,),
            "softmax over the taxonomy: which category the image shows",
        ),
        TensorSpec(
            "FEATURES",
            "float32",
            (JUDGE_FEATURE_DIM,),
            "the judge's feature vector (penultimate layer), for near-duplicates and distances",
        ),
    ),
    max_batch_size=64,
    doc="classifier (the evaluation's judge): product image -> category probabilities + features",
)

MODELS = (PRODUCT_GENERATOR, TRYON_GENERATOR, QUALITY_JUDGE)


def empty_batch(spec: ModelSpec, batch: int, *, optional: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Zero-filled input arrays for ``spec``, to fill in and send (one allocation per call): its
    required inputs, and of its optional inputs those named in ``optional``."""
    unknown = set(optional) - {t.name for t in spec.optional_inputs}
    if unknown:
        raise KeyError(f"{spec.name} has no optional input {', '.join(sorted(unknown))}")
    tensors = (*spec.inputs, *(t for t in spec.optional_inputs if t.name in optional))
    return {t.name: np.zeros((batch, *t.shape), dtype=t.dtype) for t in tensors}
