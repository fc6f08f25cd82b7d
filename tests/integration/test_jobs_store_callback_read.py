"""JobStore.claim_and_read on the real Redis: a callback attempt's claim (or look) and reads in
one round trip, agreeing with claim_event, event_claimed, get and get_request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from core.contracts.jobs import JobEventType, JobKind, JobRecord, JobState
from core.jobs import JobStore
from core.settings import AtelierSettings

SUCCEEDED = JobEventType.SUCCEEDED


@pytest.fixture
def store() -> Iterator[JobStore]:
    settings = AtelierSettings(redis_key_prefix=f"atelier-test:{uuid.uuid4().hex[:8]}:")
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), decode_responses=True, socket_timeout=2
    )
    try:
        client.ping()
    except redis.RedisError as error:  # fail, never skip: scripts/services.sh starts Redis
        pytest.fail(f"Redis not reachable (ATELIER_REDIS_URL): {error}")
    job_store = JobStore(settings, client=client)
    yield job_store
    keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def created(store: JobStore) -> str:
    record = JobRecord(
        job_id=uuid.uuid4().hex,
        kind=JobKind.LISTING,
        state=JobState.QUEUED,
        requester="shop-eu",
        subject="SKU-1",
        created_at=datetime.now(UTC),
    )
    job_id, _ = store.create(record, request={"kind": "listing", "callback": {"url": "https://x/y"}})
    return job_id


def test_the_first_claim_wins_and_every_call_reads_the_record_and_request(store: JobStore) -> None:
    job_id = created(store)
    first = store.claim_and_read(job_id, SUCCEEDED)
    second = store.claim_and_read(job_id, SUCCEEDED)
    assert (first[0], second[0]) == (True, False)
    for _, record, request in (first, second):
        assert record == store.get(job_id) and request == store.get_request(job_id)
    assert store.event_claimed(job_id, SUCCEEDED) and not store.claim_event(job_id, SUCCEEDED)


def test_looking_claims_nothing_and_says_whether_someone_has(store: JobStore) -> None:
    job_id = created(store)
    assert store.claim_and_read(job_id, SUCCEEDED, claim=False)[0] is False
    assert not store.event_claimed(job_id, SUCCEEDED)
    assert store.claim_event(job_id, SUCCEEDED)
    assert store.claim_and_read(job_id, SUCCEEDED, claim=False)[0] is True


def test_an_unknown_job_is_neither_claimed_nor_read(store: JobStore) -> None:
    assert store.claim_and_read("no-such-job", SUCCEEDED) == (False, None, None)
    assert not store.redis.exists(store.keys.job("no-such-job"))


def test_a_write_after_the_read_needs_no_second_read(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read is remembered like ``get``'s: the outcome's write uses it as its first guess."""
    job_id = created(store)
    store.claim_and_read(job_id, SUCCEEDED)
    with monkeypatch.context() as patched:
        patched.setattr(store, "_version_and_record", lambda job_id: pytest.fail("read again"))
        assert store.record_callback(job_id, SUCCEEDED, "delivered")
    record = store.get(job_id)
    assert record is not None and record.callbacks == {"job.succeeded": "delivered"}
