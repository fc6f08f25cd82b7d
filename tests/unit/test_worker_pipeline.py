"""worker.pipeline and worker.notifications on the shipped stand-ins: the story of a job and of
a callback.

The status store is ``core.jobs.MemoryJobStore`` (the state machine of the Redis store, checked
against it by tests/integration/test_jobs_store.py); Triton and S3 are ``worker.stubs``;
callbacks go through the real ``CallbackSender`` on an ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from billiard.exceptions import SoftTimeLimitExceeded

from core.contracts.jobs import JobEventType, JobState
from core.contracts.v1 import ListingImageRequest, parse_request
from core.errors import PermanentError, RetryableError, as_atelier_error
from core.jobs import MemoryJobStore, StoreUnavailable, cancel_refusal
from core.worker_settings import WorkerSettings, new_webhook_secret
from producer.client import record_for
from producer.webhook_verify import verify
from quality.verdict import Check, Verdict
from serving_contract.manifest import default_manifest
from serving_contract.palette import colour_by_name
from serving_contract.taxonomy import category_by_slug
from worker.callbacks import message_id
from worker.encoding import decode
from worker.gating import retry_seed
from worker.inference import Generated
from worker.notifications import build_event, deliver_callback
from worker.pipeline import (
    RetryLater,
    backoff_delay,
    job_failure,
    job_seed,
    run_listing,
    run_tryon,
    variant_seeds,
)
from worker.stubs import (
    MemoryImageStore,
    RecordingNotifier,
    RecordingReceiver,
    ScriptedGate,
    StubInference,
    stub_context,
)

SECRET = new_webhook_secret()
HOOK = "https://shop.example/hooks/atelier"
ALL_EVENTS = [e.value for e in JobEventType]
#: the memory store's clock (epoch seconds): leases never expire under it
NOW = 1_000_000.0
BODY = {"height": 172, "weight": 68, "chest": 94, "waist": 78, "hips": 98}


class Harness:
    """A context of the shipped stand-ins (``worker.stubs``), and helpers to submit requests."""

    def __init__(
        self,
        *,
        triton: StubInference | None = None,
        bucket: MemoryImageStore | None = None,
        receiver: Callable[[httpx.Request], httpx.Response] | None = None,
        gate: ScriptedGate | None = None,
        **overrides: Any,
    ) -> None:
        values: dict[str, Any] = {
            "job_retry_attempts": 3,
            "job_retry_backoff_base_s": 2.0,
            "job_retry_backoff_max_s": 10.0,
            "callback_secret": SECRET,
            "callback_retry_schedule_s": [1.0, 5.0],
            **overrides,
        }
        self.settings = WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]
        self.store = MemoryJobStore(clock=lambda: NOW)
        self.triton = triton or StubInference()
        self.bucket = bucket or MemoryImageStore()
        self.notifier = RecordingNotifier()
        self.receiver = RecordingReceiver(receiver)
        self.posts = self.receiver.posts
        self.ctx = stub_context(
            self.settings,
            store=self.store,
            inference=self.triton,
            images=self.bucket,
            callbacks=self.receiver.sender(self.settings),
            notify=self.notifier,
            gate=gate,
        )

    @property
    def notified(self) -> list[tuple[str, JobEventType]]:
        return self.notifier.queued

    def submit(
        self, request: dict[str, Any], job_id: str | None = None, *, queued_sent: bool = True
    ) -> tuple[str, dict[str, Any]]:
        """Store the job as the producer does; ``queued_sent``: its ``job.queued`` callback was
        queued and claimed by a callback worker, as when the producer's publish went through."""
        parsed = parse_request(request)
        record = record_for(parsed, job_id or uuid.uuid4().hex)
        body = parsed.model_dump(mode="json")
        self.store.create(record, request=body)
        if queued_sent:
            self.store.claim_event(record.job_id, JobEventType.QUEUED)
        return record.job_id, body

    def events(self, job_id: str) -> list[str]:
        return self.notifier.events(job_id)

    def claim_queued(self) -> None:
        """Claim every queued event, as the callback tasks would."""
        for job_id, event in self.notified:
            self.store.claim_event(job_id, event)


def listing(**fields: Any) -> dict[str, Any]:
    return {
        "requester": "shop-eu",
        "listing_id": "SKU-1",
        "attributes": {"category": "dress", "colour": "navy", "style": {"fit": "relaxed"}},
        "variants": 3,
        "seed": 5,
        "output": {"format": "png", "size": 64},
        "callback": {"url": HOOK, "events": ALL_EVENTS},
        **fields,
    }


def tryon(garment: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "requester": "shop-eu",
        "shopper_ref": "anon-1",
        "measurements": BODY,
        "garment": garment,
        "size": "L",
        "seed": 9,
        "callback": {"url": HOOK, "events": ["job.succeeded", "job.failed"]},
        **fields,
    }


# --- listing jobs ---


def test_listing_job_batches_all_variants_in_one_call_and_stores_one_object_per_variant() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    run_listing(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.SUCCEEDED and record.attempts == 1
    assert (record.model, record.model_version, record.seed) == ("product_cgan", "1", 5)
    assert h.triton.calls == [
        ("product_cgan", {"categories": [3, 3, 3], "colours": [8, 8, 8], "seeds": [5, 6, 7], "version": 1})
    ]  # a concrete version: the one whose manifest mapped dress and navy to 3 and 8
    assert [image.key for image in record.results] == [f"listing/{job_id}/{v}.png" for v in range(3)]
    assert all(image.url.startswith("https://s3.test/") for image in record.results)
    data, content_type, metadata = h.bucket.objects[f"listing/{job_id}/2.png"]
    assert content_type == "image/png" and decode(data).shape == (64, 64, 3)
    assert metadata == {
        "job_id": job_id,
        "kind": "listing",
        "requester": "shop-eu",
        "listing_id": "SKU-1",
        "model": "product_cgan",
        "model_version": "1",
        "category": "dress",
        "colour": "navy",
        "style": {"fit": "relaxed"},
        "variant": 2,
        "seed": 7,
        "gate": "passed",
        "gate_scores": "category=1,colour=1,duplicate=1,blank=1",
        "gate_tries": 1,
    }
    assert h.triton.judged == [3]  # the gate judged the whole batch once
    assert h.events(job_id) == ["job.started", "job.succeeded"]


@pytest.mark.parametrize("upload_threads", [True, False], ids=["upload threads", "the job's thread"])
def test_a_job_stores_the_same_objects_on_upload_threads_or_in_its_own_thread(upload_threads: bool) -> None:
    """A process with several jobs in flight has no upload threads (``worker.context``): each job
    puts its images itself, with the same keys, metadata and typed errors."""
    h = Harness(bucket=MemoryImageStore(RetryableError("storage_unavailable", "S3 down")))
    if not upload_threads:
        h.ctx.uploads = None
    put, threads = h.bucket.put_image, []

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return put(*args, **kwargs)

    h.bucket.put_image = recording  # type: ignore[method-assign]
    job_id, request = h.submit(listing())
    with pytest.raises(RetryLater):  # the first put's outage, raised in the job's thread either way
        run_listing(job_id, request, h.ctx)
    run_listing(job_id, request, h.ctx, redelivered=True)

    record = h.store.records[job_id]
    assert record.state is JobState.SUCCEEDED
    assert [image.key for image in record.results] == [f"listing/{job_id}/{v}.png" for v in range(3)]
    assert [h.bucket.objects[image.key][2]["seed"] for image in record.results] == [5, 6, 7]
    assert (threading.current_thread() in threads) is not upload_threads


def test_pinned_model_version_goes_to_triton() -> None:
    h = Harness()
    assert h.ctx.models is not None
    h.ctx.models.register(default_manifest("product_cgan", 4))
    job_id, request = h.submit(listing(model_version=4))
    run_listing(job_id, request, h.ctx)
    assert h.triton.calls[0][1]["version"] == 4


def test_without_a_seed_the_seed_comes_from_the_job_id_so_a_rerun_makes_identical_images() -> None:
    job_id = uuid.uuid4().hex
    images = []
    for _ in range(2):
        h = Harness()
        _, request = h.submit(listing(seed=None), job_id=job_id)
        run_listing(job_id, request, h.ctx)
        assert h.store.records[job_id].seed == job_seed(None, job_id)
        images.append({key: data for key, (data, _, _) in h.bucket.objects.items()})
    assert images[0] == images[1]
    assert job_seed(None, job_id) != job_seed(None, uuid.uuid4().hex)
    assert 0 <= job_seed(None, job_id) < 2**62


def test_variant_seeds_wrap_below_the_int64_limit() -> None:
    assert variant_seeds(2**63 - 2, 3) == [2**63 - 2, 2**63 - 1, 0]


def test_only_subscribed_events_are_queued() -> None:
    h = Harness()
    job_id, request = h.submit(listing(callback={"url": HOOK, "events": ["job.failed"]}))
    run_listing(job_id, request, h.ctx)
    assert h.events(job_id) == []
    no_callback, request = h.submit(listing(callback=None))
    run_listing(no_callback, request, h.ctx)
    assert h.notified == []


def test_large_style_is_kept_out_of_object_metadata() -> None:
    h = Harness()
    style = {f"k{i}": "v" * 200 for i in range(10)}
    job_id, request = h.submit(listing(attributes={"category": "bag", "colour": "red", "style": style}))
    run_listing(job_id, request, h.ctx)
    _, _, metadata = h.bucket.objects[f"listing/{job_id}/0.png"]
    assert metadata["style"].startswith("omitted")
    assert h.store.requests[job_id]["attributes"]["style"] == style


# --- starting: duplicates, redeliveries, cancellation ---


def test_a_second_message_for_a_running_job_is_dropped() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    assert h.store.transition(job_id, JobState.RUNNING)
    run_listing(job_id, request, h.ctx)
    assert h.triton.calls == [] and h.store.records[job_id].state is JobState.RUNNING


def test_a_redelivered_running_job_counts_an_attempt_and_overwrites_its_objects() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    run_listing(job_id, request, h.ctx)
    first = dict(h.bucket.objects)
    h.store.records[job_id] = h.store.records[job_id].model_copy(update={"state": JobState.RUNNING})
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert h.store.records[job_id].attempts == 2 and h.store.records[job_id].state is JobState.SUCCEEDED
    assert h.bucket.objects == first  # same keys, same bytes


def test_a_canceled_job_never_runs_and_its_canceled_callback_is_queued() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    h.store.request_cancel(job_id)
    run_listing(job_id, request, h.ctx)
    assert h.triton.calls == [] and h.bucket.objects == {}
    assert h.store.records[job_id].state is JobState.CANCELED and h.store.records[job_id].attempts == 0
    assert h.events(job_id) == ["job.canceled"]


def test_a_message_for_a_finished_job_queues_its_final_callback_again_and_does_no_work() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    run_listing(job_id, request, h.ctx)
    h.claim_queued()  # a callback worker took both events
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert len(h.triton.calls) == 1
    assert h.events(job_id) == ["job.started", "job.succeeded", "job.succeeded"]


def test_a_message_for_a_finished_job_whose_started_callback_was_lost_queues_it_too() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    run_listing(job_id, request, h.ctx)
    h.store.claim_event(job_id, JobEventType.SUCCEEDED)  # job.started's message was lost
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert h.events(job_id) == ["job.started", "job.succeeded", "job.started", "job.succeeded"]


def test_a_redelivery_past_the_attempt_budget_fails_the_job() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    for _ in range(3):
        assert h.store.transition(job_id, JobState.RUNNING)
    run_listing(job_id, request, h.ctx, redelivered=True)
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert record.error.code == "attempts_exhausted" and h.triton.calls == []
    assert h.events(job_id) == ["job.started", "job.failed"]  # it ran, and its start was never queued


def test_a_redelivered_running_job_queues_the_started_callback_its_last_attempt_never_queued() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    assert h.store.transition(job_id, JobState.RUNNING)  # the worker died before queuing job.started
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert h.events(job_id) == ["job.started", "job.succeeded"]
    assert h.store.records[job_id].state is JobState.SUCCEEDED


def test_a_started_callback_not_queued_during_a_broker_outage_is_queued_by_the_retry() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    h.notifier.fail_next(JobEventType.STARTED, RetryableError("callback_enqueue_failed", "broker down"))

    with pytest.raises(RetryableError):  # worker/tasks.py turns it into a retry of the job
        run_listing(job_id, request, h.ctx)
    run_listing(job_id, request, h.ctx, redelivered=True)

    assert h.events(job_id) == ["job.started", "job.succeeded"]
    assert h.store.records[job_id].state is JobState.SUCCEEDED and len(h.triton.calls) == 1


# --- failures ---


def test_retryable_error_retries_with_backoff_then_fails_with_the_reason_after_the_budget() -> None:
    down = RetryableError("inference_unavailable", "triton: UNAVAILABLE")
    h = Harness(triton=StubInference(down, down, down))
    job_id, request = h.submit(listing())
    countdowns = []
    for attempt in (1, 2):
        with pytest.raises(RetryLater) as later:
            run_listing(job_id, request, h.ctx, redelivered=attempt > 1)
        assert later.value.error.code == "inference_unavailable"
        assert h.store.records[job_id].state is JobState.RUNNING
        countdowns.append(later.value.countdown)
        h.claim_queued()  # the callback worker took job.started
    assert 1.0 <= countdowns[0] <= 2.0 and 2.0 <= countdowns[1] <= 4.0
    run_listing(job_id, request, h.ctx, redelivered=True)
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.attempts == 3 and record.error is not None
    assert record.error.code == "inference_unavailable" and record.error.retryable
    assert "gave up after 3 attempts" in record.error.message
    assert h.events(job_id) == ["job.started", "job.failed"]


def test_each_attempt_holds_the_lease_past_the_hard_limit_and_a_retry_holds_it_through_its_countdown() -> (
    None
):
    leases_seen: list[float | None] = []

    class LeaseWatchingInference(StubInference):
        """Notes the job's lease while the model runs (the attempt's lease, before it ends)."""

        def generate_products(self, *args: Any, **kwargs: Any) -> Generated:
            leases_seen.append(h.store.lease_ttl(job_id))
            return super().generate_products(*args, **kwargs)

    h = Harness(triton=LeaseWatchingInference(RetryableError("inference_unavailable", "down")))
    job_id, request = h.submit(listing())
    lease_s = h.settings.task_time_limit_s + h.settings.sweep_grace_s
    with pytest.raises(RetryLater) as later:
        run_listing(job_id, request, h.ctx)
    assert h.store.lease_ttl(job_id) == pytest.approx(later.value.countdown + lease_s)
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert leases_seen == [pytest.approx(lease_s)] * 2
    assert h.store.lease_ttl(job_id) is None  # a finished job's lease is dropped with its state


def test_storage_outage_is_retried_like_any_retryable_error() -> None:
    h = Harness(bucket=MemoryImageStore(RetryableError("storage_unavailable", "S3 down")))
    job_id, request = h.submit(listing())
    with pytest.raises(RetryLater):
        run_listing(job_id, request, h.ctx)
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert h.store.records[job_id].state is JobState.SUCCEEDED and h.store.records[job_id].attempts == 2


def test_permanent_error_fails_at_once_with_the_reason_and_a_failed_callback() -> None:
    h = Harness(
        triton=StubInference(PermanentError("model_version_not_found", "product_cgan v9 is not served"))
    )
    job_id, request = h.submit(listing(model_version=9))
    run_listing(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert (record.error.code, record.error.retryable) == ("model_version_not_found", False)
    assert h.events(job_id) == ["job.started", "job.failed"]


def test_an_unexpected_exception_fails_the_job_as_an_internal_error() -> None:
    h = Harness(triton=StubInference(ZeroDivisionError("oops")))
    job_id, request = h.submit(listing())
    run_listing(job_id, request, h.ctx)
    error = h.store.records[job_id].error
    assert error is not None and error.code == "internal_error" and "ZeroDivisionError" in error.message


def test_a_message_whose_request_does_not_validate_fails_the_job_and_says_so() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    broken = {**request, "variants": 99}
    run_listing(job_id, broken, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert record.error.code == "invalid_request" and "variants" in record.error.message
    assert h.events(job_id) == ["job.failed"]


# --- try-on jobs ---


def test_tryon_wears_a_stored_listing_image_with_the_listing_category() -> None:
    h = Harness()
    listing_id, request = h.submit(listing(attributes={"category": "t_shirt", "colour": "red"}))
    run_listing(listing_id, request, h.ctx)
    job_id, request = h.submit(tryon({"source": "listing", "job_id": listing_id, "variant": 1}))
    run_tryon(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.SUCCEEDED and (record.model, record.model_version) == ("tryon_cvae", "1")
    model, call = h.triton.calls[-1]
    assert model == "tryon_cvae" and len(h.triton.calls) == 2  # no product generated for it
    assert call["measurements"] == [[172.0, 68.0, 94.0, 78.0, 98.0]]
    assert (call["sizes"], call["categories"], call["seeds"]) == ([2], [0], [9])
    stored_variant = decode(h.bucket.get_listing_image(listing_id, 1), size=32)
    assert np.array_equal(call["garments"][0], stored_variant)
    assert [image.key for image in record.results] == [f"tryon/{job_id}/0.png"]
    _, _, metadata = h.bucket.objects[f"tryon/{job_id}/0.png"]
    assert metadata["garment"] == {"source": "listing", "job_id": listing_id, "variant": 1}
    assert "measurements" not in metadata and metadata["size"] == "L"
    assert h.events(job_id) == ["job.succeeded"]


def test_tryon_by_attributes_generates_the_garment_first_and_converts_imperial_measurements() -> None:
    h = Harness()
    imperial = {"unit_system": "imperial", "height": 68, "weight": 150, "chest": 38, "waist": 32, "hips": 40}
    job_id, request = h.submit(
        tryon({"source": "attributes", "category": "coat", "colour": "#c81e28"}, measurements=imperial)
    )
    run_tryon(job_id, request, h.ctx)
    (product, made), (model, call) = h.triton.calls
    assert (
        product == "product_cgan"
        and made["categories"] == [4]
        and made["colours"] == [3]
        and made["seeds"] == [9]
    )
    assert model == "tryon_cvae" and call["categories"] == [4]
    assert call["measurements"][0] == pytest.approx([172.72, 68.0388555, 96.52, 81.28, 101.6])
    _, _, metadata = h.bucket.objects[f"tryon/{job_id}/0.png"]
    assert metadata["garment"]["source"] == "attributes" and metadata["garment"]["model"] == "product_cgan"


def test_tryon_of_a_listing_job_that_does_not_exist_fails_permanently() -> None:
    h = Harness()
    job_id, request = h.submit(tryon({"source": "listing", "job_id": "f" * 32}))
    run_tryon(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert record.error.code == "garment_not_found" and "f" * 32 in record.error.message
    assert h.events(job_id) == ["job.failed"]


def test_tryon_of_a_listing_still_running_is_retried() -> None:
    h = Harness()
    listing_id, _ = h.submit(listing())
    job_id, request = h.submit(tryon({"source": "listing", "job_id": listing_id}))
    with pytest.raises(RetryLater) as later:
        run_tryon(job_id, request, h.ctx)
    assert later.value.error.code == "garment_not_ready"


def test_tryon_of_shoes_is_refused() -> None:
    h = Harness()
    listing_id, request = h.submit(listing(attributes={"category": "sandal", "colour": "brown"}))
    run_listing(listing_id, request, h.ctx)
    job_id, request = h.submit(tryon({"source": "listing", "job_id": listing_id}))
    run_tryon(job_id, request, h.ctx)
    error = h.store.records[job_id].error
    assert error is not None and error.code == "garment_not_wearable"


def test_backoff_doubles_per_attempt_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    assert [backoff_delay(a, 1.0, 5.0, rand=lambda: 1.0) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert backoff_delay(3, 1.0, 5.0, rand=lambda: 0.0) == 2.0


# --- callbacks ---


def finished_job(h: Harness, **fields: Any) -> str:
    job_id, request = h.submit(listing(**fields))
    run_listing(job_id, request, h.ctx)
    return job_id


def test_the_event_carries_state_and_links_never_bytes() -> None:
    h = Harness()
    job_id = finished_job(h)
    record = h.store.records[job_id]
    succeeded = build_event(record, JobEventType.SUCCEEDED)
    assert succeeded.data["state"] == "succeeded" and succeeded.timestamp == record.finished_at
    assert [r["url"] for r in succeeded.data["results"]] == [i.url for i in record.results]
    started = build_event(record, JobEventType.STARTED)
    assert started.data["state"] == "running" and "results" not in started.data
    assert len(succeeded.model_dump_json()) < 4096


def test_a_callback_is_signed_sent_once_and_recorded() -> None:
    h = Harness()
    job_id = finished_job(h)
    delivery = deliver_callback(job_id, "job.succeeded", h.ctx)
    again = deliver_callback(job_id, "job.succeeded", h.ctx)
    assert (delivery.outcome, again.outcome) == ("delivered", "duplicate")
    (post,) = h.posts
    event = verify(post.content, post.headers, SECRET)
    assert event.type is JobEventType.SUCCEEDED and event.data["job_id"] == job_id
    assert post.headers["webhook-id"] == message_id(job_id, JobEventType.SUCCEEDED)
    assert h.store.records[job_id].callbacks == {"job.succeeded": "delivered"}


def test_a_redelivered_first_attempt_sends_even_though_the_event_was_claimed() -> None:
    h = Harness()
    job_id = finished_job(h)
    deliver_callback(job_id, "job.succeeded", h.ctx)
    assert deliver_callback(job_id, "job.succeeded", h.ctx, redelivered=True).outcome == "delivered"
    assert len(h.posts) == 2


def test_a_failing_receiver_is_retried_on_the_schedule_with_the_same_body_then_given_up() -> None:
    h = Harness(receiver=lambda request: httpx.Response(503))
    job_id = finished_job(h)
    first = deliver_callback(job_id, "job.succeeded", h.ctx)
    assert first.retry_in == 1.0 and first.payload is not None
    second = deliver_callback(job_id, "job.succeeded", h.ctx, attempt=2, payload=first.payload)
    assert second.retry_in == 5.0
    third = deliver_callback(job_id, "job.succeeded", h.ctx, attempt=3, payload=second.payload)
    assert third.retry_in is None and third.outcome == "failed after 3 attempts: HTTP 503"
    assert len({post.content for post in h.posts}) == 1
    assert h.store.records[job_id].callbacks["job.succeeded"] == "failed after 3 attempts: HTTP 503"


def test_gone_stops_this_and_every_later_event_of_the_job() -> None:
    h = Harness(receiver=lambda request: httpx.Response(410))
    job_id = finished_job(h)
    assert deliver_callback(job_id, "job.started", h.ctx).outcome.startswith("gone")
    later = deliver_callback(job_id, "job.succeeded", h.ctx)
    assert later.retry_in is None and "410" in later.outcome and len(h.posts) == 1


def test_an_unsubscribed_event_is_not_sent() -> None:
    h = Harness()
    job_id = finished_job(h, callback={"url": HOOK, "events": ["job.failed"]})
    assert deliver_callback(job_id, "job.succeeded", h.ctx).outcome == "not subscribed"
    assert h.posts == []


def test_the_callback_payload_round_trips_as_json() -> None:
    h = Harness(receiver=lambda request: httpx.Response(500))
    job_id = finished_job(h)
    payload = deliver_callback(job_id, "job.succeeded", h.ctx).payload
    assert json.loads(json.dumps(payload)) == payload


def test_untyped_exceptions_are_typed_for_the_retry_policy() -> None:
    assert as_atelier_error(StoreUnavailable("redis down")).code == "store_unavailable"
    assert as_atelier_error(StoreUnavailable("redis down")).retryable
    assert job_failure(SoftTimeLimitExceeded()).code == "job_time_limit"
    assert not as_atelier_error(KeyError("x")).retryable


def test_a_job_queued_callback_the_producer_lost_is_queued_again_when_the_job_starts() -> None:
    h = Harness()
    lost, body = h.submit(listing(), queued_sent=False)  # the broker died between the two publishes
    sent, sent_body = h.submit(listing())

    run_listing(lost, body, h.ctx)
    run_listing(sent, sent_body, h.ctx)

    assert h.events(lost) == ["job.queued", "job.started", "job.succeeded"]
    assert h.events(sent) == ["job.started", "job.succeeded"]


# --- cancel while running ---


def test_a_cancel_asked_right_after_the_start_ends_the_job_canceled_without_its_objects() -> None:
    """A listing job checks for a cancel once, in the write that would end it: a read before the
    model call or the upload would cost every job a round trip to Redis (issue 15) to spare a
    rare canceled one its work; its objects are removed all the same."""
    h = Harness()
    job_id, request = h.submit(listing())
    original = h.store.transition

    def cancel_after_start(job: str, to_state: Any, **kwargs: Any) -> bool:
        done = original(job, to_state, **kwargs)
        if JobState(to_state) is JobState.RUNNING:
            h.store.request_cancel(job)
        return done

    h.store.transition = cancel_after_start  # type: ignore[method-assign]
    run_listing(job_id, request, h.ctx)

    record = h.store.records[job_id]
    assert record.state is JobState.CANCELED and h.bucket.objects == {}
    assert [model for model, _ in h.triton.calls] == ["product_cgan"]
    assert h.events(job_id) == ["job.started", "job.canceled"]


def test_a_cancel_asked_during_inference_ends_the_job_canceled_without_its_objects() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    generate = h.triton.generate_products

    def generate_then_cancel(*args: Any, **kwargs: Any) -> Generated:
        h.store.request_cancel(job_id)
        return generate(*args, **kwargs)

    h.triton.generate_products = generate_then_cancel  # type: ignore[method-assign]
    run_listing(job_id, request, h.ctx)

    assert h.store.records[job_id].state is JobState.CANCELED and h.bucket.objects == {}
    assert h.events(job_id) == ["job.started", "job.canceled"]


def test_a_cancel_asked_during_the_upload_wins_over_success_and_keeps_no_object() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    put = h.bucket.put_image

    def put_then_cancel(*args: Any, **kwargs: Any) -> Any:
        stored = put(*args, **kwargs)
        h.store.request_cancel(job_id)
        return stored

    h.bucket.put_image = put_then_cancel  # type: ignore[method-assign]
    run_listing(job_id, request, h.ctx)

    record = h.store.records[job_id]
    assert record.state is JobState.CANCELED and record.results == [] and h.bucket.objects == {}
    assert h.bucket.puts == 3 and h.events(job_id) == ["job.started", "job.canceled"]


def test_a_listing_job_reads_its_record_only_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The success's write is the cancel check, and the review policy comes from the record the
    start wrote (``JobStore.recent``): no read between the start and the end."""
    h = Harness()
    job_id, request = h.submit(listing())
    reads: list[str] = []
    read_when_ended: list[int] = []
    get, transition = h.store.get, h.store.transition_record

    def counted(job: str) -> Any:
        reads.append(job)
        return get(job)

    def ending(job: str, to_state: Any, **kwargs: Any) -> Any:
        if to_state is JobState.SUCCEEDED:
            read_when_ended.append(len(reads))
        return transition(job, to_state, **kwargs)

    monkeypatch.setattr(h.store, "get", counted)
    monkeypatch.setattr(h.store, "transition_record", ending)
    run_listing(job_id, request, h.ctx)

    assert h.store.records[job_id].state is JobState.SUCCEEDED and read_when_ended == [0]


def test_a_cancel_after_the_job_succeeded_is_refused_with_the_reason() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    run_listing(job_id, request, h.ctx)
    record = h.store.request_cancel(job_id)
    assert record.state is JobState.SUCCEEDED and cancel_refusal(record) == "the job already ended succeeded"


def test_a_redelivered_job_whose_cancel_was_asked_ends_canceled_without_running() -> None:
    h = Harness()
    job_id, request = h.submit(listing())
    assert h.store.transition(job_id, JobState.RUNNING)  # its worker died
    assert cancel_refusal(h.store.request_cancel(job_id)) is None  # accepted: it stops at its next step
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert h.store.records[job_id].state is JobState.CANCELED and h.triton.calls == []


# --- the quality gate ---


def stub_value(seed: int, request: dict[str, Any]) -> int:
    """The grey level ``StubInference`` gives the product image of ``seed`` for ``request``."""
    attributes = ListingImageRequest.model_validate(request).attributes
    category, colour = category_by_slug(attributes.category).index, colour_by_name(attributes.colour).index
    return (7 * seed + 3 * category + colour) % 256


def test_a_variant_the_gate_fails_is_regenerated_with_a_derived_seed_and_kept_when_it_passes() -> None:
    request = listing()
    seeds = variant_seeds(5, 3)
    gate = ScriptedGate({stub_value(seeds[1], request): ["colour"]})
    h = Harness(gate=gate)
    job_id, body = h.submit(request)
    run_listing(job_id, body, h.ctx)

    record = h.store.records[job_id]
    assert record.state is JobState.SUCCEEDED and len(h.store.records[job_id].catalog_images()) == 3
    regenerated = record.results[1].gate
    assert regenerated is not None and regenerated.passed and regenerated.tries == 2
    assert regenerated.seed == retry_seed(seeds[1], 2)
    assert [call[1]["seeds"] for call in h.triton.calls if call[0] == "product_cgan"] == [
        seeds,
        [retry_seed(seeds[1], 2)],
    ]
    metadata = h.bucket.objects[record.results[1].key][2]
    assert metadata["seed"] == retry_seed(seeds[1], 2) and metadata["gate"] == "passed"
    assert metadata["gate_tries"] == 2


def test_a_variant_failing_every_try_is_kept_flagged_without_a_link_and_the_rest_succeed() -> None:
    request = listing()
    seeds = variant_seeds(5, 3)
    always = {
        stub_value(retry_seed(seeds[0], n) if n > 1 else seeds[0], request): ["category"] for n in (1, 2, 3)
    }
    h = Harness(gate=ScriptedGate(always))
    job_id, body = h.submit(request)
    run_listing(job_id, body, h.ctx)

    record = h.store.records[job_id]
    flagged = record.results[0].gate
    assert record.state is JobState.SUCCEEDED and flagged is not None
    assert not flagged.passed and flagged.tries == 3
    assert [check.name for check in flagged.checks if not check.passed] == ["category"]
    assert [image.variant for image in record.catalog_images()] == [1, 2]
    assert h.bucket.objects[record.results[0].key][2]["gate"] == "failed:category"


def test_a_job_whose_every_variant_fails_the_gate_fails_and_keeps_no_image() -> None:
    class FailingEverything(ScriptedGate):
        def judge(self, images: Any, probabilities: Any, **_: Any) -> list[Any]:
            return [Verdict(tuple(Check.at_least(n, 0.0, 0.5) for n in ("blank",))) for _ in images]

    h = Harness(gate=FailingEverything(max_tries=2))
    job_id, body = h.submit(listing())
    run_listing(job_id, body, h.ctx)

    record = h.store.records[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert record.error.code == "quality_gate_failed" and "2 tries" in record.error.message
    assert h.bucket.objects == {} and h.events(job_id) == ["job.started", "job.failed"]


def test_the_same_request_ends_with_the_same_images_and_reports() -> None:
    request = listing()
    seeds = variant_seeds(5, 3)
    outcomes = []
    for _ in range(2):
        h = Harness(gate=ScriptedGate({stub_value(seeds[2], request): ["duplicate"]}))
        job_id, body = h.submit(request, job_id="0" * 32)
        run_listing(job_id, body, h.ctx)
        record = h.store.records[job_id]
        outcomes.append(([i.gate for i in record.results], sorted(h.bucket.objects.items())))
    assert outcomes[0] == outcomes[1]


def test_with_the_gate_off_nothing_is_judged() -> None:
    h = Harness()
    h.ctx.gate = None
    job_id, body = h.submit(listing())
    run_listing(job_id, body, h.ctx)
    assert [call[0] for call in h.triton.calls] == ["product_cgan"] and h.triton.judged == []
    assert all(image.gate is None for image in h.store.records[job_id].results)
