"""One measured point: ``concurrency`` clients submitting listings as fast as they can, through
the HTTP API or through ``Producer.submit`` directly.

Each client is a thread with a connection of its own, kept for the whole point: an
``httpx.Client`` (HTTP/1.1 keep-alive) with its own key, or a ``Producer`` (its own Redis and
broker connections). Both submit the same request, a listing with a new listing id each time,
so no submit is an idempotent replay. Latency is the wall time of one call as the client sees
it, from the request to the job id in hand. Calls ending in the first ``warmup_s`` (connections
opening, the API's caches filling) are left out; the point's rate is the calls that ended in the
measured window, divided by its length. A refused or failed call is counted as an error and
kept out of the latencies (the limits are raised so that none should be).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import numpy as np

from bench.api.rig import REQUESTER, Rig
from producer.client import Producer

Mode = Literal["direct", "api"]
#: seconds one HTTP call may take before it counts as an error
HTTP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Point:
    """How one mode did at one concurrency."""

    mode: Mode
    concurrency: int
    duration_s: float
    submits: int
    errors: int
    first_error: str | None
    latencies_ms: list[float]

    def as_dict(self) -> dict[str, Any]:
        values = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "duration_s": round(self.duration_s, 3),
            "submits": self.submits,
            "errors": self.errors,
            "first_error": self.first_error,
            "submits_per_s": round(self.submits / self.duration_s, 1),
            "latency_ms": {
                "p50": round(float(np.percentile(values, 50)), 3),
                "p99": round(float(np.percentile(values, 99)), 3),
                "mean": round(float(values.mean()), 3),
                "max": round(float(values.max()), 3),
            },
        }


def listing(client: int, n: int) -> dict[str, Any]:
    """The request every submit sends: a small listing, a listing id never used before."""
    return {
        "kind": "listing",
        "requester": REQUESTER,
        "listing_id": f"SKU-BENCH-{client}-{n}",
        "attributes": {"category": "t_shirt", "colour": "red"},
        "variants": 1,
    }


def api_submitter(rig: Rig, client: int) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """Submit through ``POST /v1/listings`` with the client's own key and connection."""
    http = httpx.Client(
        base_url=rig.url, timeout=HTTP_TIMEOUT_S, headers={"Authorization": f"Bearer {rig.tokens[client]}"}
    )

    def submit(request: dict[str, Any]) -> None:
        body = {k: v for k, v in request.items() if k != "requester"}  # the key's requester
        response = http.post("/v1/listings", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")

    return submit, http.close


def direct_submitter(rig: Rig, client: int) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """Submit through ``Producer.submit`` with the client's own producer."""
    producer = Producer(rig.settings)

    def submit(request: dict[str, Any]) -> None:
        producer.submit(request)

    return submit, producer.close


SUBMITTERS = {"api": api_submitter, "direct": direct_submitter}


def measure(
    rig: Rig,
    mode: Mode,
    concurrency: int,
    *,
    duration_s: float,
    warmup_s: float,
    on_progress: Callable[[float, int], None] = lambda elapsed, done: None,
) -> Point:
    """Run ``concurrency`` clients for ``warmup_s + duration_s``; the calls that ended after the
    warm-up make the point. ``on_progress(elapsed_s, calls)`` is called a few times a second."""
    submitters = [SUBMITTERS[mode](rig, client) for client in range(concurrency)]
    ended: list[list[tuple[float, float]]] = [[] for _ in range(concurrency)]  # (end, seconds) per client
    errors: list[str] = []
    stop = threading.Event()
    ready = threading.Barrier(concurrency + 1)

    def client_loop(client: int) -> None:
        submit = submitters[client][0]
        ready.wait()
        n = 0
        while not stop.is_set():
            request = listing(client, n)
            n += 1
            began = time.perf_counter()
            try:
                submit(request)
            except Exception as error:  # counted, not raised: one failure does not end the point
                errors.append(f"{type(error).__name__}: {error}")
                continue
            finished = time.perf_counter()
            ended[client].append((finished, finished - began))

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(concurrency)]
    try:
        for thread in threads:
            thread.start()
        ready.wait()
        start = time.perf_counter()
        window_start, window_end = start + warmup_s, start + warmup_s + duration_s
        while (now := time.perf_counter()) < window_end:
            on_progress(now - start, sum(len(calls) for calls in ended))
            time.sleep(min(0.2, window_end - now))
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        for _, close in submitters:
            close()
    on_progress(warmup_s + duration_s, sum(len(calls) for calls in ended))
    latencies = [
        seconds * 1000 for calls in ended for end, seconds in calls if window_start <= end <= window_end
    ]
    return Point(
        mode=mode,
        concurrency=concurrency,
        duration_s=duration_s,
        submits=len(latencies),
        errors=len(errors),
        first_error=errors[0] if errors else None,
        latencies_ms=latencies,
    )
