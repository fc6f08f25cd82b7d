"""``python -m bench.api.async_ab``: the submit routes in submit threads (``api``) against the
asyncio path (``api-async``, ``ATELIER_API_ASYNC_SUBMIT=true``), side by side with direct
``Producer.submit``, in one run (issue 13: does the asyncio core close the API's p99 gap?).

Both APIs run at once on the same namespace and keys (``bench.api.rig``'s ``variants``); every
round measures every mode at each concurrency, in an order that rotates from round to round, and
each point is the median over its rounds (``bench.api.rounds``): the machine is shared, so only
figures from the same run compare. Writes ``bench/api/async_ab.json`` and ``async_ab.png``
beside it: p99 / direct p99 and the API process's CPU per submit, for each API.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bench.api.load import measure
from bench.api.rig import running_api
from bench.api.rounds import combined
from bench.faults.report import machine

RESULTS = Path(__file__).parent / "async_ab.json"
FIGURE = Path(__file__).parent / "async_ab.png"
LEVELS = (1, 8, 32)
#: the modes compared: direct, the API on submit threads, the API on the asyncio path
MODES = ("direct", "api", "api-async")
VARIANTS = {"api-async": {"ATELIER_API_ASYNC_SUBMIT": "true"}}


def run(*, rounds: int, duration_s: float, warmup_s: float, console: Console) -> dict[str, Any]:
    measured: dict[tuple[str, int], list[dict[str, Any]]] = {}
    load_average = round(os.getloadavg()[0], 2)
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-ab-") as workdir,
        running_api(clients=max(LEVELS), workdir=Path(workdir), variants=VARIANTS) as rig,
    ):
        rigs = {"direct": rig, "api": rig, **rig.variants}
        for round_index in range(rounds):
            for level in LEVELS:
                shift = round_index % len(MODES)
                for mode in MODES[shift:] + MODES[:shift]:
                    point = measure(
                        rigs[mode],
                        "direct" if mode == "direct" else "api",
                        level,
                        duration_s=duration_s,
                        warmup_s=warmup_s,
                    )
                    row = dataclasses.replace(point, mode=mode).as_dict()  # type: ignore[arg-type]
                    measured.setdefault((mode, level), []).append(row)
                    console.print(
                        f"round {round_index + 1}/{rounds} x{level:<2} {mode:>9}: "
                        f"p99 {row['latency_ms']['p99']:.2f} ms, {row['submits_per_s']:.0f}/s, "
                        f"API CPU {row['cpu_ms_per_submit']['server']} ms/submit, errors {row['errors']}"
                    )
    points = [combined(measured[(mode, level)]) for level in LEVELS for mode in MODES]
    by = {(p["mode"], p["concurrency"]): p for p in points}
    comparison = [
        {
            "concurrency": level,
            **{
                f"{mode}_p99_ratio": round(
                    by[(mode, level)]["latency_ms"]["p99"] / by[("direct", level)]["latency_ms"]["p99"], 3
                )
                for mode in MODES[1:]
            },
            **{
                f"{mode}_cpu_ms_per_submit": by[(mode, level)]["cpu_ms_per_submit"]["server"]
                for mode in MODES[1:]
            },
        }
        for level in LEVELS
    ]
    return {
        "machine": machine(),
        "command": "python -m bench.api.async_ab",
        "load_average": load_average,
        "load_average_end": round(os.getloadavg()[0], 2),
        "rounds": rounds,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "points": points,
        "comparison": comparison,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """p99 / direct p99 and API CPU per submit for each API, by concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["comparison"]
    levels = [row["concurrency"] for row in rows]
    figure, (ratio_axis, cpu_axis) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.35
    for offset, (mode, label) in enumerate([("api", "submit threads"), ("api-async", "asyncio")]):
        xs = [i + (offset - 0.5) * width for i in range(len(levels))]
        ratio_axis.bar(xs, [row[f"{mode}_p99_ratio"] for row in rows], width, label=label)
        cpu_axis.bar(xs, [row[f"{mode}_cpu_ms_per_submit"] or 0 for row in rows], width, label=label)
    ratio_axis.axhline(1.5, color="red", linestyle="--", label="target 1.5x")
    for axis, title in ((ratio_axis, "API p99 / direct p99"), (cpu_axis, "API CPU ms per submit")):
        axis.set_xticks(range(len(levels)), [f"{level} clients" for level in levels])
        axis.set_title(title)
        axis.legend()
    figure.suptitle(f"submit threads vs asyncio, medians of {results['rounds']} rounds (same run)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(
    rounds: Annotated[int, typer.Option(help="rounds per point (medians over them)")] = 5,
    duration_s: Annotated[float, typer.Option("--duration", help="seconds measured per point")] = 3.0,
    warmup_s: Annotated[float, typer.Option("--warmup", help="seconds before each point")] = 0.5,
    results_path: Annotated[Path, typer.Option("--results")] = RESULTS,
) -> None:
    """Submit threads against the asyncio submit path, beside direct submits, in one run."""
    console = Console()
    results = run(rounds=rounds, duration_s=duration_s, warmup_s=warmup_s, console=console)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, results_path.with_suffix(".png"))
    for row in results["comparison"]:
        console.print(row)
    console.print(f"wrote {results_path} and {results_path.with_suffix('.png')}")


if __name__ == "__main__":
    typer.run(main)
