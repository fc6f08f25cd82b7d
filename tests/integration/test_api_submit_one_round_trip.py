"""A submit's rate and quota counted by its job's create script (``api.limits.SubmitLimits`` through
``Producer.accept``'s admission hook), over real HTTP on the real PostgreSQL (keys), Redis and
RabbitMQ: a plain submit makes one Redis round trip in all, FastAPI's path two; a refused submit
(rate or quota) stores nothing and publishes nothing; an idempotent replay takes no quota, also
under concurrent identical submits; and the order of the answers (``api.routes.submit``): a 429
for the rate before a 422, a 422 before a 429 for the quota, on both paths.

The module works on its own exchange, queues and Redis prefix and its own database; no worker
runs (so every published try-on stays in its queue, where it is counted). Each test makes its
own keys and requester, so limits and jobs never carry over.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
import redis
from pydantic import SecretStr

from api.app import create_app
from api.keys.model import Scope
from api.keys.store import KeyStore
from api.limits import KeyLimits
from api.settings import ApiSettings
from core.jobs import JobStore
from tests.examples import TRYON_EXAMPLE
from tests.integration.services import (
    AMQP_URL,
    BASE,
    namespace,
    queue_depth,
    remove_namespace,
    require_services,
    serving,
)
from tests.redis_monitor import RedisCommands

PEPPER = "one-round-trip-test-pepper"
TRYON = {k: v for k, v in TRYON_EXAMPLE.items() if k != "requester"}
#: the content type of a plain submit, and one FastAPI answers (the shortcut takes only the first)
PATHS = {"plain": "application/json", "fastapi": "application/json; charset=utf-8"}


@dataclass
class Api:
    url: str
    settings: ApiSettings
    keys: KeyStore

    def client(
        self, *, path: str = "plain", rate_limit: str | None = None, daily_quota: int | None = None
    ) -> tuple[httpx.Client, str, str]:
        """A client with a new key (of a new requester): the client, the key id, the requester."""
        requester = f"shop-{uuid.uuid4().hex[:8]}"
        key, token = self.keys.create(
            requester,
            scopes=[Scope.SUBMIT_TRYONS, Scope.READ],
            rate_limit=rate_limit,
            daily_quota=daily_quota,
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": PATHS[path]}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20), key.key_id, requester

    def quota_used(self, key_id: str) -> int:
        client = redis.Redis.from_url(self.settings.redis_url.get_secret_value())
        try:
            return int(client.get(f"{KeyLimits(self.settings).prefix}quota:{key_id}") or 0)
        finally:
            client.close()

    def jobs_of(self, requester: str) -> list[str]:
        store = JobStore(self.settings)
        try:
            return [entry.job_id for entry in store.requester_index(requester)]
        finally:
            store.close()

    def queued(self) -> int:
        return queue_depth(self.settings, self.settings.tryon_queue)


@pytest.fixture(scope="module")
def settings() -> Iterator[ApiSettings]:
    require_services()
    settings = ApiSettings.model_validate(
        {
            **BASE.model_dump(),
            **namespace("one-trip"),
            "publish_confirm_timeout_s": 5.0,
            "api_rate_limit": "1000/minute",
            "api_daily_quota": 1000,
            "s3_secret_key": SecretStr("one-trip-secret"),
        }
    )
    try:
        yield settings
    finally:
        remove_namespace(settings, broker_url=AMQP_URL)


@pytest.fixture(scope="module")
def api(keys_database: str, settings: ApiSettings) -> Iterator[Api]:
    from producer.client import Producer

    keys = KeyStore(keys_database, pepper=PEPPER, cache_s=5.0)
    producer = Producer(settings)
    producer.publisher.declare()
    try:
        with serving(create_app(producer=producer, keys=keys, settings=settings)) as url:
            yield Api(url=url, settings=settings, keys=keys)
    finally:
        producer.close()
        keys.close()


def post(client: httpx.Client, body: dict[str, object], **headers: str) -> httpx.Response:
    """POST ``body`` as JSON with the client's content type (``json=`` would set its own)."""
    import json

    return client.post("/v1/tryons", content=json.dumps(body), headers=headers)


def problem_type(answer: httpx.Response) -> str:
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    return str(answer.json()["type"]).rsplit("/", 1)[-1]


def test_a_plain_submit_makes_one_redis_round_trip_and_fastapis_path_two(api: Api) -> None:
    prefix = api.settings.redis_key_prefix
    for path, trips in (("plain", ["EVALSHA"]), ("fastapi", ["EVALSHA", "EVALSHA"])):
        client, _, _ = api.client(path=path, rate_limit="10/minute", daily_quota=10)
        with client:
            assert post(client, TRYON).status_code == 202  # warm: the key, the manifests, the scripts
            commands = RedisCommands(api.settings, prefix)
            answer = post(client, TRYON)
            seen = commands.stop()
        assert answer.status_code == 202, answer.text
        assert seen == trips, path  # plain: rate, quota and record in one script
        assert answer.headers["ratelimit-limit"] == "10" and answer.headers["ratelimit-remaining"] == "8"


@pytest.mark.parametrize("path", PATHS)
def test_a_submit_refused_by_its_quota_or_rate_stores_nothing_and_publishes_nothing(
    api: Api, path: str
) -> None:
    for limits, kind in (
        ({"daily_quota": 1}, "quota-exceeded"),
        ({"rate_limit": "1/minute"}, "rate-limited"),
    ):
        client, key_id, requester = api.client(path=path, **limits)
        with client:
            assert post(client, TRYON).status_code == 202
            jobs, queued = api.jobs_of(requester), api.queued()
            refused = [post(client, {**TRYON, "shopper_ref": f"anon-{n}"}) for n in range(3)]
        assert [a.status_code for a in refused] == [429] * 3, kind
        assert {problem_type(a) for a in refused} == {kind}
        assert int(refused[0].headers["retry-after"]) >= 1
        assert api.jobs_of(requester) == jobs and len(jobs) == 1
        assert api.queued() == queued
        assert api.quota_used(key_id) == 1  # the first job's, and no refused one's


@pytest.mark.parametrize("path", PATHS)
def test_an_idempotent_replay_takes_no_quota_even_with_none_left(api: Api, path: str) -> None:
    client, key_id, requester = api.client(path=path, daily_quota=1)
    with client:
        first = post(client, TRYON, **{"Idempotency-Key": "order-1"})
        replays = [post(client, TRYON, **{"Idempotency-Key": "order-1"}) for _ in range(3)]
        reused = post(client, {**TRYON, "size": "L"}, **{"Idempotency-Key": "order-1"})
        other = post(client, TRYON, **{"Idempotency-Key": "order-2"})
    assert first.status_code == 202
    assert [a.status_code for a in replays] == [200] * 3
    assert {a.json()["id"] for a in replays} == {first.json()["id"]}
    assert replays[0].headers["idempotent-replayed"] == "true"
    assert reused.status_code == 422 and problem_type(reused) == "idempotency-key-reused"
    assert other.status_code == 429 and problem_type(other) == "quota-exceeded"
    assert api.quota_used(key_id) == 1 and api.jobs_of(requester) == [first.json()["id"]]


def test_concurrent_identical_idempotent_submits_make_one_job_and_take_one_quota(api: Api) -> None:
    client, key_id, requester = api.client(daily_quota=5)
    with client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(client, TRYON, **{"Idempotency-Key": "race"}), range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    assert api.quota_used(key_id) == 1 and len(api.jobs_of(requester)) == 1


@pytest.mark.parametrize("path", PATHS)
def test_a_422_comes_after_a_rate_429_and_before_a_quota_429_and_counts_the_rate(api: Api, path: str) -> None:
    invalid = {**TRYON, "requester": "someone-else"}  # valid JSON, refused by the route: 422
    client, key_id, requester = api.client(path=path, rate_limit="3/minute", daily_quota=1)
    with client:
        assert post(client, TRYON).status_code == 202  # the quota's one job
        over_quota = post(client, invalid)
        assert post(client, TRYON).status_code == 429  # the quota's 429: the rate's third request
        over_rate = post(client, invalid)
    assert over_quota.status_code == 422 and problem_type(over_quota) == "validation"
    assert over_rate.status_code == 429 and problem_type(over_rate) == "rate-limited"
    assert api.quota_used(key_id) == 1 and len(api.jobs_of(requester)) == 1
