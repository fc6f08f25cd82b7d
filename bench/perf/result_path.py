"""The result path alone: the worker's own ``store_images`` (``worker.encoding.encode``, then
``worker.storage.ImageStore.put_image`` with the presigned link), no broker, no status store.

Driven by 1..N spawned processes, each with its own S3 client, over real model output (one
batch of ``product_cgan`` images fetched from Triton first). With the Triton ceiling it bounds
what the pipeline can do: a job's images must be both generated and stored.

Each process stores the way a listing worker process does at best: ``worker_concurrency`` jobs of
:data:`VARIANTS` images at once (the threads pool the pipeline benchmark runs), their puts made
as the worker makes them (``worker.context.upload_threads``: in each job's own thread from 4 jobs
in flight, else on 4 upload threads per job, at most 10), the same encoder settings (the request
defaults). An earlier version put one image at a time per process
and waited on S3 for each, so R was latency-bound, below what the overlapping worker stored, and
the pipeline came out above ``1 / (1/T + 1/R)``. Measured with the worker's own overlap, R is what
the result path can do when nothing else is running, so overlapping cannot beat the bound.
CPU per image is the processes' CPU (every thread) over the images stored.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import replace
from typing import Any

import numpy as np

from bench.perf.ceiling import batch_inputs
from bench.perf.rig import Environment
from bench.perf.sizes import Size
from core.contracts.jobs import JobKind
from core.contracts.v1 import OutputSpec
from core.worker_settings import WorkerSettings
from serving_contract.tensors import PRODUCT_GENERATOR
from worker.encoding import Format

#: the output every benchmark job asks for (the request defaults)
FORMAT: Format = "png"
SIZE = 256
#: images per job, as the pipeline benchmark's listing jobs ask (``PipelineRig.listing``)
VARIANTS = 4


def sample_images(grpc_url: str, n: int = 64) -> np.ndarray:
    """``n`` real product images (uint8 ``[n, 32, 32, 3]``) from Triton."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=grpc_url)
    try:
        result = client.infer(PRODUCT_GENERATOR.name, batch_inputs(PRODUCT_GENERATOR, n))
        images = result.as_numpy("IMAGE")
        assert images is not None
        return images
    finally:
        client.close()


def _store_images(
    settings_env: dict[str, str], images: np.ndarray, count: int, offset: int, start_at: float
) -> tuple[float, float, float, int, int]:
    """One process: store ``count`` images as jobs of :data:`VARIANTS`, ``worker_concurrency`` jobs
    at once; returns (start, end, CPU seconds, jobs in flight, upload threads)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    os.environ.update(settings_env)
    from worker.context import upload_threads
    from worker.pipeline import store_images
    from worker.storage import ImageStore
    from worker.stubs import stub_context

    settings = WorkerSettings(_env_file=None)  # type: ignore[call-arg]
    jobs = int(getattr(settings, "worker_concurrency", 1))  # a commit before the threads pool: 1
    # the worker's context with its real image store and upload threads (if any); the status store,
    # model and callbacks are the in-memory stand-ins store_images never calls
    ctx = replace(stub_context(settings, images=ImageStore(settings)), uploads=upload_threads(jobs))
    ctx.bucket()  # made sure of once per process, as the worker does before its first job
    output = OutputSpec(format=FORMAT, size=SIZE)

    def store_job(first: int) -> None:
        job_id = f"resultpath{offset + first:08d}"
        batch = np.stack([images[(first + v) % len(images)] for v in range(VARIANTS)])
        seeds = [offset + first + v for v in range(VARIANTS)]
        store_images(ctx, JobKind.LISTING, job_id, batch, seeds, output, {"job_id": job_id})

    with ThreadPoolExecutor(jobs, thread_name_prefix="resultpath-job") as job_threads:
        while time.time() < start_at:  # every process starts together, imports done
            time.sleep(0.005)
        cpu0, t0 = time.process_time(), time.time()
        for done in [job_threads.submit(store_job, first) for first in range(0, count, VARIANTS)]:
            done.result()
        t1, cpu = time.time(), time.process_time() - cpu0
        uploads = ctx.uploads._max_workers if ctx.uploads is not None else 0
    if ctx.uploads is not None:
        ctx.uploads.shutdown()
    return t0, t1, cpu, jobs, uploads


def images_per_process(total: int, processes: int) -> int:
    """``total`` shared out, rounded down to whole jobs of :data:`VARIANTS` (at least one job)."""
    return max(VARIANTS, total // processes // VARIANTS * VARIANTS)


def measure(settings: WorkerSettings, images: np.ndarray, total: int, processes: int) -> dict[str, Any]:
    per = images_per_process(total, processes)
    context = multiprocessing.get_context("spawn")  # the caller has gRPC and HTTP threads
    start_at = time.time() + 3.0 + processes  # imports done in every process
    with context.Pool(processes) as pool:
        parts = pool.starmap(
            _store_images,
            [(settings.environment(), images, per, k * per, start_at) for k in range(processes)],
        )
    begin, end = min(p[0] for p in parts), max(p[1] for p in parts)
    cpu = sum(p[2] for p in parts)
    return {
        "processes": processes,
        "images": per * processes,
        "images_per_s": round(per * processes / (end - begin), 1),
        "cpu_ms_per_image": round(1000 * cpu / (per * processes), 2),
        "jobs_in_flight": parts[0][3],
        "upload_threads": parts[0][4],
    }


def encode_cost(images: np.ndarray, repeat: int = 64) -> dict[str, float]:
    """CPU milliseconds of ``encode`` alone per image, in this process."""
    from worker.encoding import encode

    t0 = time.process_time()
    sizes = []
    for i in range(repeat):
        data, _ = encode(images[i % len(images)], FORMAT, SIZE)
        sizes.append(len(data))
    return {
        "encode_ms_per_image": round(1000 * (time.process_time() - t0) / repeat, 2),
        "bytes_per_image": round(float(np.mean(sizes))),
    }


def run(env: Environment, size: Size) -> dict[str, Any]:
    settings = env.settings("resultpath")
    images = sample_images(env.grpc_url)
    points = [measure(settings, images, size.result_images, p) for p in size.processes]
    best = max(points, key=lambda p: p["images_per_s"])
    return {
        "format": FORMAT,
        "pixels": SIZE,
        "variants_per_job": VARIANTS,
        "points": points,
        "best": best,
        **encode_cost(images),
    }
