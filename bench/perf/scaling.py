"""Benchmark 5, scaling: pipeline throughput against listing worker processes (1, 2, 4), with
Triton's dynamic batching on (the committed config) and off (a copy without the batcher), and
the CPU one image costs in the worker outside Triton, stage by stage.

The stage costs come from running ``worker.pipeline.run_listing`` in this process on real
clients (Redis, Triton, S3, the broker for callback messages), each boundary wrapped in a
per-thread CPU timer (``time.thread_time``), then ``worker.notifications.deliver_callback`` for
each job's ``job.succeeded`` the same way. What the worker process spends beyond their sum
(Celery, the message gate, AMQP) is the pipeline run's measured worker CPU per image minus it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from bench.perf.pipeline import run_jobs
from bench.perf.rig import Environment, PipelineRig
from bench.perf.sizes import Size
from core.contracts.jobs import JobEventType
from worker import notifications, pipeline
from worker.context import WorkerContext

F = TypeVar("F", bound=Callable[..., Any])

#: the stages timed on other threads than the job's: the puts (upload threads), the callback worker
UPLOAD, DELIVERY = "upload (put + presign, upload threads)", "callback delivery (callback worker)"


def stage_costs(env: Environment, jobs: int) -> dict[str, Any]:
    """CPU milliseconds per image of each stage of a listing job, outside Triton."""
    spent: dict[str, float] = defaultdict(float)

    def timed(stage: str, function: F) -> F:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[stage] += time.thread_time() - t0

        return wrapper  # type: ignore[return-value]

    with PipelineRig(env, "stages") as rig:
        publisher = rig.producer.publisher
        ctx = WorkerContext.create(
            rig.settings, notify=lambda job_id, event: publisher.publish_callback(job_id, event.value)
        )
        ctx.bucket()
        requests = [rig.listing(i) for i in range(jobs + 1)]
        job_ids = rig.submit_all(requests)
        pipeline.run_listing(job_ids[0], requests[0], ctx)  # warm-up: connections, first call
        notifications.deliver_callback(job_ids[0], JobEventType.SUCCEEDED, ctx)

        inference = ctx.inference
        inference.generate_products = timed("inference call (client side)", inference.generate_products)  # type: ignore[method-assign]
        ctx.images.put_image = timed(UPLOAD, ctx.images.put_image)  # type: ignore[method-assign]
        for name in ("transition", "take_lease", "get"):
            setattr(ctx.store, name, timed("status (Redis)", getattr(ctx.store, name)))
        ctx.notify = timed("callback message (publish)", ctx.notify)
        original_encode = pipeline.encode
        pipeline.encode = timed("encode (Pillow)", original_encode)
        try:
            t0 = time.thread_time()
            for job_id, request in zip(job_ids[1:], requests[1:], strict=True):
                pipeline.run_listing(job_id, request, ctx)
            job_cpu = time.thread_time() - t0
            t0 = time.thread_time()
            for job_id in job_ids[1:]:
                notifications.deliver_callback(job_id, JobEventType.SUCCEEDED, ctx)
            spent[DELIVERY] = time.thread_time() - t0
        finally:
            pipeline.encode = original_encode
            ctx.close()
    images = sum(r["variants"] for r in requests[1:])
    # the puts run on the upload threads: their CPU is not in the job thread's
    in_job_thread = sum(v for k, v in spent.items() if k not in (UPLOAD, DELIVERY))
    spent["validation, metadata, rest of the job"] = max(0.0, job_cpu - in_job_thread)
    return {
        "jobs": jobs,
        "images": images,
        "ms_per_image": {k: round(1000 * v / images, 3) for k, v in spent.items()},
        "job_ms_per_image": round(1000 * (job_cpu + spent[UPLOAD]) / images, 3),
    }


def run(env: Environment, size: Size) -> dict[str, Any]:
    points = []
    for batching in (True, False):
        with env.triton_variant(dynamic_batching=batching) as (url, pid):
            for p in size.scaling_processes:
                point = run_jobs(
                    env,
                    tag=f"scale{p}{'b' if batching else 'n'}",
                    jobs=size.listing_jobs,
                    processes=p,
                    grpc_url=url,
                    triton_pid=pid,
                )
                points.append({"dynamic_batching": batching, **point})
    return {"points": points, "stages": stage_costs(env, size.stage_jobs)}
