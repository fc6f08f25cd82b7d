"""``python -m bench.worker_pool [--jobs N] [--rounds R] [--design NAME ...]``: the listing
worker's pool designs on the same services, in one run, round after round in turn.

Each point publishes ``jobs`` listing jobs (4 variants, 256 px PNG, the catalog default) as a
backlog, starts the listing worker of the design and one callback worker, and waits until every
``job.succeeded`` callback arrived (``bench.perf.pipeline``'s window: first ``started_at`` to the
last callback). It reports images/s, CPU ms per image of the listing worker (all its processes),
the callback worker, Triton and S3, and the batch size Triton's dynamic batcher formed for
``product_cgan`` (images inferred / model executions, from Triton's statistics). The medians
over the rounds go to ``bench/worker_pool/results.json`` and ``docs/benchmarks/worker-pool.{md,png}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient
from rich.console import Console

from bench.perf.rig import TRITON_APP, Environment, PipelineRig, process_stats
from core.contracts.jobs import JobState
from embedded.triton import TritonServer

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "worker_pool" / "results.json"
MARKDOWN = ROOT / "docs" / "benchmarks" / "worker-pool.md"
PLOT = ROOT / "docs" / "benchmarks" / "worker-pool.png"
#: the model a listing job calls
MODEL = "product_cgan"


@dataclass(frozen=True)
class Design:
    """A listing worker: Celery ``pool`` and its ``concurrency`` (processes or threads)."""

    pool: str
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.pool} x{self.concurrency}"


DESIGNS = {
    d.name: d
    for d in (
        Design("prefork", 1),
        Design("prefork", 4),
        Design("threads", 4),
        Design("threads", 8),
        Design("threads", 16),
    )
}


def batcher_counts(grpc_url: str) -> tuple[int, int]:
    """``(images inferred, model executions)`` of ``product_cgan`` since Triton started."""
    client = grpcclient.InferenceServerClient(url=grpc_url)
    try:
        stats = client.get_inference_statistics(model_name=MODEL, as_json=True)
    finally:
        client.close()
    inferred = executed = 0
    for model in stats.get("model_stats", []):
        inferred += int(model.get("inference_count", 0))
        executed += int(model.get("execution_count", 0))
    return inferred, executed


def run_point(env: Environment, design: Design, jobs: int, tag: str) -> dict[str, Any]:
    """One design on ``jobs`` listing jobs published beforehand (a backlog)."""
    with PipelineRig(env, tag) as rig:
        job_ids = rig.submit_all(rig.listing(i) for i in range(jobs))
        rig.start_workers(
            {"listing": (design.concurrency, TRITON_APP), "callbacks": (4, TRITON_APP)},
            env={
                "listing": {"ATELIER_WORKER_POOL": design.pool},
                "callbacks": {"ATELIER_WORKER_POOL": "threads"},
            },
        )
        before = _cpu(env, rig)
        counts_before = batcher_counts(env.grpc_url)
        records = rig.wait_terminal(job_ids, timeout_s=120 + jobs * 2.0)
        env.receiver.wait_for(lambda _: len(rig.callbacks_at(job_ids)) >= len(job_ids), timeout_s=60)
        after = _cpu(env, rig)
        counts_after = batcher_counts(env.grpc_url)
        rss = rig.stats("listing").rss_mb
    succeeded = [r for r in records.values() if r.state is JobState.SUCCEEDED]
    images = sum(len(r.results) for r in succeeded)
    first = min(r.started_at.timestamp() for r in succeeded if r.started_at)
    last_callback = max(rig.callbacks_at(job_ids).values())
    inferred = counts_after[0] - counts_before[0]
    executed = counts_after[1] - counts_before[1]
    return {
        "design": design.name,
        "jobs": jobs,
        "succeeded": len(succeeded),
        "images": images,
        "images_per_s": round(images / max(last_callback - first, 1e-6), 1),
        "cpu_ms_per_image": {k: round(1000 * (after[k] - before[k]) / max(images, 1), 2) for k in before},
        # started after the workers were ready: the first jobs' calls are not counted
        "triton_batch_mean": round(inferred / executed, 1) if executed else 0.0,
        "worker_rss_mb": round(sum(rss), 1),
    }


def _cpu(env: Environment, rig: PipelineRig) -> dict[str, float]:
    return {
        "worker": rig.stats("listing").cpu_s,
        "callbacks": rig.stats("callbacks").cpu_s,
        "triton": process_stats(env.triton_pid).cpu_s,
        "s3": process_stats(env.s3.pid).cpu_s,
    }


def medians(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per design: the median of each figure over its rounds."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(p["design"] for p in points):
        mine = [p for p in points if p["design"] == name]
        out[name] = {
            "rounds": len(mine),
            "images_per_s": statistics.median(p["images_per_s"] for p in mine),
            "triton_batch_mean": statistics.median(p["triton_batch_mean"] for p in mine),
            "worker_rss_mb": statistics.median(p["worker_rss_mb"] for p in mine),
            "cpu_ms_per_image": {
                k: round(statistics.median(p["cpu_ms_per_image"][k] for p in mine), 2)
                for k in mine[0]["cpu_ms_per_image"]
            },
        }
    return out


def render(data: dict[str, Any]) -> str:
    rows = [
        "# Listing worker pool: prefork vs threads",
        "",
        f"`{data['command']}`, {data['ran_at']}, {data['machine']}. {data['jobs']} listing jobs "
        "(4 variants, 256 px PNG) per point, published first; medians of "
        f"{data['rounds']} rounds, designs in turn within each round. Written by `bench/worker_pool`.",
        "",
        "![worker pool](worker-pool.png)",
        "",
        "| design | images/s | Triton batch (mean) | listing worker RSS MB (all processes) "
        "| CPU ms/img: worker | callbacks | Triton | S3 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in data["medians"].items():
        cpu = m["cpu_ms_per_image"]
        rows.append(
            f"| {name} | {m['images_per_s']} | {m['triton_batch_mean']} | {m['worker_rss_mb']} "
            f"| {cpu['worker']} | {cpu['callbacks']} | {cpu['triton']} | {cpu['s3']} |"
        )
    rows += [
        "",
        "How to read it: `images/s` runs from the first job's start to the last `job.succeeded`",
        "callback; CPU ms per image are each process tree's CPU seconds over the point (the listing",
        "worker with all its pool processes), divided by the images stored. `Triton batch` is",
        "`product_cgan`'s images inferred per model execution: above 4 (one job's variants), the",
        "dynamic batcher merged calls of different jobs. The machine is shared (2 cores, other",
        "work running), so only ratios within this run mean anything; Triton's CPU per image here",
        "is several times what BENCHMARKS.md measured on a quieter machine.",
        "",
        "Chosen: `threads`, 8 in flight per process (`ATELIER_WORKER_CONCURRENCY`, default 8).",
        "More processes (prefork x4) form the same batches as 4 threads at 3.4 times the memory",
        "and more worker CPU per image; 16 threads form larger batches still, worth it where",
        "Triton runs on a GPU and the worker has cores of its own.",
    ]
    return "\n".join(rows) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(data["medians"])
    med = data["medians"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(names, [med[n]["images_per_s"] for n in names], color="tab:blue")
    left.set_ylabel("images/s (to callback)")
    left.set_title("throughput")
    bottom = [0.0] * len(names)
    for part, colour in (
        ("worker", "tab:orange"),
        ("callbacks", "tab:green"),
        ("triton", "tab:red"),
        ("s3", "tab:gray"),
    ):
        values = [med[n]["cpu_ms_per_image"][part] for n in names]
        right.bar(names, values, bottom=bottom, label=part, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.set_ylabel("CPU ms per image")
    right.set_title("where the CPU went")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_pool", description=__doc__)
    parser.add_argument("--jobs", type=int, default=48, help="listing jobs per point (default 48)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the designs (default 3)")
    parser.add_argument("--design", action="append", choices=list(DESIGNS), help="repeatable; default all")
    parser.add_argument(
        "--repository",
        type=Path,
        help="the Triton model repository to serve (default the working tree's triton_models/)",
    )
    parser.add_argument("--no-report", action="store_true", help="print the results; write no files")
    args = parser.parse_args(argv)
    designs = [DESIGNS[n] for n in (args.design or list(DESIGNS))]
    console = Console()
    points: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="atelier-pool-")))
        triton_url = None
        if args.repository is not None:
            triton = TritonServer(args.repository, state_dir=workdir, log_path=workdir / "triton.log")
            triton_url = stack.enter_context(triton).grpc_url
        env = stack.enter_context(Environment(workdir, triton_grpc_url=triton_url))
        if args.repository is not None:
            env.triton_pid = triton.pid
        warm = run_point(env, designs[0], 8, "warm")  # Triton's and S3's first calls, not counted
        console.print(f"warm-up: {warm['images_per_s']} images/s")
        for round_ in range(args.rounds):
            order = designs if round_ % 2 == 0 else designs[::-1]
            for design in order:
                t0 = time.perf_counter()
                point = run_point(env, design, args.jobs, f"r{round_}-{design.pool}{design.concurrency}")
                points.append({**point, "round": round_})
                console.print(
                    f"round {round_ + 1}/{args.rounds} {design.name}: {point['images_per_s']} images/s, "
                    f"worker {point['cpu_ms_per_image']['worker']} CPU ms/img, "
                    f"Triton batch {point['triton_batch_mean']} ({time.perf_counter() - t0:.0f} s)"
                )
    from bench.faults.report import machine

    data = {
        "command": "python -m bench.worker_pool "
        + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "ran_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "jobs": args.jobs,
        "rounds": args.rounds,
        "medians": medians(points),
        "points": points,
    }
    if args.no_report:
        console.print_json(data=data)
        return 0
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    MARKDOWN.write_text(render(data))
    plot(data, PLOT)
    console.print(render(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
