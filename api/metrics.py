"""Prometheus metrics of the API: requests and their latency by route template and status.

The route template (``/v1/jobs/{job_id}``), never the path, labels each series, so job ids do
not become label values; a request no route matched counts under ``route="unmatched"``. Each
app has its own registry (tests build several apps in one process); ``/metrics`` serves it.
"""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: latency buckets (seconds): submits and reads are a Redis round trip or a broker confirm
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API's series, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "atelier_api_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "atelier_api_request_duration_seconds",
            "time to answer, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # each series' child, looked up once and kept: ``labels()`` validates and locks on every
        # call, a cost every request would pay; there are a few per route, so these stay small
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answer of ``route`` (its template) and its time to answer."""
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[method, route, status] = self.requests.labels(method, route, str(status))
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[method, route] = self.latency.labels(method, route)
        counter.inc()
        timer.observe(seconds)


class MetricsMiddleware:
    """Counts every answer (the 413s of :class:`api.limits.BodySizeLimit` too: put it outside)."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    @staticmethod
    def _template(scope: Scope) -> str:
        """The matched route's template: the router records the route in the (shared) scope."""
        route = scope.get("route")
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.observe(
                scope.get("method", ""), self._template(scope), status, time.perf_counter() - started
            )
