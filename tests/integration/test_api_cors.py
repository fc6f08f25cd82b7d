"""CORS per key (``api.cors``) and what a publishable key may do, over real HTTP (uvicorn, httpx)
against the real key store on a fresh PostgreSQL database, RabbitMQ and Redis.

A browser's preflight carries no key: it is granted for an origin registered on any active key
(the key store's ``all_origins``, cached in-process) and refused otherwise. The request itself
carries the key: a browser ``Origin`` must be one of *that key's* origins (403 problem naming the
rule otherwise, before anything is queued), and only then does the answer let the page read it
(``Access-Control-Allow-Origin``, exposed headers; ``Vary: Origin`` always). A publishable key
submits try-ons and reads the try-ons it submits; nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.cors import ORIGIN_NOT_ALLOWED, RegisteredOrigins
from api.keys.model import Scope
from api.keys.store import KeyStore
from api.settings import ApiSettings
from producer.client import Producer
from tests.examples import LISTING_EXAMPLE, TRYON_EXAMPLE
from tests.integration.services import AMQP_URL, BASE, namespace, remove_namespace, require_services, serving

PEPPER = "cors-test-pepper"
SHOP = "https://shop.example"
OTHER_SHOP = "https://other-shop.example"
EVIL = "https://evil.example"
#: how long the test app reuses the registered origins (short, so a new or revoked key shows)
ORIGINS_TTL_S = 0.5
LISTING = {k: v for k, v in LISTING_EXAMPLE.items() if k not in ("requester", "idempotency_key", "callback")}
TRYON = {k: v for k, v in TRYON_EXAMPLE.items() if k != "requester"}


@dataclass
class Api:
    url: str
    keys: KeyStore
    #: shop-c's publishable key (origin SHOP), its secret key, and shop-d's publishable key
    publishable: str
    secret: str
    other_publishable: str

    def call(
        self, method: str, path: str, token: str | None, *, origin: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if origin is not None:
            headers["Origin"] = origin
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def preflight(self, path: str, origin: str, method: str = "POST") -> httpx.Response:
        headers = {
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        return httpx.options(f"{self.url}{path}", headers=headers, timeout=10)


@pytest.fixture(scope="module")
def api(keys_database: str) -> Iterator[Api]:
    require_services()
    settings = ApiSettings.model_validate(
        {
            **BASE.model_dump(),
            **namespace("cors"),
            "publish_confirm_timeout_s": 5.0,
            "s3_secret_key": SecretStr("cors-test-secret"),
            "s3_public_endpoint": "http://images.test:9000",
        }
    )
    keys = KeyStore(keys_database, pepper=PEPPER)
    producer = Producer(settings)
    producer.publisher.declare()
    app = create_app(
        producer=producer,
        keys=keys,
        settings=settings,
        origins=RegisteredOrigins(keys, ttl_s=ORIGINS_TTL_S),
    )
    browser = [Scope.SUBMIT_TRYONS, Scope.READ]
    try:
        with serving(app) as url:
            yield Api(
                url=url,
                keys=keys,
                publishable=keys.create("shop-c", scopes=browser, publishable=True, cors_origins=[SHOP])[1],
                secret=keys.create(
                    "shop-c", scopes=[Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ, Scope.CANCEL]
                )[1],
                other_publishable=keys.create(
                    "shop-d", scopes=browser, publishable=True, cors_origins=[OTHER_SHOP]
                )[1],
            )
    finally:
        producer.close()
        keys.close()
        remove_namespace(settings, broker_url=AMQP_URL)


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if kind is not None:
        assert problem["type"] == f"https://atelier.dev/problems/{kind}", problem
    return problem


def assert_no_grant(response: httpx.Response) -> None:
    assert "access-control-allow-origin" not in response.headers
    assert "Origin" in response.headers.get("vary", "")


def vary(response: httpx.Response) -> list[str]:
    return [part.strip() for part in response.headers.get("vary", "").split(",")]


# --- preflight: no key, any active key's origin ---


def test_a_preflight_from_an_origin_registered_on_an_active_key_is_granted(api: Api) -> None:
    for origin in (SHOP, OTHER_SHOP):
        granted = api.preflight("/v1/tryons", origin)
        assert granted.status_code == 204, granted.text
        assert granted.headers["access-control-allow-origin"] == origin
        assert "POST" in granted.headers["access-control-allow-methods"]
        allowed = granted.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert int(granted.headers["access-control-max-age"]) > 0
        assert "Origin" in vary(granted)
        assert "access-control-allow-credentials" not in granted.headers


def test_a_preflight_from_an_origin_no_key_registers_is_a_403_problem_without_a_grant(api: Api) -> None:
    refused = api.preflight("/v1/tryons", EVIL)
    problem = assert_problem(refused, 403, ORIGIN_NOT_ALLOWED)
    assert EVIL in problem["detail"]
    assert_no_grant(refused)


def test_preflights_follow_keys_created_and_revoked_within_the_cache_lifetime(api: Api) -> None:
    late = "https://late.example"
    assert api.preflight("/v1/jobs/x", late, "GET").status_code == 403
    key, _ = api.keys.create("shop-e", scopes=[Scope.READ], publishable=True, cors_origins=[late])
    time.sleep(ORIGINS_TTL_S + 0.2)
    assert api.preflight("/v1/jobs/x", late, "GET").status_code == 204
    api.keys.revoke(key.key_id)
    time.sleep(ORIGINS_TTL_S + 0.2)
    assert api.preflight("/v1/jobs/x", late, "GET").status_code == 403


# --- the request itself: its own key's origins only ---


def test_a_publishable_key_from_its_origin_submits_and_reads_a_tryon_and_the_page_reads_the_answers(
    api: Api,
) -> None:
    submitted = api.call("POST", "/v1/tryons", api.publishable, origin=SHOP, json=TRYON)
    assert submitted.status_code == 202, submitted.text
    assert submitted.headers["access-control-allow-origin"] == SHOP
    exposed = [h.strip() for h in submitted.headers["access-control-expose-headers"].split(",")]
    assert {"Location", "Retry-After", "Idempotent-Replayed"} <= set(exposed)
    assert "Origin" in vary(submitted)
    read = api.call("GET", submitted.headers["location"], api.publishable, origin=SHOP)
    assert read.status_code == 200 and read.json()["id"] == submitted.json()["id"]
    assert read.headers["access-control-allow-origin"] == SHOP
    # an error the page should read (here a 404) carries the grant too
    missing = api.call("GET", "/v1/jobs/" + "0" * 32, api.publishable, origin=SHOP)
    assert_problem(missing, 404)
    assert missing.headers["access-control-allow-origin"] == SHOP


def test_an_origin_not_on_the_requests_own_key_is_a_403_naming_the_rule_and_queues_nothing(
    api: Api,
) -> None:
    before = api.call("GET", "/v1/jobs", api.secret).json()["jobs"]
    # EVIL is on no key; OTHER_SHOP is on another tenant's key: neither is this key's
    for origin in (EVIL, OTHER_SHOP):
        refused = api.call("POST", "/v1/tryons", api.publishable, origin=origin, json=TRYON)
        problem = assert_problem(refused, 403, ORIGIN_NOT_ALLOWED)
        assert origin in problem["detail"] and "registered on it" in problem["detail"]
        assert_no_grant(refused)
    assert api.call("GET", "/v1/jobs", api.secret).json()["jobs"] == before


def test_a_secret_key_is_refused_from_a_browser_but_not_from_a_server_or_the_apis_own_pages(
    api: Api,
) -> None:
    refused = api.call("POST", "/v1/tryons", api.secret, origin=SHOP, json=TRYON)
    problem = assert_problem(refused, 403, ORIGIN_NOT_ALLOWED)
    assert "secret key" in problem["detail"]
    assert_no_grant(refused)
    server = api.call("POST", "/v1/tryons", api.secret, json=TRYON)
    assert server.status_code == 202 and "access-control-allow-origin" not in server.headers
    assert "Origin" in vary(server)  # a cache never serves a server's answer to a browser
    same_origin = api.call("GET", "/v1/jobs", api.secret, origin=api.url)
    assert same_origin.status_code == 200, same_origin.text


def test_a_request_without_a_key_is_401_whatever_its_origin(api: Api) -> None:
    refused = api.call("GET", "/v1/jobs/" + "0" * 32, None, origin=SHOP)
    assert_problem(refused, 401)
    assert "access-control-allow-origin" not in refused.headers


# --- what a publishable key may do ---


def test_a_publishable_key_may_not_list_cancel_erase_or_submit_listings(api: Api) -> None:
    listed = api.call("GET", "/v1/jobs", api.publishable, origin=SHOP)
    assert_problem(listed, 403, "publishable-key-cannot-list")
    assert listed.headers["access-control-allow-origin"] == SHOP  # the page reads why
    job_id = api.call("POST", "/v1/tryons", api.publishable, origin=SHOP, json=TRYON).json()["id"]
    for method, path, body in (
        ("POST", f"/v1/jobs/{job_id}/cancel", None),
        ("DELETE", f"/v1/tryons/{job_id}", None),
        ("POST", "/v1/listings", LISTING),
        ("POST", "/v1/listings:batch", {"items": [LISTING]}),
    ):
        refused = api.call(method, path, api.publishable, origin=SHOP, json=body)
        assert "lacks the" in assert_problem(refused, 403)["detail"], (method, path)
    assert api.call("GET", f"/v1/jobs/{job_id}", api.publishable).json()["state"] == "queued"


def test_a_publishable_key_reads_no_listing_job_of_its_tenant(api: Api) -> None:
    listing = api.call("POST", "/v1/listings", api.secret, json=LISTING)
    assert listing.status_code in (200, 202), listing.text
    job_id = listing.json()["id"]
    assert api.call("GET", f"/v1/jobs/{job_id}", api.secret).status_code == 200
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events"):
        assert_problem(api.call("GET", path, api.publishable, origin=SHOP), 404)
