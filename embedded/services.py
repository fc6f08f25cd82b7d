"""The stack's Python services besides the workers, as child processes: the sweeper and the HTTP API.

Each is started the way an operator starts it (``python -m worker.sweeper``, ``atelier api serve``),
configured through ``ATELIER_*`` variables of the stack's settings, from the repository root.
Ready means its HTTP port answers 200: the sweeper's ``/metrics`` (on a port of its own, as
several share a machine), the API's ``/readyz`` (Redis and the broker answer it too).
``embedded.stack.Stack`` starts them (``start_sweeper``, ``start_api``) for ``atelier up``.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import SecretStr

from core.settings import AtelierSettings
from embedded.process import HOST, ROOT, ChildServer, ServerStartError, free_port, search_path

#: seconds to wait for the sweeper's /metrics (imports, then the first sweep)
SWEEPER_READY_TIMEOUT_S = 60.0
#: seconds to wait for the API's /readyz (imports, the key store's engine, Redis and the broker)
API_READY_TIMEOUT_S = 60.0
#: seconds between SIGTERM and SIGKILL (uvicorn finishes open requests first)
DEFAULT_STOP_TIMEOUT_S = 10.0
#: the seconds one readiness request may take
PROBE_TIMEOUT_S = 2.0


class ServiceStartError(ServerStartError):
    """The sweeper or the API exited or did not answer; the message carries the log's tail."""


def http_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 (refused connections and error statuses raise ``OSError``)."""
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
        return int(response.status) == 200


class PythonService(ChildServer):
    """``python <argv>`` with ``settings`` (and ``env``) as its variables; ready when ``probe_url``
    answers 200. Keyword-only: ``settings``, ``log_path``, ``env`` (more variables),
    ``ready_timeout_s``, ``stop_timeout_s`` (10)."""

    start_error = ServiceStartError
    _cwd = ROOT
    #: the module and arguments after ``python -m``
    argv: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        settings: AtelierSettings,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(log_path=log_path, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s)
        self.settings = settings
        self.extra_env = dict(env or {})

    @property
    def probe_url(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        return [sys.executable, "-m", *self.argv]

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), **self.settings.environment(), **self.extra_env}
        env["PYTHONPATH"] = search_path(str(ROOT), os.environ.get("PYTHONPATH"))
        return env

    def _readiness_probe(self) -> Callable[[], bool]:
        url = self.probe_url
        return lambda: http_ok(url)


class SweeperProcess(PythonService):
    """``python -m worker.sweeper``, serving its ``/metrics`` on ``metrics_port`` (default a free one);
    other parameters as :class:`PythonService` (``ready_timeout_s`` default 60)."""

    label = "sweeper"
    argv = ("worker.sweeper",)

    def __init__(
        self,
        *,
        settings: AtelierSettings,
        log_path: Path,
        metrics_port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = SWEEPER_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(
            settings=settings,
            log_path=log_path,
            env=env,
            ready_timeout_s=ready_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
        self.metrics_port = metrics_port

    @property
    def probe_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "ATELIER_METRICS_PORT": str(self.metrics_port),
            "ATELIER_METRICS_HOST": HOST,
        }

    def _prepare(self) -> Path:
        self.metrics_port = self.metrics_port or free_port()
        return super()._prepare()


class ApiServer(PythonService):
    """``atelier api serve`` on ``127.0.0.1:port`` (default a free one), its key store at
    ``database_url`` with ``key_pepper``; other parameters as :class:`PythonService`
    (``ready_timeout_s`` default 60)."""

    label = "atelier api"
    argv = ("producer.cli", "api", "serve")

    def __init__(
        self,
        *,
        settings: AtelierSettings,
        log_path: Path,
        database_url: str,
        key_pepper: SecretStr | str,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = API_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(
            settings=settings,
            log_path=log_path,
            env=env,
            ready_timeout_s=ready_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
        self.port = port
        self.database_url = database_url
        self.key_pepper = key_pepper.get_secret_value() if isinstance(key_pepper, SecretStr) else key_pepper

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: where callers reach it."""
        return f"http://{HOST}:{self.port}"

    @property
    def probe_url(self) -> str:
        return f"{self.url}/readyz"

    def command(self) -> list[str]:
        return [*super().command(), "--host", HOST, "--port", str(self.port)]

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "ATELIER_DATABASE_URL": self.database_url,
            "ATELIER_KEY_PEPPER": self.key_pepper,
            "ATELIER_API_PUBLIC_URL": self.url,
        }

    def _prepare(self) -> Path:
        self.port = self.port or free_port()
        return super()._prepare()
