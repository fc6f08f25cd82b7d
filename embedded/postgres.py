"""A private PostgreSQL cluster as a child process: ``initdb`` once, then ``postgres`` in the foreground.

``atelier up`` keeps tenants and API keys here unless ``ATELIER_DATABASE_URL`` names a server. The
binaries are Debian's (``postgresql`` package, which ``scripts/setup.sh`` installs) under
``/usr/lib/postgresql/<version>/bin``, the newest version found. The cluster is the server's own:
its data folder (``state_dir/postgres``, kept between runs, so keys outlive a restart), its
port, its unix socket folder (``state_dir/postgres-socket``), and trust authentication for the
superuser ``postgres`` on loopback, as the machine's own PostgreSQL is set up for the tests.

PostgreSQL refuses to run as root. Run as root (a container, CI), the cluster's files are
handed to the ``postgres`` system user the package creates and the server is started through
``setpriv`` (util-linux) as that user: ``setpriv`` execs in place, with no watching parent in
between, so our signals reach the postmaster itself, and ``--pdeathsig`` keeps it from outliving
us (a change of user clears the death signal ``embedded.process`` set). Every folder above the
state folder must then be searchable by that user (``/tmp/pytest-of-root`` is not).

Stopping sends SIGINT, PostgreSQL's *fast* shutdown (SIGTERM's smart shutdown would wait for
every client to disconnect), then SIGKILL of the group after ``stop_timeout_s``.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from embedded.process import DEFAULT_STATE_DIR, HOST, ChildServer, ServerStartError, free_port

#: where Debian's ``postgresql-<version>`` packages put their programs
DEBIAN_ROOT = Path("/usr/lib/postgresql")
#: the cluster's superuser, trusted on loopback and the socket
SUPERUSER = "postgres"
#: the system user the server runs as when we are root (the Debian package creates it)
ROOT_RUN_AS = "postgres"
#: seconds to wait for the server to accept connections (after ``initdb``, which runs first)
DEFAULT_READY_TIMEOUT_S = 30.0
#: seconds between SIGINT (fast shutdown) and SIGKILL
DEFAULT_STOP_TIMEOUT_S = 15.0
#: seconds ``initdb`` may take (a few on a busy machine)
INITDB_TIMEOUT_S = 120.0


class PostgresStartError(ServerStartError):
    """``initdb`` failed, or ``postgres`` exited or did not accept connections; with the log's tail."""


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``postgres``."""
    found = [
        path / "bin"
        for path in (DEBIAN_ROOT.iterdir() if DEBIAN_ROOT.is_dir() else ())
        if re.fullmatch(r"\d+(\.\d+)?", path.name) and (path / "bin" / "initdb").exists()
    ]
    if not found:
        raise FileNotFoundError(
            f"no initdb under {DEBIAN_ROOT}/<version>/bin: run scripts/setup.sh (apt-get install postgresql)"
        )
    return max(found, key=lambda bindir: float(bindir.parent.name))


def accepts_connections(bindir: Path, port: int, timeout_s: int = 1) -> bool:
    """Whether the server on ``127.0.0.1:port`` accepts connections (``pg_isready``: no client library)."""
    answer = subprocess.run(
        [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-t", str(timeout_s)],
        check=False,
        capture_output=True,
    )
    return answer.returncode == 0


class PostgresServer(ChildServer):
    """One PostgreSQL cluster on ``127.0.0.1`` with trust auth for ``postgres``; a context manager.

    Parameters, all keyword-only: ``port`` (default a free one), ``state_dir`` (default
    ``.atelier/``; data in ``state_dir/postgres``, created by ``initdb`` on first start and kept),
    ``database`` (the one :attr:`url` names, default ``atelier``; created by whoever migrates
    it, e.g. ``api.keys.migrate.ensure_database``), ``run_as`` (the system user the server runs
    as; default ``postgres`` when we are root, else ourselves), ``log_path`` (default
    ``state_dir/logs/postgres-<port>.log``), ``ready_timeout_s`` (30), ``stop_timeout_s`` (15).
    """

    label = "postgres"
    start_error = PostgresStartError

    def __init__(
        self,
        *,
        port: int | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
        database: str = "atelier",
        run_as: str | None = None,
        log_path: Path | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
    ) -> None:
        super().__init__(log_path=log_path, ready_timeout_s=ready_timeout_s, stop_timeout_s=stop_timeout_s)
        self.port = port
        self.state_dir = Path(state_dir)
        self.database = database
        self.run_as = run_as if run_as is not None else (ROOT_RUN_AS if os.geteuid() == 0 else None)
        self.bindir = postgres_bindir()

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.state_dir / "postgres-socket"

    @property
    def url(self) -> str:
        """``postgresql+psycopg://postgres@127.0.0.1:<port>/<database>``, as ``ATELIER_DATABASE_URL``
        takes it."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{self.database}"

    def command(self) -> list[str]:
        return [
            *self._as_user(),
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            f"listen_addresses={HOST}",
        ]

    def _as_user(self) -> list[str]:
        """The ``setpriv`` prefix that runs a program as ``run_as`` (nothing if that is us)."""
        if self.run_as is None or self.run_as == pwd.getpwuid(os.geteuid()).pw_name:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise FileNotFoundError("no setpriv (util-linux): needed to run PostgreSQL as a non-root user")
        return [
            setpriv,
            f"--reuid={self.run_as}",
            f"--regid={self.run_as}",
            "--init-groups",
            "--pdeathsig=INT",
        ]

    def _prepare(self) -> Path:
        self.port = self.port or free_port()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._as_user():  # the server's user owns its files
            owner = pwd.getpwnam(self.run_as or "")
            for folder in (self.data_dir, self.socket_dir):
                os.chown(folder, owner.pw_uid, owner.pw_gid)
        self.data_dir.chmod(0o700)  # PostgreSQL refuses a data folder others can read
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        return self.log_path or self.state_dir / "logs" / f"postgres-{self.port}.log"

    def _initdb(self) -> None:
        """Create the cluster: superuser ``postgres``, trust auth (loopback and socket only), UTF-8."""
        done = subprocess.run(
            [
                *self._as_user(),
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=INITDB_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise PostgresStartError(f"initdb exited with {done.returncode}\n{done.stdout}{done.stderr}")

    def _readiness_probe(self) -> Callable[[], bool]:
        port = self.port
        assert port is not None
        return lambda: accepts_connections(self.bindir, port)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, the cluster is checkpointed), then the
        SIGTERM/SIGKILL of ``ChildServer.stop`` if it takes longer than ``stop_timeout_s``."""
        child = self._child
        if child is not None and child.is_alive():
            os.kill(child.pid, signal.SIGINT)
            deadline = time.monotonic() + self.stop_timeout_s
            while child.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        super().stop()


@contextmanager
def scratch_database(server_url: str, *, prefix: str = "atelier_scratch") -> Iterator[str]:
    """The URL of a new, empty database on the server ``server_url`` names, dropped on leaving
    (even with connections left open): for tests and benchmarks that need a clean key store."""
    from sqlalchemy import create_engine, make_url, pool, text

    server = make_url(server_url)
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(
        server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
