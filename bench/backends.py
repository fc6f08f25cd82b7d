"""The committed Triton python backends (``triton_models/*/1/model.py``), loaded in this process.

The benchmarks' in-process alternative and the determinism check call the backends' own
``forward`` (noise from each seed, fixed-shape chunks) rather than a copy of it, so what they
measure is what Triton serves. Outside Triton there is no ``triton_python_backend_utils``: an empty
module stands in for it, enough for ``initialize`` and ``forward``, which never use it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

from embedded.triton import DEFAULT_REPOSITORY

#: the model version loaded (the committed one)
VERSION = "1"
#: the module every backend imports; only ``execute`` uses it
TRITON_UTILS = "triton_python_backend_utils"


def config_parameters(model_dir: Path) -> dict[str, str]:
    """``parameters`` of a generated ``config.pbtxt`` (key -> string value, unescaped)."""
    text = (model_dir / "config.pbtxt").read_text()
    pattern = r'key: "([^"]+)"\s*value: \{ string_value: "((?:[^"\\]|\\.)*)" \}'
    return {key: re.sub(r"\\(.)", r"\1", value) for key, value in re.findall(pattern, text)}


def load_backend(name: str, *, repository: Path = DEFAULT_REPOSITORY, device: str = "cpu") -> Any:
    """``TritonPythonModel`` of model ``name``, initialised as Triton would on ``device``."""
    model_dir = repository / name
    if TRITON_UTILS not in sys.modules:
        sys.modules[TRITON_UTILS] = types.ModuleType(TRITON_UTILS)
    spec = importlib.util.spec_from_file_location(f"atelier_backend_{name}", model_dir / VERSION / "model.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no backend for {name} in {model_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its helpers (noise, padded) stay reachable by name
    spec.loader.exec_module(module)
    parameters = {key: {"string_value": value} for key, value in config_parameters(model_dir).items()}
    kind, _, index = device.partition(":")
    backend = module.TritonPythonModel()
    backend.initialize(
        {
            "model_config": json.dumps({"parameters": parameters}),
            "model_instance_kind": "GPU" if kind == "cuda" else "CPU",
            "model_instance_device_id": index or "0",
        }
    )
    return backend
