"""``producer.http.HttpProducer`` over real HTTP against the API (uvicorn, the real RabbitMQ,
Redis and key store: ``tests.integration.test_api``'s ``api`` fixture): the same calls as the
direct ``Producer``, the same typed errors, and ``watch`` over the SSE route with
``Last-Event-ID`` resume. No worker runs: jobs stay queued until canceled, and a cancel is the
terminal event a watch sees.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from core.contracts.jobs import JobEventType, JobKind, JobState
from core.contracts.v1 import ListingImageRequest
from core.jobs import IdempotencyConflict, JobNotFound, WatchTimeout, cancel_refusal
from producer.http import HttpProducer, InvalidRequest, KeyRefused, ScopeRefused
from tests.examples import LISTING_EXAMPLE
from tests.integration.test_api import LISTING, TRYON, Api, api  # noqa: F401  (the served API)


def client(api: Api, token: str | None = None) -> HttpProducer:  # noqa: F811
    return HttpProducer(api.url, api.a if token is None else token, timeout=10, reconnect_delay_s=0.1)


def test_submit_status_list_and_cancel_as_the_direct_producer_does(api: Api) -> None:  # noqa: F811
    with client(api) as producer:
        # the direct producer's request model works as it is (its requester is the key's)
        model = ListingImageRequest.model_validate({**LISTING_EXAMPLE, "requester": "shop-a"})
        listing = producer.submit_listing(model)
        tryon = producer.submit_tryon(TRYON)
        job = producer.status(listing)
        assert (job.job_id, job.kind, job.state, job.requester) == (
            listing,
            JobKind.LISTING,
            JobState.QUEUED,
            "shop-a",
        )
        assert producer.status(tryon).kind is JobKind.TRYON
        assert api.producer.status(listing).state is JobState.QUEUED  # the same core, the same record
        producer.submit_listing(LISTING)  # a second job for the subject: two pages of one
        page = producer.list_jobs("shop-a", subject=LISTING["listing_id"], limit=1)
        assert len(page.jobs) == 1 and page.next_cursor is not None
        assert producer.list_jobs(cursor=page.next_cursor, limit=1).jobs[0].job_id != page.jobs[0].job_id
        canceled = producer.cancel(listing)
        assert canceled.state is JobState.CANCELED and canceled.finished_at is not None
        again = producer.cancel(listing)  # past queued: unchanged, as Producer.cancel returns it
        assert again.state is JobState.CANCELED and cancel_refusal(again.as_record()) is None


def test_submit_picks_the_route_by_kind_and_replays_an_idempotency_key(api: Api) -> None:  # noqa: F811
    key = f"http-{uuid.uuid4().hex}"
    with client(api) as producer:
        first = producer.enqueue({**LISTING, "idempotency_key": key})
        replay = producer.enqueue({**LISTING, "idempotency_key": key})
        assert first.created and not replay.created and replay.job_id == first.job_id
        with pytest.raises(IdempotencyConflict) as conflict:
            producer.submit({**LISTING, "idempotency_key": key, "seed": LISTING["seed"] + 1})
        assert conflict.value.job_id == first.job_id
        assert producer.status(producer.submit({**TRYON, "kind": "tryon"})).kind is JobKind.TRYON


def test_problems_become_the_producers_typed_errors(api: Api) -> None:  # noqa: F811
    with client(api) as producer:
        with pytest.raises(InvalidRequest) as refused:
            producer.submit_listing({**LISTING, "variants": 99})
        assert refused.value.errors[0]["loc"] == ["body", "variants"]
        assert "body.variants: less_than_equal" in str(refused.value)
        with pytest.raises(JobNotFound):
            producer.status("0" * 32)
        other = producer.submit_listing(LISTING)
    with client(api, api.b) as producer_b, pytest.raises(JobNotFound):
        producer_b.status(other)  # another requester's job is not found, never forbidden
    with client(api, api.a_read_only) as reader, pytest.raises(ScopeRefused):
        reader.submit_listing(LISTING)
    with client(api, "atk_not-a-key") as stranger, pytest.raises(KeyRefused):
        stranger.status(other)


def test_watch_follows_the_event_stream_to_the_cancel(api: Api) -> None:  # noqa: F811
    with client(api) as producer:
        job_id = producer.submit_listing(LISTING)
        canceler = threading.Timer(0.5, lambda: api.producer.cancel(job_id))
        canceler.start()
        started = time.monotonic()
        states = [job.state for job in producer.watch(job_id, timeout=10)]
        canceler.join()
    assert states == [JobState.QUEUED, JobState.CANCELED]
    assert time.monotonic() - started < 5


def test_events_resume_after_last_event_id(api: Api) -> None:  # noqa: F811
    with client(api) as producer:
        job_id = producer.submit_listing(LISTING)
        producer.cancel(job_id)
        events = list(producer.events(job_id, timeout=5))
        assert [e.event.type for e in events] == [JobEventType.QUEUED, JobEventType.CANCELED]
        assert events[0].id < events[1].id
        resumed = list(producer.events(job_id, timeout=5, last_event_id=events[0].id))
        assert resumed == events[1:]


def test_watch_times_out_with_the_producers_error(api: Api) -> None:  # noqa: F811
    with client(api) as producer:
        job_id = producer.submit_listing(LISTING)
        with pytest.raises(WatchTimeout) as timed_out:
            list(producer.watch(job_id, timeout=1))
    assert timed_out.value.record.state is JobState.QUEUED
