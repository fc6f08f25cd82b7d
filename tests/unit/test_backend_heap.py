"""Every backend keeps freed memory in its process's heap (``keep_freed_memory``, glibc's
``mallopt``), so a forward reuses the last one's pages instead of faulting in fresh zeroed ones; and
the committed ``model.py`` files are the sources export copies."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from embedded.triton import DEFAULT_REPOSITORY
from serving_contract.tensors import MODELS, ModelSpec
from tests.fake_backend import parse_config
from training.export import BACKENDS_DIR

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def committed_backend(spec: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The committed ``model.py`` of ``spec`` as a module, its ``triton_python_backend_utils`` faked."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.SimpleNamespace())
    path = DEFAULT_REPOSITORY / spec.name / "1" / "model.py"
    loader = importlib.util.spec_from_file_location(f"heap_{spec.name}", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return 1


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.name)
def test_every_backend_fixes_glibcs_thresholds_when_it_initialises(
    spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = committed_backend(spec, monkeypatch)
    libc = FakeLibc()
    monkeypatch.setattr(module.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the test process keeps its own
    config = parse_config(DEFAULT_REPOSITORY / spec.name / "config.pbtxt")
    parameters = {key: {"string_value": value.string_value} for key, value in config.parameters.items()}
    module.TritonPythonModel().initialize(
        {"model_config": json.dumps({"parameters": parameters}), "model_instance_kind": "CPU"}
    )
    assert libc.calls == [
        (module.M_MMAP_THRESHOLD, module.MMAP_THRESHOLD_BYTES),
        (module.M_TRIM_THRESHOLD, module.TRIM_THRESHOLD_BYTES),
    ]
    assert module.MMAP_THRESHOLD_BYTES <= module.TRIM_THRESHOLD_BYTES


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.name)
def test_a_c_library_without_mallopt_is_left_as_it_is(
    spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = committed_backend(spec, monkeypatch)
    monkeypatch.setattr(module.ctypes, "CDLL", lambda name: types.SimpleNamespace())
    module.keep_freed_memory()  # no mallopt (not glibc): nothing to set, nothing raised


#: a child process: how many bytes glibc maps for a 48 MiB block (above its adaptive ceiling of
#: 32 MiB) before and after the backend's ``keep_freed_memory``
MAPPED_BLOCK = """
import ctypes, importlib.util, sys, types
sys.modules["triton_python_backend_utils"] = types.SimpleNamespace()
spec = importlib.util.spec_from_file_location("backend", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p

def mapped_for(size):
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(ctypes.c_void_p(block))
    return mapped

default = mapped_for(48 << 20)
module.keep_freed_memory()
print(default, mapped_for(48 << 20))
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc 2.33+ (mallinfo2)")
def test_after_keep_freed_memory_a_large_block_comes_from_the_heap_not_its_own_mapping() -> None:
    backend = DEFAULT_REPOSITORY / "product_cgan" / "1" / "model.py"
    found = subprocess.run(
        [sys.executable, "-c", MAPPED_BLOCK, str(backend)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    default, kept = (int(n) for n in found.stdout.split())
    assert default >= 48 << 20  # glibc's default: its own mapping, unmapped again when freed
    assert kept == 0


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.name)
def test_the_committed_backend_is_the_source_export_copies(spec: ModelSpec) -> None:
    committed = DEFAULT_REPOSITORY / spec.name / "1" / "model.py"
    assert committed.read_text() == (BACKENDS_DIR / f"{spec.name}.py").read_text()
