"""CPU kernel paths, forced through the libraries' own variables, so one machine stands in for
several: MKL takes other code on Intel than on AMD, and oneDNN and ATen pick by instruction set.
Each must be set before torch loads, so every path runs in a child process (``bench.determinism.run``).
"""

from __future__ import annotations

#: name -> the variables that force it; ``default`` is what this machine picks by itself
KERNEL_PATHS: dict[str, dict[str, str]] = {
    "default": {},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "MKL_CBWR=AVX2": {"MKL_CBWR": "AVX2"},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "ONEDNN_MAX_CPU_ISA=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
}
#: the paths CI checks besides the default (tests/unit/test_determinism.py)
CI_PATHS = ("MKL_CBWR=COMPATIBLE", "ONEDNN_MAX_CPU_ISA=AVX2", "ONEDNN_MAX_CPU_ISA=SSE41")
