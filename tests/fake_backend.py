"""A version's ``model.py`` run in-process as Triton would run it, against a fake
``triton_python_backend_utils``: the export and serving unit tests call the real backends
(their batching, range checks and refusals) without a server."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def to_dlpack(self) -> object:
        return torch.utils.dlpack.to_dlpack(torch.from_numpy(np.ascontiguousarray(self.array)))

    @staticmethod
    def from_dlpack(name: str, capsule: object) -> FakeTensor:
        return FakeTensor(name, torch.from_dlpack(capsule).numpy())


class FakeError:
    INVALID_ARG = 3

    def __init__(self, message: str, code: int = 0) -> None:
        self.message, self.code = message, code


class FakeResponse:
    def __init__(
        self, output_tensors: list[FakeTensor] | None = None, error: FakeError | None = None
    ) -> None:
        self.outputs, self.error = output_tensors, error


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def load_version(version_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``TritonPythonModel`` of ``version_dir/model.py``, initialised on the CPU with the
    parameters of its model folder's ``config.pbtxt`` and the folder's name as its version."""
    fake = types.SimpleNamespace(
        Tensor=FakeTensor,
        TritonError=FakeError,
        InferenceResponse=FakeResponse,
        get_input_tensor_by_name=lambda request, name: request.get(name),  # None if left out, as Triton
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    name = f"backend_{version_dir.parent.name}_{id(version_dir)}"  # each load its own module
    loader = importlib.util.spec_from_file_location(name, version_dir / "model.py")
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    config = parse_config(version_dir.parent / "config.pbtxt")
    parameters = {key: {"string_value": value.string_value} for key, value in config.parameters.items()}
    backend = module.TritonPythonModel()
    backend.initialize(
        {
            "model_config": json.dumps({"parameters": parameters}),
            "model_instance_kind": "CPU",
            "model_instance_device_id": "0",
            "model_version": version_dir.name,
        }
    )
    return backend


def request(**arrays: np.ndarray) -> dict[str, FakeTensor]:
    return {name: FakeTensor(name, array) for name, array in arrays.items()}


def product_request(
    categories: list[int], colours: list[int], seeds: list[int], patterns: list[int] | None = None
) -> dict[str, FakeTensor]:
    """A ``product_cgan`` request of one item per seed; ``PATTERN`` left out when ``patterns`` is None."""
    arrays: dict[str, np.ndarray] = {
        "CATEGORY": np.array(categories, np.int32)[:, None],
        "COLOUR": np.array(colours, np.int32)[:, None],
        "SEED": np.array(seeds, np.int64)[:, None],
    }
    if patterns is not None:
        arrays["PATTERN"] = np.array(patterns, np.int32)[:, None]
    return request(**arrays)
