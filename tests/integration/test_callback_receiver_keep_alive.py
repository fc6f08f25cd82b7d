"""The demo's and benchmarks' callback receiver keeps connections open like a real endpoint, and
closes them when stopped (a stopped receiver must take nothing more, as the fault suite needs)."""

from __future__ import annotations

import socket

from embedded.receiver import CallbackReceiver

REQUEST = (
    b"POST /hooks/acme HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


def answer(sock: socket.socket) -> bytes:
    """One response's head (the receiver's answers have no body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_two_posts_share_one_connection_and_stop_closes_it() -> None:
    receiver = CallbackReceiver(default_secret="whsec_" + "A" * 32).start()
    try:
        host, port = receiver.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            for _ in range(2):
                sock.sendall(REQUEST)
                head = answer(sock)
                assert head.startswith(b"HTTP/1.1 400"), head  # unsigned: refused, and recorded
                assert b"connection: close" not in head.lower()
            assert len(receiver.received) == 2

            receiver.stop()

            assert sock.recv(4096) == b""  # the kept connection was closed with the receiver
    finally:
        receiver.stop()
