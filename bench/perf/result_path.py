"""The result path alone: encode with Pillow and put to S3 (``worker.encoding.encode``,
``worker.storage.ImageStore.put_image``, presigned link included), no broker, no status store.

Driven by 1..N spawned processes, each with its own S3 client, over real model output (one
batch of ``product_cgan`` images fetched from Triton first). With the Triton ceiling it bounds
what the pipeline can do: a job's images must be both generated and stored.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import numpy as np

from bench.perf.ceiling import batch_inputs
from bench.perf.rig import Environment
from bench.perf.sizes import Size
from core.contracts.jobs import JobKind
from core.worker_settings import WorkerSettings
from serving_contract.tensors import PRODUCT_GENERATOR
from worker.encoding import Format

#: the output every benchmark job asks for (the request defaults)
FORMAT: Format = "png"
SIZE = 256


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
) -> tuple[float, float, float]:
    """One process: encode and put ``count`` images; returns (start, end, CPU seconds)."""
    import os

    os.environ.update(settings_env)
    from worker.encoding import encode
    from worker.storage import ImageStore, image_key

    store = ImageStore(WorkerSettings(_env_file=None))  # type: ignore[call-arg]
    store.ensure_bucket()
    while time.time() < start_at:  # every process starts together, imports done
        time.sleep(0.005)
    cpu0, t0 = time.process_time(), time.time()
    for i in range(count):
        data, content_type = encode(images[i % len(images)], FORMAT, SIZE)
        key = image_key(JobKind.LISTING, f"resultpath{offset + i:08d}", 0, FORMAT)
        store.put_image(key, data, content_type, {"job_id": "bench"}, variant=0)
    return t0, time.time(), time.process_time() - cpu0


def measure(settings: WorkerSettings, images: np.ndarray, total: int, processes: int) -> dict[str, Any]:
    per = max(1, total // processes)
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
    return {"format": FORMAT, "pixels": SIZE, "points": points, "best": best, **encode_cost(images)}
