"""worker.callbacks against a real keep-alive HTTP/1.1 receiver on loopback: one connection
serves many callbacks, and a receiver's long answer is never downloaded."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.contracts.jobs import JobEvent, JobEventType
from core.worker_settings import WorkerSettings, new_webhook_secret
from worker.callbacks import MAX_ANSWER_BYTES, CallbackSender, DeliveryStatus


class KeepAliveReceiver(ThreadingHTTPServer):
    """Answers every POST 200 with ``answer`` bytes over HTTP/1.1 keep-alive; counts connections."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                receiver.connections += 1

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                receiver.requests += 1
                self.send_response(200)
                self.send_header("content-length", str(len(receiver.answer)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the sender hung up on a long answer: as it should
                    self.wfile.write(receiver.answer)

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that hangs up mid-answer is expected here: nothing to report."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/shop"


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[KeepAliveReceiver]:
    server = KeepAliveReceiver(getattr(request, "param", b"ok"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def sender() -> CallbackSender:
    values: dict[str, Any] = {
        "_env_file": None,
        "callback_secret": new_webhook_secret(),
        "callback_allow_http": True,
        "callback_allowed_hosts": ["127.0.0.1"],
    }
    settings = WorkerSettings(**values)
    return CallbackSender(settings)


def event(n: int) -> JobEvent:
    data = {"job_id": f"job-{n}", "state": "succeeded"}
    return JobEvent(type=JobEventType.SUCCEEDED, timestamp=datetime(2026, 1, 2, tzinfo=UTC), data=data)


def test_callbacks_to_one_receiver_reuse_one_connection(receiver: KeepAliveReceiver) -> None:
    with sender() as callbacks:
        outcomes = [callbacks.deliver(receiver.url, event(n), requester="shop").status for n in range(5)]
    assert outcomes == [DeliveryStatus.DELIVERED] * 5
    assert (receiver.requests, receiver.connections) == (5, 1)


@pytest.mark.parametrize("receiver", [b"x" * (8 * MAX_ANSWER_BYTES)], indirect=True)
def test_a_long_answer_is_not_downloaded_and_its_connection_is_dropped(receiver: KeepAliveReceiver) -> None:
    with sender() as callbacks:
        outcomes = [callbacks.deliver(receiver.url, event(n), requester="shop").status for n in range(2)]
    assert outcomes == [DeliveryStatus.DELIVERED] * 2
    assert (receiver.requests, receiver.connections) == (2, 2)
