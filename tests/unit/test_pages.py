"""``api.pages``: the try-on page is served with a browser-safe key or not at all, under a strict
Content Security Policy, and is no API operation (a stub key verifier and Starlette's test
client here; the page in a real browser on the real stack in ``tests/browser/``)."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from api.app import create_app
from api.keys.errors import KeyStoreUnavailable
from api.keys.model import ApiKey, Scope
from api.pages import PageSettings
from api.readiness import Readiness
from api.settings import ApiSettings

with warnings.catch_warnings():  # starlette's notice about httpx, not ours to act on
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PAGE_SCOPES = frozenset({Scope.SUBMIT_TRYONS, Scope.READ})
#: the stub's keys: token -> key
KEYS = {
    "atl_publishable": ApiKey(
        "k-pub", "shop", PAGE_SCOPES, publishable=True, cors_origins=("https://s.example",)
    ),
    "atl_secret": ApiKey("k-sec", "shop", PAGE_SCOPES | {Scope.SUBMIT_LISTINGS}),
    "atl_read_only": ApiKey("k-read", "shop", frozenset({Scope.READ}), publishable=True),
}


class StubKeys:
    def __init__(self) -> None:
        self.down = False

    def authenticate(self, secret: str) -> ApiKey | None:
        if self.down:
            raise KeyStoreUnavailable("the key store is unavailable: stub")
        return KEYS.get(secret)


def client(page_key: str = "", keys: StubKeys | None = None, **settings: object) -> TestClient:
    api_settings = ApiSettings.model_validate({"api_rate_limit": "", **settings})
    app = create_app(
        producer=None,  # type: ignore[arg-type]  # no route here submits
        keys=keys or StubKeys(),
        settings=api_settings,
        readiness=Readiness(api_settings, probes={}),
        pages=PageSettings(tryon_page_key=SecretStr(page_key)),
    )
    return TestClient(app)


def page_config(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="page-config">(.*?)</script>', html, re.S)
    assert found is not None
    config: dict[str, object] = json.loads(found.group(1))
    return config


@pytest.fixture
def quiet_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level("ERROR", logger="api.pages.tryon"):
        yield caplog


def test_the_page_and_its_files_are_not_api_operations() -> None:
    paths = client().get("/openapi.json").json()["paths"]
    assert not [path for path in paths if not path.startswith(("/v1", "/healthz", "/readyz"))]


def test_without_a_configured_key_the_page_asks_for_one() -> None:
    answer = client().get("/try-on")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert page_config(answer.text)["key"] is None
    assert 'id="connect"' in answer.text


def test_a_configured_publishable_key_is_written_into_the_page() -> None:
    answer = client("atl_publishable").get("/try-on")
    assert answer.status_code == 200
    config = page_config(answer.text)
    assert config["key"] == "atl_publishable"
    assert config["paths"] == {"submit": "/v1/tryons", "jobs": "/v1/jobs/", "keyCheck": "/try-on/key"}
    terminal = config["terminalStates"]
    assert isinstance(terminal, list) and {"succeeded", "failed", "canceled"} <= set(terminal)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("atl_secret", "a secret key must never reach a browser"),
        ("atl_read_only", "lacks the scopes this page uses: submit:tryons"),
        ("atl_unknown", "unknown or revoked"),
    ],
)
def test_a_configured_key_a_browser_must_not_hold_stops_the_page(
    token: str, why: str, quiet_log: pytest.LogCaptureFixture
) -> None:
    answer = client(token).get("/try-on")
    assert answer.status_code == 500
    assert token not in answer.text and "page-config" not in answer.text
    assert "This page is not available" in answer.text
    assert why in quiet_log.text and token not in quiet_log.text


def test_the_page_waits_while_the_key_store_is_down() -> None:
    keys = StubKeys()
    keys.down = True
    answer = client("atl_publishable", keys).get("/try-on")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"


def test_the_key_check_accepts_only_a_browser_safe_key() -> None:
    checked = client()
    answers = {
        token: checked.get("/try-on/key", headers={"Authorization": f"Bearer {token}"})
        for token in ("atl_publishable", "atl_secret", "atl_read_only", "atl_unknown")
    }
    assert answers["atl_publishable"].status_code == 204
    assert answers["atl_secret"].status_code == 403
    assert answers["atl_secret"].json()["type"] == "https://atelier.dev/problems/key-not-for-pages"
    assert answers["atl_read_only"].status_code == 403
    assert answers["atl_unknown"].status_code == 401
    assert checked.get("/try-on/key").status_code == 401


def test_the_page_runs_under_a_strict_policy_with_images_from_where_links_point() -> None:
    answer = client(s3_public_endpoint="https://images.shop.example").get("/try-on")
    policy = dict(part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["img-src"] == "'self' data: https://images.shop.example"
    nonce = re.search(r"'nonce-([^']+)'", policy["style-src"])
    assert nonce is not None and f'<style nonce="{nonce.group(1)}">' in answer.text
    assert "<script>" not in answer.text  # no inline script: data goes in as JSON
    assert answer.headers["referrer-policy"] == "no-referrer"
    second = client().get("/try-on").headers["content-security-policy"]
    assert nonce.group(1) not in second  # a nonce per answer
    assert "img-src 'self' data: http://127.0.0.1:9000" in second  # no public endpoint: s3_endpoint


def test_the_static_files_are_served_with_validators() -> None:
    answer = client().get("/static/try-on.js")
    assert answer.status_code == 200 and "javascript" in answer.headers["content-type"]
    assert "etag" in answer.headers and "last-modified" in answer.headers
