"""Benchmark 2, the pipeline at saturation: producer -> RabbitMQ -> listing workers -> Triton ->
S3 -> ``succeeded`` -> callback worker -> the receiver, in images per second.

The jobs are published first (the queue is a backlog: saturation), then the workers start; the
window runs from the first job's ``started_at`` to the last job's ``finished_at`` (stored) and
to the last ``job.succeeded`` callback received (end to end), so worker start-up is not counted.
While it runs, each worker's pool processes are sampled for RSS; CPU seconds of the workers,
Triton (with its python-backend stubs) and SeaweedFS over the run say where the cores went.

:func:`run_jobs` is shared with the in-process alternative and the scaling sweep (same jobs,
same layout; only the app, the process count or Triton's settings differ).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from bench.perf.rig import TRITON_APP, Environment, PipelineRig, process_stats
from bench.perf.sizes import Size
from core.contracts.jobs import JobState

#: callback worker processes in every pipeline run (cheap HTTP work, its own queue)
CALLBACK_PROCESSES = 1


def run_jobs(
    env: Environment,
    *,
    tag: str,
    jobs: int,
    processes: int,
    app: str = TRITON_APP,
    threads: int = 1,
    grpc_url: str | None = None,
    triton_pid: int | None = None,
) -> dict[str, Any]:
    """Publish ``jobs`` listing jobs, start ``processes`` listing worker processes of ``app`` and
    one callback worker, and measure until every job's callback arrived."""
    triton_pid = triton_pid if grpc_url else env.triton_pid
    with PipelineRig(env, tag, grpc_url=grpc_url) as rig:
        requests = [rig.listing(i) for i in range(jobs)]
        images = sum(r["variants"] for r in requests)
        t0 = time.perf_counter()
        job_ids = rig.submit_all(requests)
        publish_s = time.perf_counter() - t0

        rss_samples: list[float] = []
        sampling = threading.Event()
        rig.start_workers(
            {"listing": (processes, app), "callbacks": (CALLBACK_PROCESSES, TRITON_APP)}, threads=threads
        )
        before = {
            "listing": rig.stats("listing").cpu_s,
            "callbacks": rig.stats("callbacks").cpu_s,
            "triton": process_stats(triton_pid).cpu_s,
            "s3": process_stats(env.s3.pid).cpu_s,
        }

        def sample() -> None:
            while not sampling.wait(0.5):
                rss_samples.extend(rig.stats("listing").rss_mb)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        records = rig.wait_terminal(job_ids, timeout_s=120 + jobs * 2.0)
        rig.env.receiver.wait_for(lambda _: len(rig.callbacks_at(job_ids)) >= len(job_ids), timeout_s=30)
        sampling.set()
        sampler.join()
        listing = rig.stats("listing")
        after = {
            "listing": listing.cpu_s,
            "callbacks": rig.stats("callbacks").cpu_s,
            "triton": process_stats(triton_pid).cpu_s,
            "s3": process_stats(env.s3.pid).cpu_s,
        }
        rss_samples.extend(listing.rss_mb)

    succeeded = [r for r in records.values() if r.state is JobState.SUCCEEDED]
    first = min(r.started_at.timestamp() for r in succeeded if r.started_at)
    last = max(r.finished_at.timestamp() for r in succeeded if r.finished_at)
    callbacks = rig.callbacks_at(job_ids)
    last_callback = max(callbacks.values()) if callbacks else last
    done_images = sum(len(r.results) for r in succeeded)
    cpu = {role: after[role] - before[role] for role in before}
    return {
        "app": app,
        "processes": processes,
        "jobs": jobs,
        "images": images,
        "succeeded": len(succeeded),
        "images_stored_per_s": round(done_images / max(last - first, 1e-6), 1),
        "images_per_s": round(done_images / max(last_callback - first, 1e-6), 1),
        "window_s": round(last_callback - first, 2),
        "callbacks_received": len(callbacks),
        "publish_ms_per_job": round(1000 * publish_s / jobs, 2),
        "worker_rss_mb": round(max(rss_samples), 1) if rss_samples else 0.0,
        "worker_rss_mb_median": round(float(np.median(rss_samples)), 1) if rss_samples else 0.0,
        "cpu_ms_per_image": {k: round(1000 * v / max(done_images, 1), 2) for k, v in cpu.items()},
    }


def run(env: Environment, size: Size) -> dict[str, Any]:
    """The pipeline at each process count of ``size`` (the ratios are taken in ``report``)."""
    points = [run_jobs(env, tag=f"pipe{p}", jobs=size.listing_jobs, processes=p) for p in size.processes]
    best = max(points, key=lambda p: p["images_per_s"])
    return {"points": points, "best": best}
