"""``Vary: Origin`` from ``api.cors.KeyCors`` on answers to requests without ``Origin`` (servers,
the CLI): added to every ``/v1`` answer, merged with a ``Vary`` the app set, never on other paths,
and the same whether the request had an ``Origin`` or not."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.cors import KeyCors, NoOrigins, RegisteredOrigins


def answer(request: Request) -> PlainTextResponse:
    headers = {"Vary": "Accept-Encoding"} if request.query_params.get("vary") else {}
    return PlainTextResponse("ok", headers=headers)


def client() -> TestClient:
    inner = Starlette(routes=[Route("/v1/thing", answer), Route("/healthz", answer)])
    return TestClient(KeyCors(inner, origins=RegisteredOrigins(NoOrigins())))


@pytest.mark.parametrize("origin", [None, "https://shop.example"])
def test_v1_answers_vary_by_origin_merged_with_the_apps_own_vary(origin: str | None) -> None:
    headers = {} if origin is None else {"Origin": origin}
    with client() as http:
        plain = http.get("/v1/thing", headers=headers)
        merged = http.get("/v1/thing?vary=1", headers=headers)
        other = http.get("/healthz", headers=headers)
    assert plain.headers.get_list("vary") == ["Origin"]
    assert merged.headers.get_list("vary") == ["Accept-Encoding, Origin"]
    assert "vary" not in other.headers and other.text == "ok"
    assert "access-control-allow-origin" not in plain.headers  # no grant without a key's origin
