"""Benchmark 1, the ceiling: raw Triton throughput per model, perf_analyzer style.

For each model, batch size and concurrency, ``concurrency`` threads (each with its own gRPC
client, as perf_analyzer's concurrency mode keeps that many requests in flight) send the same
valid batch back to back for a fixed window after one warm-up call each; the figure is images
answered per second. The best point per model is the model's ceiling. Nothing of the worker is
involved: ``tritonclient.grpc`` directly.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from bench.perf.rig import BODY, Environment
from bench.perf.sizes import Size
from serving_contract.sizing import MEASUREMENTS
from serving_contract.taxonomy import wearable_categories
from serving_contract.tensors import (
    CLIENT_DTYPES,
    PRODUCT_GENERATOR,
    QUALITY_JUDGE,
    TRYON_GENERATOR,
    ModelSpec,
    empty_batch,
)

MODELS = (PRODUCT_GENERATOR, TRYON_GENERATOR)


def batch_inputs(spec: ModelSpec, n: int) -> list[grpcclient.InferInput]:
    """``n`` valid items for ``spec`` (varied seeds, categories and colours) as gRPC inputs."""
    batch = empty_batch(spec, n)
    if spec is QUALITY_JUDGE:
        # the judge's cost does not depend on the pixels; varied ones keep it honest all the same
        batch["IMAGE"][:] = np.random.default_rng(n).integers(0, 256, batch["IMAGE"].shape, dtype=np.uint8)
        return _grpc_inputs(batch)
    batch["SEED"][:, 0] = np.arange(n) + 1
    if spec is PRODUCT_GENERATOR:
        batch["CATEGORY"][:, 0] = np.arange(n) % 10
        batch["COLOUR"][:, 0] = np.arange(n) % 12
    else:
        wearable = [c.index for c in wearable_categories()]
        batch["CATEGORY"][:, 0] = [wearable[i % len(wearable)] for i in range(n)]
        batch["MEASUREMENTS"][:] = [BODY[m.name] for m in MEASUREMENTS]
        batch["SIZE"][:, 0] = 1
        batch["GARMENT"][:] = 128
    return _grpc_inputs(batch)


def _grpc_inputs(batch: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, values in batch.items():
        tensor = grpcclient.InferInput(name, list(values.shape), CLIENT_DTYPES[values.dtype.name])
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def measure(grpc_url: str, spec: ModelSpec, batch: int, concurrency: int, window_s: float) -> dict[str, Any]:
    """Images per second and median request latency at one (batch, concurrency) point."""
    inputs = batch_inputs(spec, batch)
    outputs = [grpcclient.InferRequestedOutput(t.name) for t in spec.outputs]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    ready = threading.Barrier(concurrency + 1)
    stop = threading.Event()

    def client_loop(k: int) -> None:
        client = grpcclient.InferenceServerClient(url=grpc_url)
        try:
            client.infer(spec.name, inputs, outputs=outputs)  # warm-up, not counted
            ready.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                client.infer(spec.name, inputs, outputs=outputs)
                latencies[k].append(time.perf_counter() - t0)
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(k,), daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    time.sleep(window_s)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start  # includes the requests in flight at the stop
    done = [x for per in latencies for x in per]
    return {
        "batch": batch,
        "concurrency": concurrency,
        "requests": len(done),
        "images_per_s": round(len(done) * batch / elapsed, 1),
        "latency_p50_ms": round(1000 * float(np.median(done)), 2) if done else 0.0,
    }


def run(env: Environment, size: Size, *, grpc_url: str | None = None) -> dict[str, Any]:
    """The sweep for both models; ``best`` per model is its ceiling."""
    url = grpc_url or env.grpc_url
    result: dict[str, Any] = {"models": {}}
    for spec in MODELS:
        points = [
            measure(url, spec, b, c, size.ceiling_window_s)
            for b in size.ceiling_batches
            if b <= spec.max_batch_size
            for c in size.ceiling_concurrency
        ]
        best = max(points, key=lambda p: p["images_per_s"])
        result["models"][spec.name] = {"points": points, "best": best}
    return result
