"""``python -m bench.perf [--quick|--full] [--only NAME ...] [--gpu]``: run the performance
benchmarks and regenerate ``BENCHMARKS.md``, ``bench/perf/results.json`` and the plots.

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

from bench.perf import backlog, ceiling, inprocess, pipeline, result_path, scaling
from bench.perf.report import CURRENT_BASELINE, save
from bench.perf.rig import Environment
from bench.perf.sizes import SIZES

#: every benchmark, in the order they run
BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "ceiling": ceiling.run,
    "result_path": result_path.run,
    "pipeline": pipeline.run,
    "inprocess": inprocess.run,
    "backlog": backlog.run,
    "scaling": scaling.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", dest="size", action="store_const", const="quick", help="~5 min, 300-job backlog"
    )
    size.add_argument(
        "--full", dest="size", action="store_const", const="full", help="longer windows, more jobs"
    )
    size.add_argument("--tiny", dest="size", action="store_const", const="tiny", help="the CI smoke size")
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
    parser.add_argument("--workdir", type=Path, help="logs and S3 data (default: a temporary folder)")
    parser.add_argument("--no-report", action="store_true", help="print the results; write no files")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write results.json, BENCHMARKS.md and the plots here instead of the committed ones",
    )
    args = parser.parse_args(argv)
    size_name = args.size or "default"
    names = args.only or list(BENCHMARKS)
    command = shlex.join(["python", "-m", "bench.perf", *(argv if argv is not None else sys.argv[1:])])
    console = Console()
    results: dict[str, Any] = {}

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="atelier-perf-"))
        )
        progress = stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=console,
            )
        )
        overall = progress.add_task(f"bench.perf ({size_name}): starting Triton and S3", total=len(names))
        env = stack.enter_context(
            Environment(workdir, gpu=args.gpu, private_services=not args.shared_services)
        )
        for name in names:
            progress.update(overall, description=f"bench.perf ({size_name}): {name}")
            t0 = time.perf_counter()
            results[name] = {
                **BENCHMARKS[name](env, SIZES[size_name]),
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            progress.console.print(f"[green]{name}[/] done in {results[name]['wall_s']} s")
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
