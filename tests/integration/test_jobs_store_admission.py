"""The create script's admission hook (``core.jobs.admission``) on a real Redis: the admission runs
in the same script as the create, is told whether a job would be created, and a refusal writes
nothing of the job (no record, index entry, idempotency key or event); without an admission the
create script is the one it always was. A toy admission (a counter with a cap) stands for the
API's limits (``api.limits.SubmitLimits``, tested over HTTP in ``test_api_submit_one_round_trip``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final

import pytest
import redis

from core.contracts.jobs import JobKind, JobRecord, JobState
from core.jobs import IdempotencyConflict, JobStore
from core.jobs.admission import HOOK_LINE, AdmissionRefused, with_admission
from core.jobs.connection import lua_script
from core.settings import AtelierSettings

#: a counter of new jobs with a cap: admits a replay without counting it, refuses a new job past
#: the cap; answers {1 new job or 0 a replay, the count}
CAPPED: Final = """function(keys, argv, new_job)
  local count = tonumber(redis.call('GET', keys[1]) or '0')
  if not new_job then return true, {0, count} end
  if count >= tonumber(argv[1]) then return false, {1, count} end
  return true, {1, redis.call('INCR', keys[1])}
end"""


class Capped:
    """An admission: at most ``cap`` new jobs, counted under ``key``; keeps the answers it got."""

    script = CAPPED

    def __init__(self, key: str, cap: int) -> None:
        self.keys = [key]
        self.args: list[str | int] = [cap]
        self.answers: list[list[int]] = []

    def answered(self, answer: list[int]) -> None:
        self.answers.append(answer)


@pytest.fixture
def namespaced() -> Iterator[tuple[JobStore, redis.Redis]]:
    """A store on a private key prefix of the real Redis (fail, never skip, without one)."""
    settings = AtelierSettings(redis_key_prefix=f"atelier-test:{uuid.uuid4().hex[:8]}:")
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), decode_responses=True, socket_timeout=2
    )
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis not reachable (ATELIER_REDIS_URL): {error}; start it with scripts/services.sh")
    try:
        yield JobStore(settings, client=client), client
    finally:
        keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def new_record(requester: str = "shop-eu") -> JobRecord:
    return JobRecord(
        job_id=uuid.uuid4().hex,
        kind=JobKind.LISTING,
        state=JobState.QUEUED,
        requester=requester,
        subject="SKU-1",
        created_at=datetime.now(UTC),
    )


def test_a_refused_create_writes_nothing_and_an_admitted_one_is_told_it_is_new(
    namespaced: tuple[JobStore, redis.Redis],
) -> None:
    store, client = namespaced
    counter = f"{store.keys.prefix}cap"
    admission = Capped(counter, 1)
    first = new_record()
    assert store.create(first, "key-1", fingerprint="a" * 64, admission=admission) == (first.job_id, True)
    assert admission.answers == [[1, 1]]
    before = sorted(client.scan_iter(match=f"{store.keys.prefix}*"))

    refused = new_record()
    with pytest.raises(AdmissionRefused) as raised:
        store.create(refused, "key-2", request={"listing_id": "SKU-2"}, admission=admission)
    assert raised.value.answer == [1, 1] and admission.answers[-1] == [1, 1]
    assert sorted(client.scan_iter(match=f"{store.keys.prefix}*")) == before  # nothing written
    assert store.get(refused.job_id) is None
    assert store.find_by_idempotency_key("shop-eu", "key-2") is None
    assert [entry.job_id for entry in store.requester_index("shop-eu")] == [first.job_id]

    # a replay is admitted as one (new_job false): it takes nothing, past the cap as well
    assert store.create(new_record(), "key-1", admission=admission) == (first.job_id, False)
    assert admission.answers[-1] == [0, 1]
    # a reused key with another request is still the store's conflict, after the admission
    with pytest.raises(IdempotencyConflict):
        store.create(new_record(), "key-1", fingerprint="b" * 64, admission=admission)
    assert int(client.get(counter) or 0) == 1


def test_concurrent_admitted_creates_with_one_key_make_one_job_counted_once(
    namespaced: tuple[JobStore, redis.Redis],
) -> None:
    store, client = namespaced
    counter = f"{store.keys.prefix}cap"
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        results.append(store.create(new_record(), "race-key", admission=Capped(counter, 100)))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert int(client.get(counter) or 0) == 1


def test_the_hook_is_one_line_of_the_create_script_and_an_admission_takes_its_place() -> None:
    script = lua_script("create")
    assert script.count(HOOK_LINE) == 1
    composed = with_admission(script, CAPPED)
    assert HOOK_LINE not in composed and f"local admit = {CAPPED}" in composed
    with pytest.raises(ValueError):
        with_admission(composed, CAPPED)
