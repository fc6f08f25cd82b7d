"""Benchmark 4, interactive latency under backfill: try-on jobs at a steady rate, first on an idle
system, then while a listing backlog (2,000 jobs by default) is queued and draining.

Latency is from the moment the try-on is handed to the producer to its record's ``finished_at``
(``succeeded``) and to its ``job.succeeded`` callback arriving at the receiver; both clocks are
this machine's. The figures are p50/p95/p99 of each phase and the ratio of the backlog p95 to the
idle p95; the listing queue's depth when the last try-on is published says the backlog lasted.
Each phase also says where the time went: the try-ons' wait to start (``to_started_ms``) and run
(``running_ms``) from their records, and ``breakdown`` (``latency_breakdown``): Triton's mean
queue and compute time per model and the try-on worker's mean stage times over the phase.

Worker layout, as deployed (``docs/pipeline.md``): one worker per queue. Try-on has its own
queue and pool, so no listing message is ever ahead of a try-on; the listing pool takes one
process (the backlog may queue for hours; more processes only take CPU from the interactive
path on two cores) and runs at ``nice 19`` (the single-host form of giving the interactive pool
guaranteed CPU); callbacks have their own pool. RabbitMQ priorities are not used: the work
queues are quorum queues, which support priorities only from RabbitMQ 4.0 and then as two
levels (this machine runs 3.10); separate queues give the same isolation on any version.

What a backlog did to the p95 (Triton's trace of every request, issue 15): 3 to 6 try-ons in
120 sent their garment request to ``product_cgan`` while a listing batch ran there, and with one
instance and priority levels, Triton 2.51's batcher left it queued for its 500 ms idle wait (a
race: seen on busy cores, not on an idle machine). ``product_cgan`` now has a second instance
(``training/export.py``), which an interactive request finds free: no such wait since. The rest
is CPU shared with the backlog's work. A phase's p95 is set by its slowest twentieth, so a phase
sends ``size.tryon_jobs`` try-ons (200 by default, ``bench.perf.sizes``).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from bench.perf import latency_breakdown
from bench.perf.rig import TRITON_APP, Environment, PipelineRig
from bench.perf.sizes import Size
from embedded.process import free_port

#: CPU niceness of the listing (backfill) pool: on shared cores it yields to the try-on pool
LISTING_NICE = int(os.environ.get("ATELIER_BENCH_LISTING_NICE", "19"))


#: the latency percentiles reported for each phase
QUANTILES = (50, 95, 99)


def latency_summary(values: list[float]) -> dict[str, float]:
    """``p50``, ``p95``, ``p99`` of ``values`` (numpy's linear interpolation); 0.0 for none."""
    found = np.percentile(values, QUANTILES) if values else np.zeros(len(QUANTILES))
    return {f"p{q}": round(float(v), 1) for q, v in zip(QUANTILES, found, strict=True)}


def _tryons(rig: PipelineRig, size: Size, offset: int) -> tuple[list[str], dict[str, float], list[int]]:
    """Submit ``size.tryon_jobs`` try-ons at ``size.tryon_rate_hz``; returns ids, submit times and
    the listing queue's depth at each submit."""
    interval = 1.0 / size.tryon_rate_hz
    ids: list[str] = []
    submitted: dict[str, float] = {}
    depths: list[int] = []
    start = time.perf_counter()
    for k in range(size.tryon_jobs):
        delay = start + k * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        at = time.time()
        job_id = rig.producer.submit(rig.tryon(offset + k))
        ids.append(job_id)
        submitted[job_id] = at
        depths.append(rig.queue_depth(rig.settings.listing_queue))
    return ids, submitted, depths


def _latencies(rig: PipelineRig, ids: list[str], submitted: dict[str, float]) -> dict[str, Any]:
    records = rig.wait_terminal(ids, timeout_s=120)
    rig.env.receiver.wait_for(lambda _: len(rig.callbacks_at(ids)) >= len(ids), timeout_s=30)
    callbacks = rig.callbacks_at(ids)
    to_succeeded = [
        1000 * (r.finished_at.timestamp() - submitted[j])
        for j, r in records.items()
        if r.state.value == "succeeded" and r.finished_at
    ]
    to_callback = [1000 * (at - submitted[j]) for j, at in callbacks.items()]
    to_started = [
        1000 * (r.started_at.timestamp() - submitted[j]) for j, r in records.items() if r.started_at
    ]
    running = [
        1000 * (r.finished_at - r.started_at).total_seconds()
        for r in records.values()
        if r.started_at and r.finished_at
    ]
    return {
        "jobs": len(ids),
        "succeeded": len(to_succeeded),
        "to_succeeded_ms": latency_summary(to_succeeded),
        "to_callback_ms": latency_summary(to_callback),
        "to_started_ms": latency_summary(to_started),
        "running_ms": latency_summary(running),
    }


class _Scrapes:
    """Triton's and the try-on worker's metrics, read around a phase (``latency_breakdown``)."""

    def __init__(self, env: Environment, worker_metrics_url: str) -> None:
        triton = env.stack.triton
        self.urls = (triton.metrics_url if triton else "", worker_metrics_url)

    def read(self) -> tuple[latency_breakdown.Samples, latency_breakdown.Samples]:
        triton, worker = self.urls
        return (latency_breakdown.scrape(triton) if triton else {}), latency_breakdown.scrape(worker)

    def phase(self, before: tuple[latency_breakdown.Samples, latency_breakdown.Samples]) -> dict[str, Any]:
        after = self.read()
        return dict(latency_breakdown.breakdown((before[0], after[0]), (before[1], after[1]), kind="tryon"))


def run(env: Environment, size: Size) -> dict[str, Any]:
    layout = {"tryon": (1, TRITON_APP), "listing": (1, TRITON_APP), "callbacks": (1, TRITON_APP)}
    metrics_port = free_port()
    with PipelineRig(env, "backlog") as rig:
        rig.start_workers(
            layout,
            nice={"listing": LISTING_NICE},
            env={"tryon": {"ATELIER_METRICS_PORT": str(metrics_port)}},
        )
        scrapes = _Scrapes(env, f"http://127.0.0.1:{metrics_port}/metrics")
        # one try-on first, not counted: the first call of each process pays for its warm-up
        warm = rig.producer.submit(rig.tryon(10_000))
        rig.wait_terminal([warm], timeout_s=60)

        before = scrapes.read()
        idle = _latencies(rig, *_tryons(rig, size, 0)[:2])
        idle["breakdown"] = scrapes.phase(before)

        t0 = time.perf_counter()
        backlog_ids: list[str] = []
        publisher = threading.Thread(
            target=lambda: backlog_ids.extend(
                rig.submit_all(rig.listing(i) for i in range(size.backlog_jobs))
            )
        )
        publisher.start()
        publisher.join()
        publish_s = time.perf_counter() - t0
        before = scrapes.read()
        ids, submitted, depths = _tryons(rig, size, 1000)
        busy = _latencies(rig, ids, submitted)
        busy["breakdown"] = scrapes.phase(before)
        busy["backlog_jobs"] = size.backlog_jobs
        busy["backlog_publish_s"] = round(publish_s, 1)
        busy["listing_queue_depth_at_first_tryon"] = depths[0] if depths else 0
        busy["listing_queue_depth_at_last_tryon"] = depths[-1] if depths else 0
    ratio = busy["to_succeeded_ms"]["p95"] / max(idle["to_succeeded_ms"]["p95"], 1e-6)
    callback_ratio = busy["to_callback_ms"]["p95"] / max(idle["to_callback_ms"]["p95"], 1e-6)
    return {
        "layout": {role: processes for role, (processes, _) in layout.items()},
        "listing_nice": LISTING_NICE,
        "rate_hz": size.tryon_rate_hz,
        "idle": idle,
        "backlog": busy,
        "p95_ratio_succeeded": round(ratio, 2),
        "p95_ratio_callback": round(callback_ratio, 2),
    }
