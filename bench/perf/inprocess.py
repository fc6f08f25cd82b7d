"""Benchmark 3, the alternative a user would pick: Celery workers running the same TorchScript
model in-process (``bench.perf.inprocess_app``), no Triton, on the same machine and the same jobs
as the pipeline benchmark: throughput, latency (window) and RSS per worker process.

Each in-process worker gets ``cores // processes`` torch threads (at least 1), so neither side
is handicapped by oversubscribing the cores; Triton's own instance uses torch's default.
"""

from __future__ import annotations

import os
from typing import Any

from bench.perf.pipeline import run_jobs
from bench.perf.rig import INPROCESS_APP, Environment
from bench.perf.sizes import Size


def run(env: Environment, size: Size) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    points = [
        run_jobs(
            env,
            tag=f"inproc{p}",
            jobs=size.listing_jobs,
            processes=p,
            app=INPROCESS_APP,
            threads=max(1, cores // p),
            pool="prefork",  # the model in each process: one job per process, as a user runs it
        )
        for p in size.processes
    ]
    best = max(points, key=lambda p: p["images_per_s"])
    return {"points": points, "best": best}
