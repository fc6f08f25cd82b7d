"""A private RabbitMQ node as a child process, for the fault suite's broker restarts.

The fault suite kills and restarts the broker; doing that to the machine's shared RabbitMQ
would break every other client of it, so the suite starts its own node from the same Debian
package (``rabbitmq-server``, which ``scripts/setup.sh`` installs): its own node name, AMQP and
distribution ports, data folder and Erlang cookie (``HOME``). The data folder survives a
restart, so quorum queues come back with their messages, as on a real broker.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from embedded.process import DEFAULT_STATE_DIR, HOST, ChildServer, ServerStartError, free_port

#: seconds to wait for the AMQP listener (a cold node boots in about 5 s on 2 cores)
DEFAULT_READY_TIMEOUT_S = 60.0
#: seconds between SIGTERM and SIGKILL when stopping (a clean shutdown takes a few)
DEFAULT_STOP_TIMEOUT_S = 20.0
#: what an AMQP 0-9-1 client sends first; the broker answers with a ``connection.start`` frame
AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
#: the type byte of a method frame, which ``connection.start`` is
AMQP_METHOD_FRAME = 1
#: the server script of the Debian package (``/usr/sbin/rabbitmq-server`` wraps it and insists
#: on running as the ``rabbitmq`` user)
PACKAGED_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class RabbitMQStartError(ServerStartError):
    """The node exited or its AMQP listener did not answer; the message carries the log's tail."""


def rabbitmq_binary() -> Path:
    if PACKAGED_SERVER.exists():
        return PACKAGED_SERVER
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise FileNotFoundError("no rabbitmq-server: run scripts/setup.sh (apt-get install rabbitmq-server)")
    return Path(found)


def amqp_answers(port: int, timeout_s: float = 1.0) -> bool:
    """Whether an AMQP 0-9-1 broker on ``127.0.0.1:port`` starts a connection handshake."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as connection:
        connection.sendall(AMQP_PROTOCOL_HEADER)
        first = connection.recv(1)
    return first == bytes([AMQP_METHOD_FRAME])


class RabbitMQServer(ChildServer):
    """One RabbitMQ node on ``127.0.0.1`` with ``guest``/``guest``; a context manager.

    Parameters, all keyword-only: ``port`` (AMQP; default a free one), ``dist_port`` (Erlang
    distribution; default a free one), ``state_dir`` (default ``.atelier/``; the node's data
    lives in ``state_dir/rabbitmq-<port>``), ``log_path``, ``ready_timeout_s`` (60),
    ``stop_timeout_s`` (20). ``stop()`` then ``start()`` restarts the same node on the same
    ports with its data.
    """

    label = "rabbitmq-server"
    start_error = RabbitMQStartError

    def __init__(
        self,
        *,
        port: int | None = None,
        dist_port: int | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
        log_path: Path | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(log_path=log_path, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s)
        self.port = port
        self.dist_port = dist_port
        self.state_dir = Path(state_dir)

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>//``, as ``ATELIER_BROKER_URL`` takes it."""
        return f"amqp://guest:guest@{HOST}:{self.port}//"

    @property
    def node_dir(self) -> Path:
        return self.state_dir / f"rabbitmq-{self.port}"

    @property
    def node_name(self) -> str:
        return f"atelier-{self.port}@localhost"

    def command(self) -> list[str]:
        return [str(rabbitmq_binary())]

    def environment(self) -> dict[str, str]:
        """The node's own name, ports, folders and cookie (``HOME``), none shared with the system node."""
        node = self.node_dir
        return {
            **os.environ,
            "HOME": str(node),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node / "log"),
            "RABBITMQ_CONFIG_FILE": str(node / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(node / "node.pid"),
            "ERL_EPMD_ADDRESS": HOST,
        }

    def _prepare(self) -> Path:
        self.port = self.port or free_port()
        self.dist_port = self.dist_port or free_port()
        node = self.node_dir
        node.mkdir(parents=True, exist_ok=True)
        # guest may log in from loopback only, which is where every client of this node is
        (node / "rabbitmq.conf").write_text(f"listeners.tcp.default = {HOST}:{self.port}\n")
        (node / "enabled_plugins").write_text("[].\n")
        return self.log_path or self.state_dir / "logs" / f"rabbitmq-{self.port}.log"

    def _readiness_probe(self) -> Callable[[], bool]:
        port = self.port
        assert port is not None
        return lambda: amqp_answers(port)
