"""A requester's callback endpoint, for the demo and the tests: an HTTP server on a thread that
verifies each callback's signature with ``producer.webhook_verify`` and keeps what it received.

``POST /hooks/<requester>`` is checked with that requester's secrets (else the default
secret): 204 when the signature verifies, 400 when it does not. Every POST is recorded.
It speaks HTTP/1.1 and keeps connections open, as real endpoints do (a sender pays one TCP
handshake per connection, not per callback); :meth:`CallbackReceiver.stop` closes them, so a
stopped receiver takes nothing more on a kept connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.contracts.jobs import JobEvent
from embedded.process import HOST, Server
from producer.webhook_verify import WebhookVerificationError, verify

#: the path prefix each requester's callbacks are POSTed under
HOOKS = "/hooks/"
#: seconds an idle kept connection stays open (a sender reconnects after)
KEEP_ALIVE_S = 30.0


@dataclass(frozen=True)
class Received:
    """One POST: its path, headers (lower-case names), raw body, and the verified event."""

    path: str
    headers: dict[str, str]
    body: bytes
    event: JobEvent | None  #: ``None`` when the signature did not verify
    error: str | None  #: why it did not
    at: float  #: ``time.time()`` on arrival

    @property
    def requester(self) -> str:
        return self.path.removeprefix(HOOKS)


class CallbackReceiver(Server):
    """Takes signed callbacks on ``127.0.0.1`` (a free port); a context manager.

    Parameters (keyword-only): ``secrets`` (requester -> secret or secrets, newest first),
    ``default_secret`` (for requesters not in ``secrets``), ``answer`` (the status code to send
    for a verified POST, given what arrived; default 204), ``port`` (default 0: a free one; a
    fixed port lets a stopped receiver come back at the same URL, as the fault suite does).
    """

    def __init__(
        self,
        *,
        secrets: Mapping[str, str | Sequence[str]] | None = None,
        default_secret: str | None = None,
        answer: Callable[[Received], int] | None = None,
        port: int = 0,
    ) -> None:
        self.port = port
        self.secrets = dict(secrets or {})
        self.default_secret = default_secret
        self.answer = answer or (lambda received: 204)
        self._received: list[Received] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def url_for(self, requester: str) -> str:
        """Where ``requester``'s callbacks go."""
        return f"{self.base_url}{HOOKS}{requester}"

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout_s: float) -> bool:
        """Wait until ``condition(received)`` holds; ``False`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not condition(list(self._received)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _secrets_for(self, path: str) -> list[str]:
        found = self.secrets.get(path.removeprefix(HOOKS))
        if found is None:
            return [self.default_secret] if self.default_secret else []
        return [found] if isinstance(found, str) else list(found)

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        event: JobEvent | None = None
        error: str | None = None
        try:
            event = verify(body, headers, self._secrets_for(path))
        except WebhookVerificationError as refused:
            error = str(refused)
        received = Received(path, headers, body, event, error, time.time())
        with self._changed:
            self._received.append(received)
            self._changed.notify_all()
        return self.answer(received) if event is not None else 400

    def start(self) -> CallbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every answer says its content-length
            timeout = KEEP_ALIVE_S

            def setup(self) -> None:
                super().setup()
                with receiver._connections_lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._connections_lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._record(self.path, headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet: the demo prints its own summary
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="callback-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._connections_lock:
            kept, self._connections = list(self._connections), set()
        for connection in kept:  # a kept connection must not outlive the receiver
            with contextlib.suppress(OSError):  # the peer may have closed it meanwhile
                connection.shutdown(socket.SHUT_RDWR)
