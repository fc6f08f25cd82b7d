"""Triton python backend of ``product_cgan``: (CATEGORY, COLOUR[, PATTERN], SEED) -> IMAGE uint8.

``initialize`` loads ``model.pt`` (TorchScript) beside this file onto the instance's device.
``execute`` validates each request on its own (a bad one gets INVALID_ARG naming the tensor and the
rule; the others in the batch are still answered), then runs the valid items through the model
``forward_batch`` rows at a time. Each item's noise comes from its own seed on the CPU (the same
on every device), and every forward has that one shape, so on one machine an item's bytes do not
depend on the other requests it was batched with (docs/determinism.md). Limits come from the
version's ``manifest.json`` beside this file (a version trained on another catalog has its own
categories and colours), else from the config ``parameters``, which all versions share.

``PATTERN`` is an optional input of the config (shared by all versions), but not optional for a
version: one whose manifest lists patterns requires it on every request, one without refuses it.
Triton hands the backend ``None`` for an input a request left out.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

INPUTS = ("CATEGORY", "COLOUR", "SEED")
#: the input only versions conditioned on patterns take (``optional: true`` in config.pbtxt)
PATTERN = "PATTERN"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.latent_dim = int(parameters["latent_dim"])
        self.forward_batch = int(parameters["forward_batch"])
        # intra-op threads per instance (config, written by training/export.py): torch's default
        # of one per core let OpenMP workers of three models spin against each other on shared cores
        torch.set_num_threads(int(parameters.get("intra_op_threads", torch.get_num_threads())))
        keep_freed_memory()  # before the first forward: see its docstring
        self.num_categories = int(parameters["num_categories"])
        self.num_colours = int(parameters["num_colours"])
        self.num_patterns = 0  # a version conditioned on patterns lists them in its manifest
        self.version = args.get("model_version", Path(__file__).parent.name)
        manifest_path = Path(__file__).with_name("manifest.json")
        if manifest_path.exists():  # serving_contract/manifest.py wrote it at export
            manifest = json.loads(manifest_path.read_text())
            self.latent_dim = int(manifest["latent_dim"])
            self.num_categories = len(manifest["conditions"]["categories"])
            self.num_colours = len(manifest["conditions"]["colours"])
            self.num_patterns = len(manifest["conditions"].get("patterns", []))
        if args.get("model_instance_kind") == "GPU":
            self.device = torch.device(f"cuda:{args['model_instance_device_id']}")
        else:
            self.device = torch.device("cpu")
        self.model = torch.jit.load(str(Path(__file__).with_name("model.pt")), map_location=self.device)
        self.model.eval()

    def execute(self, requests: list) -> list:
        batches = [request_arrays(r) for r in requests]
        errors = [self.invalid(b) for b in batches]
        valid = [b for b, e in zip(batches, errors, strict=True) if e is None]
        images = iter(self.generate(valid) if valid else [])
        return [
            pb_utils.InferenceResponse(error=pb_utils.TritonError(e, pb_utils.TritonError.INVALID_ARG))
            if e is not None
            else pb_utils.InferenceResponse(output_tensors=[output_tensor("IMAGE", next(images))])
            for e in errors
        ]

    def invalid(self, batch: dict[str, np.ndarray]) -> str | None:
        """Why this request cannot be served, naming the tensor and the rule; ``None`` if it can."""
        return (
            empty(batch["SEED"])
            or outside("CATEGORY", batch["CATEGORY"], 0, self.num_categories)
            or outside("COLOUR", batch["COLOUR"], 0, self.num_colours)
            or self.invalid_pattern(batch.get(PATTERN))
            or negative_seed(batch["SEED"])
        )

    def invalid_pattern(self, patterns: np.ndarray | None) -> str | None:
        """``PATTERN`` is required by a version with patterns and refused by one without."""
        if not self.num_patterns:
            return (
                None if patterns is None else f"product_cgan v{self.version} has no patterns: send no PATTERN"
            )
        if patterns is None:
            return f"PATTERN missing: product_cgan v{self.version} requires one per item"
        return outside(PATTERN, patterns, 0, self.num_patterns)

    def generate(self, batches: list[dict[str, np.ndarray]]) -> list[torch.Tensor]:
        """The images of every item of ``batches``, split back per request."""

        def stacked(name: str) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([b[name] for b in batches]))

        seeds = np.concatenate([b["SEED"].reshape(-1) for b in batches])
        names = ["CATEGORY", "COLOUR", *([PATTERN] if self.num_patterns else [])]
        images = self.forward(*[stacked(name).reshape(-1).long() for name in names], seeds=seeds)
        return list(images.split([len(b["SEED"]) for b in batches]))

    def forward(self, *conditions: torch.Tensor, seeds: np.ndarray) -> torch.Tensor:
        """The model over ``seeds``' noise and ``conditions``, ``forward_batch`` rows at a time.

        Every call has the same shape, the last chunk padded with zero rows: MKL and oneDNN pick
        their kernels by shape (and by CPU), and another kernel can round an item differently.
        With one shape an item gets the same kernels, and so the same bytes, in any batch.
        """
        inputs = [noise(seeds, self.latent_dim), *conditions]
        parts = []
        with torch.inference_mode():
            for start in range(0, len(seeds), self.forward_batch):
                rows = [padded(t[start : start + self.forward_batch], self.forward_batch) for t in inputs]
                images = self.model(*[t.to(self.device) for t in rows])
                parts.append(images[: min(self.forward_batch, len(seeds) - start)].cpu())
        return torch.cat(parts)


def request_arrays(request: object) -> dict[str, np.ndarray]:
    """The request's inputs by name: the required ones, and ``PATTERN`` if it carries one."""
    arrays = {name: as_numpy(pb_utils.get_input_tensor_by_name(request, name)) for name in INPUTS}
    pattern = pb_utils.get_input_tensor_by_name(request, PATTERN)  # None when left out
    if pattern is not None:
        arrays[PATTERN] = as_numpy(pattern)
    return arrays


def as_numpy(tensor: Any) -> np.ndarray:
    """An input tensor as numpy, through DLPack and torch rather than the stub's numpy bridge.

    With numpy 2 installed, Triton 2.51's stub (built for numpy 1) answered empty outputs;
    DLPack does not depend on the numpy ABI.
    """
    return torch.from_dlpack(tensor.to_dlpack()).numpy()


def output_tensor(name: str, values: torch.Tensor) -> object:
    """A CPU output tensor handed to Triton through DLPack (a compact copy, no view offsets)."""
    return pb_utils.Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(values.clone()))


def padded(values: torch.Tensor, rows: int) -> torch.Tensor:
    """``values`` with zero rows appended up to ``rows`` rows."""
    extra = rows - len(values)
    return torch.cat([values, values.new_zeros((extra, *values.shape[1:]))]) if extra else values


def noise(seeds: np.ndarray, latent_dim: int) -> torch.Tensor:
    """``[N, latent_dim]`` standard normal noise, each row drawn on the CPU from its own seed."""
    rows = [torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows)


def empty(seeds: np.ndarray) -> str | None:
    return "SEED has no items: a request needs at least one" if len(seeds) == 0 else None


def outside(name: str, values: np.ndarray, low: int, high: int) -> str | None:
    """The first item of ``values`` outside ``[low, high)``, as an error message."""
    flat = values.reshape(-1)
    bad = np.flatnonzero((flat < low) | (flat >= high))
    if len(bad) == 0:
        return None
    i = int(bad[0])
    return f"{name}[{i}]={flat[i]} outside [{low}, {high})"


def negative_seed(seeds: np.ndarray) -> str | None:
    flat = seeds.reshape(-1)
    bad = np.flatnonzero(flat < 0)
    return f"SEED[{int(bad[0])}]={flat[bad[0]]} must be >= 0" if len(bad) else None


#: glibc's ``mallopt`` parameters (``malloc.h``)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: fixed ``mallopt`` thresholds, far above a forward's working set: a block under 64 MiB comes from
#: the heap, and the heap keeps up to 128 MiB freed at its top
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 64 << 20, 128 << 20


def keep_freed_memory() -> None:
    """Keep freed memory in this process's heap for the next forward (glibc's ``mallopt``).

    With glibc's adaptive thresholds the stub handed each forward's activations back to the
    kernel and faulted them in again, zeroed, on the next call: 600 to 750 page faults per 8-row
    ``product_cgan`` forward (15.1 ms against 12.1 ms of CPU with fixed thresholds), and a quarter
    of the ``quality_judge`` stub's CPU in the kernel under the pipeline (perf). Fixed thresholds:
    the judge stub's CPU per pipeline image fell by a third (bench/perf pipeline, A/B). A no-op
    where the C library has no ``mallopt`` (not glibc).
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
