"""``python -m bench.api [--quick]``: the HTTP API's load benchmark.

At 1, 8 and 32 concurrent clients, submits per second and p50/p99 latency through
``POST /v1/listings`` side by side with direct ``Producer.submit``, in one run against the
machine's Redis, RabbitMQ (``ATELIER_REDIS_URL``, ``ATELIER_BROKER_URL``) and PostgreSQL
(``ATELIER_DATABASE_URL``): see ``bench.api.rig`` and ``bench.api.load``. Every point is measured
in several short rounds and reported by its medians over them (``bench.api.rounds``). Writes
``bench/api/results.json``, ``docs/benchmarks/api.png`` and the generated report
``docs/benchmarks/api.md`` with the ratio API p99 / direct p99 at each concurrency (issue 13's
target: at most 1.5x).
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from bench.api.load import Mode, measure
from bench.api.report import DOCS, ratios, write_report
from bench.api.rig import running_api
from bench.api.rounds import combined, order
from bench.faults.report import machine

RESULTS = Path(__file__).parent / "results.json"
#: the concurrencies measured (issue 13: 1, 8 and 32 clients)
LEVELS = (1, 8, 32)
#: the order the modes run in at each concurrency
MODES: tuple[Mode, ...] = ("direct", "api")


@dataclass(frozen=True)
class Size:
    """How often and how long each point runs: ``rounds`` times ``duration_s`` after a
    ``warmup_s`` each (new connections, the API's caches)."""

    rounds: int
    duration_s: float
    warmup_s: float


SIZES = {"default": Size(5, 5.0, 1.0), "quick": Size(3, 2.0, 0.5), "tiny": Size(1, 0.5, 0.2)}


def run(
    size: str = "default",
    *,
    results_path: Path = RESULTS,
    docs: Path = DOCS,
    console: Console | None = None,
) -> dict[str, Any]:
    """Measure every point, write the results and the report; returns the results."""
    console = console or Console()
    chosen = SIZES[size]
    measured: dict[tuple[Mode, int], list[dict[str, Any]]] = {}
    space = ""
    load_average = round(os.getloadavg()[0], 2)  # other work on the machine shows in the figures
    columns = (
        TextColumn("{task.description}", style="bold"),
        BarColumn(),
        TextColumn("{task.fields[calls]} submits"),
        TimeElapsedColumn(),
    )
    with tempfile.TemporaryDirectory(prefix="bench-api-") as workdir:
        console.print("starting the API on a private namespace and a fresh key store")
        with running_api(clients=max(LEVELS), workdir=Path(workdir)) as rig:
            space = rig.settings.exchange
            console.print(f"API at {rig.url}; logs in {workdir}/logs (removed at the end)")
            with Progress(*columns, console=console) as progress:
                for round_index in range(chosen.rounds):
                    for level in LEVELS:
                        for mode in order(round_index, MODES):
                            task = progress.add_task(
                                f"round {round_index + 1}/{chosen.rounds} {mode:>6} x{level:<2}",
                                total=chosen.warmup_s + chosen.duration_s,
                                calls=0,
                            )
                            point = measure(
                                rig,
                                mode,
                                level,
                                duration_s=chosen.duration_s,
                                warmup_s=chosen.warmup_s,
                                on_progress=reporter(progress, task),
                            )
                            measured.setdefault((mode, level), []).append(point.as_dict())
            console.print("stopping the API; deleting the queued jobs and the key store")
    points = [combined(measured[(mode, level)]) for level in LEVELS for mode in MODES]
    results: dict[str, Any] = {
        "machine": machine(),
        "command": shlex.join(["python", "-m", "bench.api", *([f"--{size}"] if size != "default" else [])]),
        "size": size,
        "namespace": space,
        "load_average": load_average,
        "load_average_end": round(os.getloadavg()[0], 2),
        "rounds": chosen.rounds,
        "duration_s": chosen.duration_s,
        "warmup_s": chosen.warmup_s,
        "points": points,
        "ratios": ratios(points),
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    report = write_report(results, docs=docs)
    for row in results["ratios"]:
        verdict = "[green]ok[/]" if row["meets_target"] else "[red]over 1.5x[/]"
        ratio = f"API p99 / direct p99 = {row['p99_ratio']}x"
        console.print(f"{row['concurrency']:>2} clients: {ratio} {verdict}")
    console.print(f"wrote {results_path}, {report} and its figure")
    return results


def reporter(progress: Progress, task: TaskID) -> Callable[[float, int], None]:
    """Show a point's elapsed time and submits so far on its bar."""

    def update(elapsed_s: float, calls: int) -> None:
        progress.update(task, completed=elapsed_s, calls=calls)

    return update


def main(
    quick: Annotated[bool, typer.Option(help="3 rounds of 2 s per point instead of 5 of 5 s")] = False,
    tiny: Annotated[bool, typer.Option(help="half a second per point (the smoke test)")] = False,
    results_path: Annotated[Path, typer.Option("--results", help="where the results go")] = RESULTS,
    docs: Annotated[Path, typer.Option(help="where api.md and api.png go")] = DOCS,
) -> None:
    """Submits/s and p50/p99 latency through the HTTP API and directly, at 1, 8 and 32 clients."""
    run("tiny" if tiny else "quick" if quick else "default", results_path=results_path, docs=docs)


if __name__ == "__main__":
    typer.run(main)
