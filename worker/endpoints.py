"""The worker's HTTP port (``metrics_port``, default 9808), served by its main process:

- ``GET /metrics``: every process's samples, Prometheus text format (``worker.metrics``);
- ``GET /healthz``: 200 while the main process runs and its consumer is connected, else 503;
- ``GET /readyz``: 200 when the services the worker needs answer, else 503; the body is JSON,
  one entry per check (``worker.health``).

A thread of the main process answers; a port already taken is logged and the worker runs on
without it (several workers on one machine need a port each).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ops.checks import Report, run_checks
from worker import metrics
from worker.health import Liveness, Readiness

log = logging.getLogger(__name__)


class Endpoints:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` in a daemon thread.

    Parameters (keyword-only): ``host``, ``port`` (0: any free port, see :attr:`port`),
    ``liveness``, ``readiness``, ``exposition`` (default ``worker.metrics.exposition``).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        liveness: Liveness,
        readiness: Readiness,
        exposition: Callable[[], tuple[bytes, str]] = metrics.exposition,
    ) -> None:
        self.liveness = liveness
        self.readiness = readiness
        self.exposition = exposition
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="atelier-endpoints", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Endpoints:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for a GET of ``path``."""
        route = path.split("?", 1)[0]
        if route == "/metrics":
            body, content_type = self.exposition()
            return HTTPStatus.OK, body, content_type
        if route == "/healthz":
            return _json(run_checks({"consumer": self.liveness.check}))
        if route == "/readyz":
            return _json(self.readiness.report())
        return HTTPStatus.NOT_FOUND, b"not found: /metrics, /healthz, /readyz\n", "text/plain"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    status, body, content_type = endpoints.answer(self.path)
                except Exception as error:  # a broken scrape must not take the thread down
                    log.exception("%s failed", self.path)
                    status, body, content_type = 500, f"{type(error).__name__}\n".encode(), "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # probes every second: no lines
                pass

        return Handler


def _json(report: Report) -> tuple[int, bytes, str]:
    status = HTTPStatus.OK if report.ok else HTTPStatus.SERVICE_UNAVAILABLE
    return status, (json.dumps(report.as_json()) + "\n").encode(), "application/json"


def serve(*, host: str, port: int, liveness: Liveness, readiness: Readiness) -> Endpoints | None:
    """Start the endpoints, or log why not and return ``None`` (a taken port does not stop the worker)."""
    try:
        endpoints = Endpoints(host=host, port=port, liveness=liveness, readiness=readiness).start()
    except OSError as error:
        log.error("metrics and probes not served on %s:%s: %s", host, port, error)
        return None
    log.info("serving /metrics, /healthz and /readyz on %s:%s", host, endpoints.port)
    return endpoints
