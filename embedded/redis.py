"""A private Redis (the job status store) as a child process: ``redis-server`` on a free port.

Nothing is written to disk (``--save ""``, no append-only file): the demo's job records live
as long as the demo. ``scripts/setup.sh`` installs ``redis-server`` (Debian package).
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from embedded.process import DEFAULT_STATE_DIR, HOST, ChildServer, ServerStartError, free_port

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


class RedisServer(ChildServer):
    """``redis-server`` on ``127.0.0.1``, without persistence; a context manager.

    Parameters, all keyword-only: ``port`` (default: a free one), ``state_dir`` (default
    ``.atelier/``; Redis's working folder is ``state_dir/redis``), ``log_path`` (default
    ``state_dir/logs/redis-<port>.log``), ``ready_timeout_s`` (15), ``stop_timeout_s`` (5).
    """

    label = "redis-server"
    start_error = RedisStartError

    def __init__(
        self,
        *,
        port: int | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
        log_path: Path | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(log_path=log_path, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s)
        self.port = port
        self.state_dir = Path(state_dir)

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

    def _prepare(self) -> Path:
        self.port = self.port or free_port()
        (self.state_dir / "redis").mkdir(parents=True, exist_ok=True)
        return self.log_path or self.state_dir / "logs" / f"redis-{self.port}.log"

    def _readiness_probe(self) -> Callable[[], bool]:
        port = self.port
        assert port is not None
        return lambda: ping(port)
