"""A key's own rate limit and daily quota, and the verified-key cache, on the real PostgreSQL (the key
store, migrated to head: ``api_keys.rate_limit`` and ``daily_quota``), the real Redis (the limits'
scripts) and RabbitMQ (submits go through the same ``Producer`` as the Python client), over real
HTTP (uvicorn, httpx): two keys with different limits are each refused at their own, with
``Retry-After``; a key without any gets the service's; the limit scripts admit, refuse and count
exactly; ``atelier keys create`` sets them; a revoke reaches a caching store within its cache time.

The module works on its own exchange, queues and Redis prefix and its own database; no worker
runs. Each test makes its own keys, so limits never carry over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from api.app import create_app
from api.keys.model import ApiKey, Scope
from api.keys.store import KeyStore
from api.limits import KeyLimits
from api.problems import ProblemError
from api.settings import ApiSettings
from producer.cli import app as cli
from tests.examples import TRYON_EXAMPLE
from tests.integration.services import AMQP_URL, BASE, namespace, remove_namespace, require_services, serving
from tests.redis_monitor import RedisCommands

PEPPER = "key-limits-test-pepper"
#: the service's limits here, for keys that have none of their own
DEFAULT_RATE_PER_MINUTE = 30
DEFAULT_QUOTA = 25
TRYON = {k: v for k, v in TRYON_EXAMPLE.items() if k != "requester"}
SCOPES = [Scope.SUBMIT_TRYONS, Scope.READ]


@dataclass
class Api:
    url: str
    settings: ApiSettings
    keys: KeyStore

    def token(self, *, rate_limit: str | None = None, daily_quota: int | None = None) -> str:
        return self.keys.create("shop-a", scopes=SCOPES, rate_limit=rate_limit, daily_quota=daily_quota)[1]

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=20)


@pytest.fixture(scope="module")
def settings() -> Iterator[ApiSettings]:
    require_services()
    settings = ApiSettings.model_validate(
        {
            **BASE.model_dump(),
            **namespace("key-limits"),
            "publish_confirm_timeout_s": 5.0,
            "api_rate_limit": f"{DEFAULT_RATE_PER_MINUTE}/minute",
            "api_daily_quota": DEFAULT_QUOTA,
            "s3_secret_key": SecretStr("key-limits-secret"),
        }
    )
    try:
        yield settings
    finally:
        remove_namespace(settings, broker_url=AMQP_URL)


@pytest.fixture(scope="module")
def api(keys_database: str, settings: ApiSettings) -> Iterator[Api]:
    from producer.client import Producer

    keys = KeyStore(keys_database, pepper=PEPPER, cache_s=5.0)  # as `atelier api serve` makes it
    producer = Producer(settings)
    producer.publisher.declare()
    try:
        with serving(create_app(producer=producer, keys=keys, settings=settings)) as url:
            yield Api(url=url, settings=settings, keys=keys)
    finally:
        producer.close()
        keys.close()


def refusal(response: httpx.Response, kind: str) -> int:
    """The ``Retry-After`` of a 429 problem of ``kind``."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{kind}")
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


# --- over HTTP ---


def test_two_keys_with_their_own_rates_are_each_refused_at_their_own_limit(api: Api) -> None:
    for per_minute in (3, 7):
        with api.client(api.token(rate_limit=f"{per_minute}/minute")) as client:
            answers = [client.get("/v1/jobs") for _ in range(per_minute)]
            assert [a.status_code for a in answers] == [200] * per_minute
            assert answers[0].headers["ratelimit-limit"] == str(per_minute)
            assert answers[-1].headers["ratelimit-remaining"] == "0"
            refused = client.get("/v1/jobs")
        assert 1 <= refusal(refused, "rate-limited") <= 60
        assert refused.headers["ratelimit-limit"] == str(per_minute)


def test_two_keys_with_their_own_daily_quotas_are_each_refused_at_their_own_quota(api: Api) -> None:
    for quota in (2, 4):
        with api.client(api.token(daily_quota=quota)) as client:
            assert [client.post("/v1/tryons", json=TRYON).status_code for _ in range(quota)] == [202] * quota
            refused = client.post("/v1/tryons", json=TRYON)
            assert 3600 < refusal(refused, "quota-exceeded") <= 86400
            assert f"quota of {quota} jobs" in refused.json()["detail"]
            assert client.get("/v1/jobs").status_code == 200  # reads spend no quota


def test_a_key_without_limits_of_its_own_gets_the_services_and_an_empty_rate_means_none(api: Api) -> None:
    with api.client(api.token()) as client:
        answer = client.get("/v1/jobs")
    assert answer.headers["ratelimit-limit"] == str(DEFAULT_RATE_PER_MINUTE)
    with api.client(api.token(rate_limit="")) as client:
        answers = [client.get("/v1/jobs") for _ in range(DEFAULT_RATE_PER_MINUTE + 5)]
    assert {a.status_code for a in answers} == {200}
    assert "ratelimit-limit" not in answers[-1].headers


def test_a_key_with_several_rates_is_told_the_tightest_and_refused_by_the_first_it_passes(api: Api) -> None:
    with api.client(api.token(rate_limit="100/minute;4/second")) as client:
        answers = [client.get("/v1/jobs") for _ in range(4)]
        refused = client.get("/v1/jobs")
    assert [a.headers["ratelimit-limit"] for a in answers] == ["4"] * 4
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["3", "2", "1", "0"]
    assert refusal(refused, "rate-limited") == 1 and refused.headers["ratelimit-limit"] == "4"


# --- the limit scripts, on Redis itself ---


def own_key(key_id: str, *, rate_limit: str | None = None, daily_quota: int | None = None) -> ApiKey:
    return ApiKey(
        key_id=key_id,
        requester="shop-a",
        scopes=frozenset(SCOPES),
        rate_limit=rate_limit,
        daily_quota=daily_quota,
    )


def test_a_refused_request_is_not_counted_and_room_frees_as_the_window_moves(settings: ApiSettings) -> None:
    import asyncio

    limits = KeyLimits(settings)
    key = own_key(f"moving-{time.time_ns()}", rate_limit="2/second")

    async def scenario() -> None:
        assert (await limits.hit_rate(key)).remaining == 1  # type: ignore[union-attr]
        assert (await limits.hit_rate(key)).remaining == 0  # type: ignore[union-attr]
        for _ in range(5):  # hammering while refused does not push the window on
            with pytest.raises(ProblemError) as refused:
                await limits.hit_rate(key)
            assert refused.value.headers["Retry-After"] == "1"
        await asyncio.sleep(1.05)
        assert (await limits.hit_rate(key)).remaining == 1  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_concurrent_submits_never_pass_a_quota(settings: ApiSettings) -> None:
    limits = KeyLimits(settings)
    key = own_key(f"quota-{time.time_ns()}", daily_quota=7)

    def take() -> bool:
        try:
            limits.take_quota(key)
        except ProblemError as refused:
            assert refused.problem.status == 429
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda _: take(), range(40)))
    assert sum(taken) == 7
    with pytest.raises(ProblemError):
        limits.take_quota(key, cost=1)
    # a bare key id (the batch route's) is held to the service's quota, counted on the same counter
    limits.take_quota(key.key_id, cost=DEFAULT_QUOTA - 7)
    with pytest.raises(ProblemError):
        limits.take_quota(key.key_id)


def test_a_submit_counts_its_rate_and_quota_in_one_round_trip_rate_first(settings: ApiSettings) -> None:
    import asyncio

    limits = KeyLimits(settings)
    key = own_key(f"both-{time.time_ns()}", rate_limit="3/minute", daily_quota=1)

    async def scenario() -> None:
        trips = RedisCommands(settings, key.key_id)
        allowance = await limits.count(key, jobs=1)
        assert trips.stop() == ["EVALSHA"]  # rate and quota: one script, one round trip
        assert allowance is not None and (allowance.limit, allowance.remaining) == (3, 2)
        # over the quota: 429 quota-exceeded, and the request still counts against the rate
        with pytest.raises(ProblemError) as over_quota:
            await limits.count(key, jobs=1)
        assert over_quota.value.problem.type.endswith("/quota-exceeded")
        assert (await limits.count(key)).remaining == 0  # type: ignore[union-attr]
        # over the rate: 429 rate-limited before the quota is looked at, nothing counted
        with pytest.raises(ProblemError) as over_rate:
            await limits.count(key, jobs=1)
        assert over_rate.value.problem.type.endswith("/rate-limited")
        assert over_rate.value.headers["RateLimit-Limit"] == "3"

    asyncio.run(scenario())
    fresh = own_key(f"fresh-{time.time_ns()}", rate_limit="", daily_quota=0)
    trips = RedisCommands(settings, fresh.key_id)
    assert asyncio.run(limits.count(fresh, jobs=1)) is None
    assert trips.stop() == []  # no limits: no round trip at all


def quota_used(api: Api, key_id: str) -> int:
    """The jobs counted against ``key_id``'s daily quota so far (its counter in Redis)."""
    import redis

    client = redis.Redis.from_url(api.settings.redis_url.get_secret_value())
    try:
        return int(client.get(f"{KeyLimits(api.settings).prefix}quota:{key_id}") or 0)
    finally:
        client.close()


def test_a_submit_refused_by_its_rate_or_scope_spends_no_quota(api: Api) -> None:
    read_only, token = api.keys.create("shop-a", scopes=[Scope.READ], daily_quota=5)
    with api.client(token) as client:
        forbidden = [client.post("/v1/tryons", json=TRYON) for _ in range(3)]
    assert [a.status_code for a in forbidden] == [403] * 3
    assert forbidden[0].headers["content-type"] == "application/problem+json"
    assert quota_used(api, read_only.key_id) == 0

    submitter, token = api.keys.create("shop-a", scopes=SCOPES, rate_limit="2/minute", daily_quota=5)
    with api.client(token) as client:
        taken = client.post("/v1/tryons", json=TRYON)
        assert taken.status_code == 202 and taken.headers["ratelimit-remaining"] == "1"
        assert client.get("/v1/jobs").status_code == 200  # the rate's last request
        refusal(client.post("/v1/tryons", json=TRYON), "rate-limited")
    assert quota_used(api, submitter.key_id) == 1


# --- the CLI and the cache ---


def test_atelier_keys_create_sets_a_keys_own_limits_and_refuses_bad_ones(
    keys_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_DATABASE_URL", keys_database)
    monkeypatch.setenv("ATELIER_KEY_PEPPER", PEPPER)
    runner = CliRunner()
    base = ["keys", "create", "--requester", "shop-cli", "--scope", "read"]
    created = runner.invoke(cli, [*base, "--rate-limit", "600/minute;20/second", "--daily-quota", "5000"])
    assert created.exit_code == 0, created.output
    assert "rate 600/minute;20/second, daily quota 5000" in created.stderr
    with KeyStore(keys_database, pepper=PEPPER) as store:
        key = store.authenticate(created.stdout.strip())
    assert key is not None and (key.rate_limit, key.daily_quota) == ("600/minute;20/second", 5000)
    plain = runner.invoke(cli, base)
    assert plain.exit_code == 0, plain.output

    listed = runner.invoke(cli, ["keys", "list", "--requester", "shop-cli", "--json"])
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(row["rate_limit"], row["daily_quota"]) for row in rows] == [
        ("600/minute;20/second", 5000),
        (None, None),
    ]

    for bad in (["--rate-limit", "fast"], ["--daily-quota", "-1"]):
        refused = runner.invoke(cli, [*base, *bad])
        assert refused.exit_code == 2 and refused.stdout == "", refused.output
    assert (
        len(runner.invoke(cli, ["keys", "list", "--requester", "shop-cli", "--json"]).stdout.splitlines())
        == 2
    )


def test_a_key_revoked_elsewhere_stops_authenticating_within_the_cache_time(keys_database: str) -> None:
    with (
        KeyStore(keys_database, pepper=PEPPER, cache_s=1.0) as api_replica,
        KeyStore(keys_database, pepper=PEPPER) as operator,
    ):
        key, token = operator.create("shop-cache", scopes=[Scope.READ])
        assert api_replica.authenticate(token) is not None
        operator.revoke(key.key_id)
        assert api_replica.authenticate(token) is not None  # still trusted: verified under a second ago
        time.sleep(1.05)
        assert api_replica.authenticate(token) is None
        # a revoke through the caching store itself takes effect at once
        other, other_token = operator.create("shop-cache", scopes=[Scope.READ])
        assert api_replica.cached(other_token) is None and api_replica.authenticate(other_token) is not None
        assert api_replica.cached(other_token) is not None
        api_replica.revoke(other.key_id)
        assert api_replica.cached(other_token) is None and api_replica.authenticate(other_token) is None
        # only the exact token that verified is ever answered from the cache
        assert api_replica.cached(other_token[:-1] + ("A" if other_token[-1] != "A" else "B")) is None
