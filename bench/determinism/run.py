"""One kernel path, in this process: ``python -m bench.determinism.run --out FILE [--strategy S ...]
[--timed] [--device cuda]``, with the path's variables already set by the caller (``bench.determinism``).

For each model and strategy it writes the placement failures found, and with ``--timed`` the
strategy's cost: images/s for a batch of 64 and the time of a lone item (medians). It also saves
each item's bytes alone (``FILE`` with ``.npz``), which the caller compares across paths. Exits 1
when the backends' own strategy (``fixed``) has a failure, so a test can run it as a check.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from bench.backends import load_backend
from bench.determinism.invariance import MODELS, Serve, failures, strategy

#: timing repeats (medians are reported)
BATCH_REPEATS = 7
LONE_REPEATS = 15
#: items in the timed batch (Triton's max_batch_size)
TIMED_BATCH = 64


def timing(serve: Serve) -> dict[str, float]:
    """Images/s on a batch of ``TIMED_BATCH`` items and milliseconds for one item, medians."""
    batch = list(range(TIMED_BATCH))
    serve(batch)  # TorchScript profiles new shapes on the first calls
    batches = []
    for _ in range(BATCH_REPEATS):
        started = time.perf_counter()
        serve(batch)
        batches.append(time.perf_counter() - started)
    lone = []
    for i in range(LONE_REPEATS):
        started = time.perf_counter()
        serve([i])
        lone.append(time.perf_counter() - started)
    return {
        "images_per_s": round(TIMED_BATCH / statistics.median(batches), 1),
        "lone_ms": round(1000 * statistics.median(lone), 2),
    }


def measure(
    strategies: list[str], *, timed: bool, device: str = "cpu"
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    results: dict[str, Any] = {}
    alone: dict[str, np.ndarray] = {}
    for name in MODELS:
        backend = load_backend(name, device=device)
        results[name] = {}
        for kind in strategies:
            serve = strategy(backend, name, kind)
            found, checked, images = failures(serve)
            entry: dict[str, Any] = {
                "failures": len(found),
                "checked": checked,
                "max_levels": max((f.levels for f in found), default=0),
                "example": None if not found else {"item": found[0].item, "batch": list(found[0].batch)},
            }
            if timed:
                entry |= timing(serve)
            results[name][kind] = entry
            if kind == "fixed":
                alone[name] = images
    return results, alone


def main(
    out: Annotated[Path, typer.Option(help="where the JSON results go (the images beside, .npz)")],
    strategies: Annotated[list[str], typer.Option("--strategy", help="strategies to check")] = ["fixed"],  # noqa: B006
    timed: Annotated[bool, typer.Option(help="also time each strategy")] = False,
    device: Annotated[str, typer.Option(help="cpu, or cuda[:N] on a GPU machine")] = "cpu",
) -> None:
    results, alone = measure(strategies, timed=timed, device=device)
    variables = ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
    env = {k: os.environ[k] for k in variables if k in os.environ}
    payload = {"env": env, "device": device, "models": results}
    out.write_text(json.dumps(payload, indent=2))
    np.savez_compressed(out.with_suffix(".npz"), **alone)
    broken = [name for name in MODELS if results[name].get("fixed", {}).get("failures")]
    if broken:
        typer.echo(f"placement failures with the backends' own strategy: {broken}", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
