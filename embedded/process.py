"""What every embedded server shares: free ports, a child process that dies with us, a clean stop.

``ChildProcess`` launches a server in its own session with its output in a log file, asks Linux
to SIGTERM it when the launching thread exits (a test session or CLI killed without cleanup
leaves nothing behind), and stops it with SIGTERM, then SIGKILL of its whole process group.
``wait_ready`` polls a probe until the server answers, failing fast with the log's tail.
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
