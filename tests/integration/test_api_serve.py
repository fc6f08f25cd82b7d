"""``atelier api serve`` as a process (``embedded.services.ApiServer``) on the real Redis, RabbitMQ
and a fresh key store: it logs no line per request unless started with ``--access-log``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.settings import AtelierSettings
from embedded.services import ApiServer
from tests.integration.services import AMQP_URL, BASE, namespace, remove_namespace, require_services

PEPPER = "api-serve-test-pepper"


class AccessLoggingApi(ApiServer):
    """The same server, started with ``--access-log``."""

    def command(self) -> list[str]:
        return [*super().command(), "--access-log"]


@pytest.fixture(scope="module")
def settings() -> Iterator[AtelierSettings]:
    require_services()
    settings = AtelierSettings.model_validate({**BASE.model_dump(), **namespace("api-serve")})
    try:
        yield settings
    finally:
        remove_namespace(settings, broker_url=AMQP_URL)


def served_log(server: ApiServer, log_path: Path) -> str:
    """Start ``server`` (logging to ``log_path``), send it two requests, stop it; its log."""
    server.start()
    try:
        for path in ("/healthz", "/no-such-route"):
            httpx.get(server.url + path, timeout=10)
    finally:
        server.stop()
    return log_path.read_text()


@pytest.mark.parametrize(("server_class", "logged"), [(ApiServer, False), (AccessLoggingApi, True)])
def test_requests_are_logged_one_line_each_only_with_access_log(
    settings: AtelierSettings, keys_database: str, tmp_path: Path, server_class: type[ApiServer], logged: bool
) -> None:
    server = server_class(
        settings=settings, log_path=tmp_path / "api.log", database_url=keys_database, key_pepper=PEPPER
    )
    log = served_log(server, tmp_path / "api.log")
    assert "Application startup complete" in log  # the server's own log stays on
    assert ('"GET /healthz HTTP/1.1" 200' in log) is logged
    assert ('"GET /no-such-route HTTP/1.1" 404' in log) is logged
