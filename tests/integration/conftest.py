"""Shared services of the integration tests: one real Triton server serving the committed
``triton_models/`` (the trained product cGAN and try-on cVAE), and fresh PostgreSQL databases
for the key store (``atelier_test_<random>``, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from embedded.postgres import scratch_database
from embedded.triton import DEFAULT_REPOSITORY, TritonServer


@pytest.fixture(scope="session")
def triton_repository() -> Path:
    return DEFAULT_REPOSITORY


@pytest.fixture(scope="session")
def triton(triton_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    with TritonServer(triton_repository, log_path=log) as server:
        yield server


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new, empty database on the configured server (``ATELIER_DATABASE_URL``),
    dropped afterwards (even with connections left open)."""
    from api.keys.settings import DatabaseSettings

    with scratch_database(DatabaseSettings().database_url.get_secret_value(), prefix="atelier_test") as url:
        yield url


@pytest.fixture(scope="module")
def keys_database() -> Iterator[str]:
    """A fresh database migrated to the key store's head revision, for one test module."""
    from api.keys.migrate import upgrade

    with fresh_postgres_database() as url:
        upgrade(url)
        yield url
