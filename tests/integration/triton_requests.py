"""Requests to the two generators over Triton's gRPC API, as the worker sends them (tests only)."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as grpcclient

from serving_contract.tensors import CLIENT_DTYPES, PRODUCT_GENERATOR, TRYON_GENERATOR, ModelSpec, empty_batch

#: a mid-range body: height, weight, chest, waist, hips (cm, kg)
BODY = (172.0, 70.0, 96.0, 82.0, 100.0)


def infer(
    client: grpcclient.InferenceServerClient, spec: ModelSpec, arrays: dict[str, np.ndarray]
) -> np.ndarray:
    inputs = []
    for name, values in arrays.items():
        tensor = grpcclient.InferInput(name, list(values.shape), CLIENT_DTYPES[values.dtype.name])
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    images: np.ndarray = client.infer(spec.name, inputs).as_numpy("IMAGE")
    return images


def products(categories: list[int], colours: list[int], seeds: list[int]) -> dict[str, np.ndarray]:
    batch = empty_batch(PRODUCT_GENERATOR, len(seeds))
    batch["CATEGORY"][:, 0] = categories
    batch["COLOUR"][:, 0] = colours
    batch["SEED"][:, 0] = seeds
    return batch


def tryons(
    seeds: list[int], *, category: int = 0, size: int = 1, body: tuple = BODY
) -> dict[str, np.ndarray]:
    batch = empty_batch(TRYON_GENERATOR, len(seeds))
    batch["MEASUREMENTS"][:] = body
    batch["SIZE"][:, 0] = size
    batch["CATEGORY"][:, 0] = category
    batch["GARMENT"][:] = np.random.default_rng(7).integers(
        0, 256, batch["GARMENT"].shape[1:], dtype=np.uint8
    )
    batch["SEED"][:, 0] = seeds
    return batch


def random_products(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return products(
        list(rng.integers(0, 10, n)), list(rng.integers(0, 12, n)), list(rng.integers(0, 2**40, n))
    )
