"""Celery workers as child processes, started the way an operator starts them:
``celery -A worker.app worker -Q <queues> --pool prefork -c 1``, configured through ``ATELIER_*``.

Started through ``embedded.stack.Stack`` by the demo, the benchmarks, the fault suite and the
integration tests (each with its own queue names and key prefixes). Ready means the worker
logged ``ready.``: it is connected and consuming.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from core.settings import AtelierSettings
from embedded.process import ROOT, ChildServer, ServerStartError, search_path

#: seconds to wait for ``ready.`` (imports and broker connection; slow on a busy machine)
DEFAULT_READY_TIMEOUT_S = 90.0
#: seconds a warm shutdown (finish the running task) gets before SIGKILL
DEFAULT_STOP_TIMEOUT_S = 30.0
#: the Celery app every production worker runs (``celery -A``)
WORKER_APP = "worker.app"


class WorkerStartError(ServerStartError):
    """The worker exited or did not log ``ready.``; the message carries the log's tail."""


def celery_command() -> list[str]:
    """The ``celery`` program of this environment (``python -m celery`` if there is no script)."""
    beside = Path(sys.executable).parent / "celery"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("celery")
    return [found] if found else [sys.executable, "-m", "celery"]


class CeleryWorker(ChildServer):
    """One ``celery worker`` process consuming ``queues``; a context manager.

    Parameters (keyword-only): ``settings`` (passed as ``ATELIER_*`` variables), ``queues``,
    ``name`` (node name ``<name>@<host>``), ``log_path``, ``concurrency`` (default 1), ``pool``
    (default ``prefork``), ``loglevel`` (default ``INFO``), ``env`` (more variables), ``app``
    (the Celery app, default ``worker.app``; the benchmarks and the fault suite run variants),
    ``nice`` (CPU niceness, default 0: what a bulk pool gets beside an interactive one),
    ``ready_timeout_s`` (default 90), ``stop_timeout_s`` (default 30), ``source`` (the source
    tree it runs from, its working folder and first on ``PYTHONPATH``; default this checkout).
    """

    start_error = WorkerStartError
    ready_interval_s = 0.25

    def __init__(
        self,
        *,
        settings: AtelierSettings,
        queues: Sequence[str],
        name: str,
        log_path: Path,
        concurrency: int = 1,
        pool: str = "prefork",
        loglevel: str = "INFO",
        env: Mapping[str, str] | None = None,
        app: str = WORKER_APP,
        nice: int = 0,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
        source: Path = ROOT,
    ) -> None:
        super().__init__(log_path=log_path, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s)
        self.log_path: Path = log_path
        self.settings = settings
        self.queues = list(queues)
        self.name = name
        self.label = f"celery worker {name}"
        self.concurrency = concurrency
        self.pool = pool
        self.loglevel = loglevel
        self.extra_env = dict(env or {})
        self.app = app
        self.nice = nice
        self._cwd = source

    def command(self) -> list[str]:
        niceness = ["nice", "-n", str(self.nice)] if self.nice else []
        return [
            *niceness,
            *celery_command(),
            "-A",
            self.app,
            "worker",
            "-Q",
            ",".join(self.queues),
            "--pool",
            self.pool,
            "-c",
            str(self.concurrency),
            "-n",
            f"{self.name}@%h",
            "--loglevel",
            self.loglevel,
            # no worker-to-worker chatter: faster start, nothing shared between test namespaces
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), **self.settings.environment(), **self.extra_env}
        # Celery lets a configured worker_pool override an explicit --pool prefork: unless the
        # settings or ``env`` ask for a pool (ATELIER_WORKER_POOL), the one named here runs
        if (
            "worker_pool" not in self.settings.model_fields_set
            and "ATELIER_WORKER_POOL" not in self.extra_env
        ):
            env["ATELIER_WORKER_POOL"] = self.pool
        asked = "metrics_port" in self.settings.model_fields_set or "ATELIER_METRICS_PORT" in self.extra_env
        if not asked:  # several workers share this machine: none binds the default metrics port
            env["ATELIER_METRICS_PORT"] = "0"
        env["PYTHONPATH"] = search_path(str(self._cwd), os.environ.get("PYTHONPATH"))
        return env

    def _readiness_probe(self) -> Callable[[], bool]:
        """Connected and consuming: the worker logged ``ready.``."""
        return lambda: " ready." in self.log_text()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
