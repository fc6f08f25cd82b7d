"""The submit routes on their asyncio path (``api_async_submit``: ``producer.accept_async``) over
real Redis, RabbitMQ and the key store: the answers the submit-thread path gives.

The whole of ``tests/integration/test_api.py`` runs on this path too with
``ATELIER_API_ASYNC_SUBMIT=true`` in the environment; these tests pin it without that.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.keys.model import Scope
from api.keys.store import KeyStore
from api.settings import ApiSettings
from core.contracts.jobs import JobState
from core.errors import ErrorCode
from core.topology import build_topology
from producer.client import Producer
from tests.examples import LISTING_EXAMPLE, TRYON_EXAMPLE
from tests.integration.api_fixtures import api_settings, served_api
from tests.integration.services import drain, require_services

PEPPER = "api-async-test-pepper"
LISTING = {k: v for k, v in LISTING_EXAMPLE.items() if k not in ("requester", "idempotency_key")}
TRYON = {k: v for k, v in TRYON_EXAMPLE.items() if k != "requester"}
SCOPES = [Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ]


def async_settings(**overrides: Any) -> ApiSettings:
    return api_settings("api-async", api_async_submit=True, **overrides)


@pytest.fixture
def keys(keys_database: str) -> Iterator[KeyStore]:
    with KeyStore(keys_database, pepper=PEPPER) as store:
        yield store


@pytest.fixture
def api(keys: KeyStore) -> Iterator[tuple[str, Producer]]:
    require_services()
    with served_api(async_settings(), keys) as served:
        yield served


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_async_submit_queues_the_job_and_a_replay_is_200_with_the_same_job(
    api: tuple[str, Producer], keys: KeyStore
) -> None:
    url, producer = api
    with client(url, keys.create("shop-a", scopes=SCOPES)[1]) as shop:
        first = shop.post("/v1/listings", json=LISTING, headers={"Idempotency-Key": "k-1"})
        again = shop.post("/v1/listings", json=LISTING, headers={"Idempotency-Key": "k-1"})
        other = shop.post(
            "/v1/listings", json={**LISTING, "seed": LISTING["seed"] + 1}, headers={"Idempotency-Key": "k-1"}
        )
    assert first.status_code == 202 and first.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and other.status_code == 422
    assert producer.status(first.json()["id"]).state is JobState.QUEUED
    assert [h["id"] for h, _ in drain(build_topology(producer.settings).listing)] == [first.json()["id"]]


def test_async_tryon_checks_the_garment_listing_belongs_to_the_key(
    api: tuple[str, Producer], keys: KeyStore
) -> None:
    url, _ = api
    with (
        client(url, keys.create("shop-a", scopes=SCOPES)[1]) as a,
        client(url, keys.create("shop-b", scopes=SCOPES)[1]) as b,
    ):
        listing_of_b = b.post("/v1/listings", json=LISTING).json()["id"]
        borrowed = {**TRYON, "garment": {"source": "listing", "job_id": listing_of_b, "variant": 0}}
        refused = a.post("/v1/tryons", json=borrowed)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["body", "garment", "job_id"]
        own = {
            **borrowed,
            "garment": {**borrowed["garment"], "job_id": a.post("/v1/listings", json=LISTING).json()["id"]},
        }
        assert a.post("/v1/tryons", json=own).status_code == 202


def test_async_submit_with_the_broker_down_is_503_and_the_job_failed_publish_failed(keys: KeyStore) -> None:
    require_services()
    down = async_settings(
        broker_url=SecretStr("amqp://guest:guest@127.0.0.1:1//"), broker_connect_timeout_s=0.5
    )
    with served_api(down, keys) as (url, producer):
        with client(url, keys.create("shop-a", scopes=SCOPES)[1]) as shop:
            answer = shop.post("/v1/listings", json=LISTING, headers={"Idempotency-Key": "k-down"})
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert answer.headers["content-type"] == "application/problem+json"
        job_id = producer.store.find_by_idempotency_key("shop-a", "k-down")
        assert job_id is None  # released: a retry submits again
        failed = [
            producer.status(entry.job_id) for entry in producer.store.requester_index("shop-a", count=10)
        ]
        assert len(failed) == 1 and failed[0].state is JobState.FAILED
        assert failed[0].error is not None and failed[0].error.code == ErrorCode.PUBLISH_FAILED
