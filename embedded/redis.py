"""A private Redis (the job status store) as a child process: ``redis-server`` on a free port.

Nothing is written to disk (``--save ""``, no append-only file): the demo's job records live
as long as the demo. ``scripts/setup.sh`` installs ``redis-server`` (Debian package).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from types import TracebackType

from embedded.process import (
    HOST,
    LOG_TAIL_LINES,
    ChildProcess,
    ServerStartError,
    free_port,
    log_tail,
    wait_ready,
)

_ROOT = Path(__file__).resolve().parent.parent

#: where logs go unless told otherwise (ignored by git)
DEFAULT_STATE_DIR = _ROOT / ".atelier"
#: seconds to wait for ``PING`` to answer
DEFAULT_READY_TIMEOUT_S = 15.0
#: seconds between SIGTERM and SIGKILL when stopping
DEFAULT_STOP_TIMEOUT_S = 5.0


class RedisStartError(ServerStartError):
    """``redis-server`` exited or did not answer; the message carries the log's tail."""


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError(
            "no redis-server on PATH: run scripts/setup.sh (apt-get install redis-server)"
        )
    return Path(found)


def ping(port: int, timeout_s: float = 1.0) -> bool:
    """Whether a Redis answers ``PING`` on ``127.0.0.1:port`` (inline protocol, no client needed)."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(64).startswith(b"+PONG")


class RedisServer:
    """``redis-server`` on ``127.0.0.1``, without persistence; a context manager.

    Parameters, all keyword-only: ``port`` (default: a free one), ``state_dir`` (default
    ``.atelier/``; Redis's working folder is ``state_dir/redis``), ``log_path`` (default
    ``state_dir/logs/redis-<port>.log``), ``ready_timeout_s`` (15), ``stop_timeout_s`` (5).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
        log_path: Path | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.state_dir = Path(state_dir)
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._child: ChildProcess | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, as ``ATELIER_REDIS_URL`` takes it."""
        return f"redis://{HOST}:{self.port}/0"

    def command(self) -> list[str]:
        workdir = self.state_dir / "redis"
        return [
            str(redis_binary()),
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ]

    def start(self) -> RedisServer:
        """Launch and wait until ``PING`` answers; raises ``RedisStartError``."""
        if self._child is not None:
            raise RuntimeError("already started")
        self.port = self.port or free_port()
        (self.state_dir / "redis").mkdir(parents=True, exist_ok=True)
        if self.log_path is None:
            self.log_path = self.state_dir / "logs" / f"redis-{self.port}.log"
        self._child = ChildProcess(self.command(), log_path=self.log_path)
        port = self.port
        try:
            wait_ready(
                self._child,
                lambda: ping(port),
                name="redis-server",
                timeout_s=self.ready_timeout_s,
                error=RedisStartError,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def is_alive(self) -> bool:
        return self._child is not None and self._child.is_alive()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; idempotent."""
        child, self._child = self._child, None
        if child is not None:
            child.stop(self.stop_timeout_s)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
