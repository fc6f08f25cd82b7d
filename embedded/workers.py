"""Celery workers as child processes, started the way an operator starts them:
``celery -A worker.app worker -Q <queues> --pool prefork -c 1``, configured through ``ATELIER_*``.

Used by the embedded demo and by the end-to-end tests (each with its own queue names and key
prefixes). Ready means the worker logged ``ready.``: it is connected and consuming.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from embedded.process import LOG_TAIL_LINES, ChildProcess, ServerStartError, log_tail, wait_ready
from producer.settings import AtelierSettings

_ROOT = Path(__file__).resolve().parent.parent

#: seconds to wait for ``ready.`` (imports and broker connection; slow on a busy machine)
DEFAULT_READY_TIMEOUT_S = 90.0
#: seconds a warm shutdown (finish the running task) gets before SIGKILL
DEFAULT_STOP_TIMEOUT_S = 30.0


class WorkerStartError(ServerStartError):
    """The worker exited or did not log ``ready.``; the message carries the log's tail."""


def celery_command() -> list[str]:
    """The ``celery`` program of this environment (``python -m celery`` if there is no script)."""
    beside = Path(sys.executable).parent / "celery"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("celery")
    return [found] if found else [sys.executable, "-m", "celery"]


class CeleryWorker:
    """One ``celery worker`` process consuming ``queues``; a context manager.

    Parameters (keyword-only): ``settings`` (passed as ``ATELIER_*`` variables), ``queues``,
    ``name`` (node name ``<name>@<host>``), ``log_path``, ``concurrency`` (default 1), ``pool``
    (default ``prefork``), ``loglevel`` (default ``INFO``), ``env`` (more variables),
    ``ready_timeout_s`` (default 90), ``stop_timeout_s`` (default 30).
    """

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
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.queues = list(queues)
        self.name = name
        self.log_path = log_path
        self.concurrency = concurrency
        self.pool = pool
        self.loglevel = loglevel
        self.extra_env = dict(env or {})
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._child: ChildProcess | None = None

    def command(self) -> list[str]:
        return [
            *celery_command(),
            "-A",
            "worker.app",
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
        env = {**os.environ, **self.settings.environment(), **self.extra_env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)
        return env

    def launch(self) -> CeleryWorker:
        """Start the process without waiting (start several, then ``wait_ready`` on each)."""
        if self._child is not None:
            raise RuntimeError("already started")
        self._child = ChildProcess(self.command(), log_path=self.log_path, env=self.environment(), cwd=_ROOT)
        return self

    def wait_ready(self) -> CeleryWorker:
        """Wait for ``ready.`` in the log; raises ``WorkerStartError`` (and stops the process)."""
        if self._child is None:
            raise RuntimeError("not launched")
        try:
            wait_ready(
                self._child,
                lambda: " ready." in self.log_text(),
                name=f"celery worker {self.name}",
                timeout_s=self.ready_timeout_s,
                interval_s=0.25,
                error=WorkerStartError,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def start(self) -> CeleryWorker:
        return self.launch().wait_ready()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def is_alive(self) -> bool:
        return self._child is not None and self._child.is_alive()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: the running task finishes), then SIGKILL; idempotent."""
        child, self._child = self._child, None
        if child is not None:
            child.stop(self.stop_timeout_s)

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
