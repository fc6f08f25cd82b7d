"""``python -m bench.determinism [--quick] [--device cuda --results FILE]``: the seed contract,
measured.

For every kernel path (``paths.KERNEL_PATHS``, each forced in a child process) and every serving
strategy (``invariance``), how many of an item's placements in other batches change its bytes, and
what the strategy costs (images/s at batch 64, ms for a lone item). The items' bytes alone are then
compared across paths: what a seed gives on one machine against another. Writes
``bench/determinism/results.json``, ``docs/benchmarks/determinism.png`` and the generated report
``docs/benchmarks/determinism.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress

from bench.determinism.invariance import MODELS
from bench.determinism.paths import KERNEL_PATHS
from bench.determinism.report import write_report
from bench.faults.report import machine

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"
#: every strategy checked, and the ones whose cost is timed on the default path
STRATEGIES = ("fixed", "fixed-4", "fixed-16", "fixed-1", "multiple-4", "multiple-4-step-8")
QUICK_STRATEGIES = ("fixed", "multiple-4")
QUICK_PATHS = ("default", "MKL_CBWR=COMPATIBLE", "ONEDNN_MAX_CPU_ISA=AVX2")


def run_path(
    name: str, strategies: tuple[str, ...], folder: Path, *, timed: bool, device: str = "cpu"
) -> dict[str, Any]:
    """``bench.determinism.run`` in a child process with kernel path ``name`` forced."""
    out = folder / f"{len(list(folder.iterdir()))}.json"
    command = [sys.executable, "-m", "bench.determinism.run", "--out", str(out)]
    command += [arg for kind in strategies for arg in ("--strategy", kind)]
    command += ["--timed"] if timed else []
    command += ["--device", device]
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    finished = subprocess.run(command, env=env | KERNEL_PATHS[name], capture_output=True, text=True)
    if not out.exists():
        raise RuntimeError(f"kernel path {name} failed:\n{finished.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["images"] = out.with_suffix(".npz")
    return result


def across_paths(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per path and model: pixels whose value differs from the default path's, items alone."""
    default = np.load(paths["default"]["images"])
    compared: dict[str, dict[str, Any]] = {}
    for name, result in paths.items():
        images = np.load(result["images"])
        compared[name] = {}
        for model in MODELS:
            differ = images[model].astype(np.int16) - default[model]
            compared[name][model] = {
                "items_differing": int(np.any(differ != 0, axis=(1, 2, 3)).sum()),
                "items": len(differ),
                "pixel_fraction": round(float(np.mean(differ != 0)), 6),
                "max_levels": int(np.abs(differ).max()),
            }
    return compared


def main(
    quick: Annotated[bool, typer.Option(help="3 kernel paths, 2 strategies")] = False,
    device: Annotated[str, typer.Option(help="cpu, or cuda on a GPU machine (default path only)")] = "cpu",
    results_file: Annotated[Path, typer.Option("--results", help="where the results go")] = RESULTS,
) -> None:
    console = Console(stderr=True)
    names = ("default",) if device != "cpu" else QUICK_PATHS if quick else tuple(KERNEL_PATHS)
    strategies = QUICK_STRATEGIES if quick else STRATEGIES
    paths: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder, Progress(console=console) as progress:
        task = progress.add_task("kernel paths", total=len(names))
        for name in names:
            progress.update(task, description=f"kernel path {name}")
            paths[name] = run_path(name, strategies, Path(folder), timed=True, device=device)
            progress.advance(task)
        compared = across_paths(paths)
    results = {
        "machine": machine() if device == "cpu" else f"{machine()} + {device}",
        "device": device,
        "paths": {name: {"env": r["env"], "models": r["models"]} for name, r in paths.items()},
        "across_paths": compared,
    }
    results_file.write_text(json.dumps(results, indent=2) + "\n")
    if results_file != RESULTS:
        console.print(f"wrote {results_file}")
        return
    report = write_report(results)
    console.print(f"wrote {RESULTS}, {report}")


if __name__ == "__main__":
    typer.run(main)
