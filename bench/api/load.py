"""One measured point: ``concurrency`` clients submitting listings as fast as they can, through
the HTTP API or through ``Producer.submit`` directly.

Each client is a thread with a connection of its own, kept for the whole point: an HTTP/1.1
keep-alive connection with its own key, or a ``Producer`` (its own Redis and broker
connections). The HTTP client is the standard library's ``http.client``, the leanest there is:
the clients share the machine's cores with the API, so a heavier client (``httpx`` costs about
0.5 ms more CPU per call here) would slow the API it measures and count its own cost as the
API's. Both submit the same request, a listing with a new listing id each time, so no submit is
an idempotent replay. Latency is the wall time of one call as the client sees it, from the
request to the job id in hand. Calls ending in the first ``warmup_s`` (connections opening, the
API's caches filling) are left out; the point's rate is the calls that ended in the measured
window, divided by its length. A refused or failed call is counted as an error and kept out of
the latencies (the limits are raised so that none should be).

Each point also says where the CPU went over the measured window, per submit: the benchmark's own
process (the clients: for ``direct``, every ``Producer.submit``), and for ``api`` the API's process
(read from ``/proc``; ``None`` where there is none).
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

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
    #: CPU seconds spent over the measured window by the benchmark's process (the clients)
    client_cpu_s: float = 0.0
    #: and by the API's process (``None``: not measured, or no API in this mode)
    server_cpu_s: float | None = None

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
            "cpu_ms_per_submit": {
                "client": _per_submit(self.client_cpu_s, self.submits),
                "server": None if self.server_cpu_s is None else _per_submit(self.server_cpu_s, self.submits),
            },
        }


def _per_submit(cpu_s: float, submits: int) -> float | None:
    return round(cpu_s * 1000 / submits, 3) if submits else None


def process_cpu_s(pid: int | None = None) -> float | None:
    """CPU seconds (user + system) of process ``pid`` (default this one) so far; ``None`` when it
    cannot be read (``/proc`` is Linux's)."""
    if pid is None:
        spent = os.times()
        return spent.user + spent.system
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    """Submit through ``POST /v1/listings`` with the client's own key and keep-alive connection
    (``http.client`` opens it again if the server closed it)."""
    address = urlsplit(rig.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=HTTP_TIMEOUT_S)
    headers = {"Authorization": f"Bearer {rig.tokens[client]}", "Content-Type": "application/json"}

    def submit(request: dict[str, Any]) -> None:
        body = {k: v for k, v in request.items() if k != "requester"}  # the key's requester
        try:
            connection.request("POST", "/v1/listings", body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()  # the next call opens a new connection
            raise
        if response.status != 202:
            raise RuntimeError(f"{response.status}: {answer[:300]!r}")

    return submit, connection.close


def direct_submitter(rig: Rig, client: int) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    """Submit through ``Producer.submit`` with the client's own producer."""
    producer = Producer(rig.settings)

    def submit(request: dict[str, Any]) -> None:
        producer.submit(request)

    return submit, producer.close


SUBMITTERS = {"api": api_submitter, "direct": direct_submitter}


#: how long past its planned end a window with no call ended in it is held open
SLOW_WINDOW_S: Final = 60.0


def _ended_between(ended: list[list[tuple[float, float]]], first: float, last: float) -> bool:
    """Whether any client's call ended between ``first`` and ``last``."""
    return any(first <= end <= last for calls in ended for end, _ in calls)


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
    server_pid = rig.api_pid if mode == "api" else None
    try:
        for thread in threads:
            thread.start()
        ready.wait()
        start = time.perf_counter()
        window_start, window_end = start + warmup_s, start + warmup_s + duration_s

        def wait_until(moment: float) -> None:
            while (now := time.perf_counter()) < moment:
                on_progress(now - start, sum(len(calls) for calls in ended))
                time.sleep(min(0.2, moment - now))

        wait_until(window_start)
        client_before, server_before = process_cpu_s(), process_cpu_s(server_pid) if server_pid else None
        wait_until(window_end)
        # a window no call ended in says nothing: on a starved machine (a short window, many
        # clients) it is held open until one does, up to SLOW_WINDOW_S more
        held_until = window_end + SLOW_WINDOW_S
        while not _ended_between(ended, window_start, window_end) and window_end < held_until:
            time.sleep(0.05)
            window_end = time.perf_counter()
        duration_s = window_end - window_start
        client_after, server_after = process_cpu_s(), process_cpu_s(server_pid) if server_pid else None
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
        client_cpu_s=(client_after or 0.0) - (client_before or 0.0),
        server_cpu_s=None if server_before is None or server_after is None else server_after - server_before,
    )
