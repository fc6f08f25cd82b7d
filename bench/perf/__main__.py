"""``python -m bench.perf [--quick|--full] [--only NAME ...] [--before REF] [--gpu]``: run the
performance benchmarks and regenerate ``BENCHMARKS.md``, ``bench/perf/results.json`` and the plots.

The pipeline and the in-process alternative (and with ``--before REF``, the pipeline with REF's
worker: ``bench.perf.before``) run together, round by round, at each process count one after
the other (``bench.perf.rounds.schedule``); the other benchmarks run once each, in turn.

Starts its own Triton (``embedded/triton.py``; ``--gpu`` or ``ATELIER_BENCH_GPU=1`` serves a
``KIND_GPU`` copy of the repository), S3, and a RabbitMQ node and a Redis server of its own, so
every process's CPU is the run's (``--shared-services``: RabbitMQ and Redis from
``ATELIER_BROKER_URL`` / ``ATELIER_REDIS_URL``, ``scripts/services.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.perf import backlog, before, ceiling, inprocess, pipeline, result_path, scaling
from bench.perf.report import CURRENT_BASELINE, save
from bench.perf.rig import Environment
from bench.perf.rounds import BEFORE, Step, schedule
from bench.perf.sizes import SIZES, Size

#: every benchmark, in the order they run
BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "ceiling": ceiling.run,
    "result_path": result_path.run,
    "pipeline": pipeline.run,
    "inprocess": inprocess.run,
    "backlog": backlog.run,
    "scaling": scaling.run,
}
#: how the progress lines name a benchmark measured in rounds
ROUND_TITLES = {BEFORE: "pipeline before", "pipeline": "pipeline", "inprocess": "in-process"}


def measure(env: Environment, size: Size, step: Step, ref: before.Before | None) -> dict[str, Any]:
    """One point of a round (``step``); ``ref``: REF's tree, for the ``pipeline_before`` points."""
    assert step.round is not None and step.processes is not None
    if step.benchmark == "inprocess":
        return inprocess.point(env, size, step.processes, round_=step.round)
    at = ref if step.benchmark == BEFORE else None
    return pipeline.point(env, size, step.processes, round_=step.round, before=at)


def summaries(
    env: Environment, size: Size, measured: dict[str, list[dict[str, Any]]], ref: before.Before | None
) -> dict[str, dict[str, Any]]:
    """Each benchmark measured in rounds, from its points of every round (their seconds added up)."""
    found: dict[str, dict[str, Any]] = {}
    for name, points in measured.items():
        if name == "inprocess":
            result = inprocess.summary(points)
        elif name == BEFORE:
            assert ref is not None
            result = before.summary(ref, points)
        else:
            result = pipeline.summary(env, size, points)
        found[name] = {**result, "wall_s": round(sum(p["wall_s"] for p in points), 1)}
    return found


def point_line(step: Step, point: dict[str, Any], rounds: int) -> str:
    """The progress line of one point: its throughput and, for the Triton pipeline, orchestration CPU."""
    orchestration = point.get("orchestration_ms_per_image")
    return (
        f"round {(step.round or 0) + 1}/{rounds} "
        f"[green]{ROUND_TITLES[step.benchmark]}[/] {step.processes} proc: {point['images_per_s']} images/s"
        + (f", orchestration {orchestration} ms/image" if orchestration is not None else "")
        + f" ({point['wall_s']} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    size_flags = parser.add_mutually_exclusive_group()
    size_flags.add_argument(
        "--quick", dest="size", action="store_const", const="quick", help="~5 min, 300-job backlog"
    )
    size_flags.add_argument(
        "--full", dest="size", action="store_const", const="full", help="longer windows, more jobs"
    )
    size_flags.add_argument(
        "--tiny", dest="size", action="store_const", const="tiny", help="the CI smoke size"
    )
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), help="repeatable; default all")
    parser.add_argument(
        "--gpu",
        action="store_true",
        default=os.environ.get("ATELIER_BENCH_GPU") == "1",
        help="serve the models on KIND_GPU instances (also ATELIER_BENCH_GPU=1)",
    )
    parser.add_argument(
        "--shared-services",
        action="store_true",
        help="use the machine's RabbitMQ and Redis (ATELIER_BROKER_URL / ATELIER_REDIS_URL) instead of "
        "starting a node and a server for the run (their CPU then includes every other client's)",
    )
    parser.add_argument(
        "--baseline", action="store_true", help="record these results as the 'before' figures"
    )
    parser.add_argument(
        "--baseline-name",
        default=CURRENT_BASELINE,
        help=f"which round of changes a --baseline run is the 'before' of (default {CURRENT_BASELINE})",
    )
    parser.add_argument(
        "--before",
        metavar="REF",
        help="also measure the pipeline with the worker of REF (a commit-ish, e.g. db5119c) in the same "
        "run, next to this one's at each process count of each round; the orchestration target "
        "then compares with it instead of the stored baseline",
    )
    parser.add_argument("--workdir", type=Path, help="logs and S3 data (default: a temporary folder)")
    parser.add_argument("--no-report", action="store_true", help="print the results; write no files")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write results.json, BENCHMARKS.md and the plots here instead of the committed ones",
    )
    args = parser.parse_args(argv)
    size_name = args.size or "default"
    size = SIZES[size_name]
    names = args.only or list(BENCHMARKS)
    if args.before:
        if "pipeline" not in names:
            parser.error("--before compares REF's pipeline with this one's: run the pipeline too")
        names.insert(names.index("pipeline"), BEFORE)
    steps = schedule(names, rounds=size.rounds, processes=size.processes)
    last_point = next((s for s in reversed(steps) if s.round is not None), None)
    command = shlex.join(["python", "-m", "bench.perf", *(argv if argv is not None else sys.argv[1:])])
    console = Console()
    results: dict[str, Any] = {}

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="atelier-perf-"))
        )
        try:
            ref = stack.enter_context(before.checkout(args.before, workdir)) if args.before else None
        except ValueError as error:
            parser.error(str(error))
        progress = stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
            )
        )
        overall = progress.add_task(f"bench.perf ({size_name}): starting Triton and S3", total=len(steps))
        env = stack.enter_context(
            Environment(workdir, gpu=args.gpu, private_services=not args.shared_services)
        )
        measured: dict[str, list[dict[str, Any]]] = {}
        for step in steps:
            t0 = time.perf_counter()
            if step.round is None:
                progress.update(overall, description=f"bench.perf ({size_name}): {step.benchmark}")
                results[step.benchmark] = {
                    **BENCHMARKS[step.benchmark](env, size),
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
                progress.console.print(
                    f"[green]{step.benchmark}[/] done in {results[step.benchmark]['wall_s']} s"
                )
            else:
                progress.update(
                    overall,
                    description=f"bench.perf ({size_name}): round {step.round + 1}/{size.rounds}, "
                    f"{ROUND_TITLES[step.benchmark]} at {step.processes} proc",
                )
                point = measure(env, size, step, ref)
                point["wall_s"] = round(time.perf_counter() - t0, 1)
                measured.setdefault(step.benchmark, []).append(point)
                progress.console.print(point_line(step, point, size.rounds))
                if step == last_point:
                    results.update(summaries(env, size, measured, ref))
            progress.advance(overall)
    if args.no_report:
        console.print_json(data=results)
        return 0
    where: dict[str, Any] = {}
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        where = {
            "json_path": args.output_dir / "results.json",
            "md_path": args.output_dir / "BENCHMARKS.md",
            "plots": args.output_dir / "plots",
        }
    data = save(
        results,
        command=command,
        size=size_name,
        gpu=args.gpu,
        as_baseline=args.baseline,
        baseline_name=args.baseline_name,
        **where,
    )
    for target, verdict in data["targets"].items():
        console.print(f"{target}: {verdict}")
    console.print(f"wrote {where.get('md_path', 'BENCHMARKS.md')} and its results and plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
