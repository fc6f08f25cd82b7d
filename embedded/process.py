"""What every embedded server shares: free ports, a child process that dies with us, a clean stop.

``ChildProcess`` launches a server in its own session with its output in a log file, asks Linux
to SIGTERM it when the launching thread exits (a test session or CLI killed without cleanup
leaves nothing behind), and stops it with SIGTERM, then SIGKILL of its whole process group.
``wait_ready`` polls a probe until the server answers, failing fast with the log's tail.
``ChildServer`` is the lifecycle around both that each server module fills in with its command
line and readiness probe; ``Server`` is the context manager every embedded server is.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

#: the repository root: where the embedded servers keep their state and the workers run
ROOT = Path(__file__).resolve().parent.parent
#: where data, logs and backend folders go unless told otherwise (ignored by git)
DEFAULT_STATE_DIR = ROOT / ".atelier"
#: address the embedded servers are reached at (and bound to, where the server allows it)
HOST = "127.0.0.1"
#: lines of a server log quoted in a start-up error
LOG_TAIL_LINES = 40
#: where ``free_port_pair`` looks: both ports stay below Linux's ephemeral range (32768+)
PAIR_PORT_RANGE = (15000, 22000)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class ServerStartError(RuntimeError):
    """A server exited or did not become ready; the message carries the log's tail."""


def terminate_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the thread that launched it exits (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port_pair(offset: int, *, taken: set[int] | None = None, tries: int = 200) -> int:
    """A port ``p`` such that ``p`` and ``p + offset`` are both free (and not in ``taken``).

    For servers that derive a second port from the first (SeaweedFS: gRPC = HTTP + 10000).
    """
    taken = taken if taken is not None else set()
    low, high = PAIR_PORT_RANGE
    for _ in range(tries):
        port = random.randrange(low, high)
        if {port, port + offset} & taken:
            continue
        if _is_free(port) and _is_free(port + offset):
            return port
    raise RuntimeError(f"no free port pair (+{offset}) found in {low}-{high} after {tries} tries")


class ChildProcess:
    """One server process: its own session, output to ``log_path``, SIGTERMed if we die.

    Parameters: ``command`` (argv), keyword-only ``log_path`` (truncated at launch), ``env``
    (default: ours), ``cwd`` (default: ours).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # its own group: its children go with it on SIGKILL
                preexec_fn=terminate_with_parent if sys.platform == "linux" else None,
            )
        self.pid = self._process.pid

    def poll(self) -> int | None:
        """The exit code once it has exited, else ``None``."""
        return self._process.poll()

    def is_alive(self) -> bool:
        return self._process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines the process wrote."""
        return log_tail(self.log_path, lines)

    def stop(self, timeout_s: float) -> None:
        """SIGTERM, then SIGKILL of its process group after ``timeout_s``; idempotent."""
        process = self._process
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path``, or ``(no log)``."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_ready(
    child: ChildProcess,
    probe: Callable[[], bool],
    *,
    name: str,
    timeout_s: float,
    interval_s: float = 0.2,
    error: type[ServerStartError] = ServerStartError,
) -> None:
    """Poll ``probe`` until it returns true; raise ``error`` with the log tail if ``child`` exits
    first or ``timeout_s`` passes. ``probe`` returns false (or raises ``OSError``) while not ready.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            raise error(f"{name} exited with {code} before ready\n{child.log_tail()}")
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(interval_s)
    raise error(f"{name} not ready after {timeout_s:.0f} s\n{child.log_tail()}")


def search_path(*entries: str | None) -> str:
    """``entries`` joined as a ``PATH``-like variable, leaving out the unset and empty ones."""
    return os.pathsep.join(entry for entry in entries if entry)


class Server:
    """A context manager that starts on entry and always stops on exit, as every embedded server is."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


class ChildServer(Server):
    """A server run as one ``ChildProcess``: launched once, stopped if it never becomes ready.

    Parameters, keyword-only: ``log_path`` (``None``: ``_prepare`` picks it), ``ready_timeout_s``
    and ``stop_timeout_s`` (seconds between SIGTERM and SIGKILL). A subclass supplies
    ``command``, ``_readiness_probe``, optionally ``_prepare`` (ports, folders) and
    ``environment``, and sets ``label`` and ``start_error`` for its start-up errors.
    """

    #: what start-up errors call the server
    label: str = "server"
    #: what start-up errors raise
    start_error: type[ServerStartError] = ServerStartError
    #: seconds between readiness probes
    ready_interval_s: float = 0.2
    #: the child's working folder (``None``: ours)
    _cwd: Path | None = None

    def __init__(self, *, log_path: Path | None, ready_timeout_s: float, stop_timeout_s: float) -> None:
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.startup_s: float | None = None  #: seconds from launch to ready, once started
        self._child: ChildProcess | None = None
        self._launched_at = 0.0

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The child's variables: ours, unless a server needs more."""
        return dict(os.environ)

    def _prepare(self) -> Path:
        """Whatever the launch needs first (ports, folders); returns where the log goes."""
        if self.log_path is None:
            raise ValueError("log_path is required")
        return self.log_path

    def _readiness_probe(self) -> Callable[[], bool]:
        """A call that returns true (or stops raising ``OSError``) once the server answers."""
        raise NotImplementedError

    def start(self) -> Self:
        """Launch and wait until ready; raises ``start_error`` (with the log's tail)."""
        return self.launch().wait_ready()

    def launch(self) -> Self:
        """Start the process without waiting (start several, then ``wait_ready`` on each)."""
        if self._child is not None:
            raise RuntimeError("already started")
        self.log_path = self._prepare()
        command, env = self.command(), self.environment()
        self._launched_at = time.monotonic()
        self._child = ChildProcess(command, log_path=self.log_path, env=env, cwd=self._cwd)
        return self

    def wait_ready(self) -> Self:
        """Wait until the probe answers; on failure (or interruption) stop the process and raise."""
        if self._child is None:
            raise RuntimeError("not launched")
        try:
            wait_ready(
                self._child,
                self._readiness_probe(),
                name=self.label,
                timeout_s=self.ready_timeout_s,
                interval_s=self.ready_interval_s,
                error=self.start_error,
            )
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - self._launched_at
        return self

    def is_alive(self) -> bool:
        return self._child is not None and self._child.is_alive()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines the server wrote (its log file)."""
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM (in-flight work finishes), then SIGKILL of its process group; idempotent."""
        child, self._child = self._child, None
        if child is not None:
            child.stop(self.stop_timeout_s)
