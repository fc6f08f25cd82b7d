"""The private PostgreSQL cluster of ``atelier up`` (``embedded.postgres``): the real ``initdb`` and
``postgres`` of the Debian package, reached with psycopg, stopped with nothing left running."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from embedded.postgres import PostgresServer


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A state folder the ``postgres`` system user can reach when we are root (pytest's own
    temporary folders sit under a ``0700`` folder of root's)."""
    folder = Path(tempfile.mkdtemp(prefix="atelier-pg-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def connect(server: PostgresServer, database: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=server.port,
        user="postgres",
        dbname=database,
        connect_timeout=5,
        autocommit=True,
    )


def test_cluster_starts_accepts_a_connection_keeps_its_data_and_stops(state_dir: Path) -> None:
    server = PostgresServer(state_dir=state_dir)
    with server:
        pid = server.pid
        assert pid is not None and server.is_alive()
        with connect(server) as connection:
            connection.execute("CREATE DATABASE atelier")
        with connect(server, "atelier") as connection:
            connection.execute("CREATE TABLE kept (value text)")
            connection.execute("INSERT INTO kept VALUES ('across a restart')")
            user = connection.execute("SELECT current_user").fetchone()
        assert user == ("postgres",)
        if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as the postgres user
            assert os.stat(f"/proc/{pid}").st_uid != 0
        assert server.url.endswith(f"@127.0.0.1:{server.port}/atelier")
    assert not server.is_alive()
    assert not Path(f"/proc/{pid}").exists(), "the postmaster outlived stop()"
    with pytest.raises(psycopg.OperationalError):
        connect(server)

    with PostgresServer(state_dir=state_dir) as again, connect(again, "atelier") as connection:
        assert connection.execute("SELECT value FROM kept").fetchall() == [("across a restart",)]


def test_a_cluster_that_cannot_start_raises_with_its_log(state_dir: Path) -> None:
    with PostgresServer(state_dir=state_dir) as first:
        # the data folder is locked by the running cluster: a second postmaster on it exits at once
        second = PostgresServer(state_dir=state_dir, ready_timeout_s=10)
        with pytest.raises(second.start_error, match="exited with"):
            second.start()
        assert first.is_alive()
