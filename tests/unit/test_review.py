"""Human review without services: the rules (``core.jobs.review``), the state machine's review
writes and the review index on ``core.jobs.MemoryJobStore``, the worker's end of a job under each
policy and its remakes (``worker.pipeline``, ``worker.regeneration`` on ``worker.stubs``), the
message gate for remakes, the paging of waiting images (``api.review.queue``), and the API's
cached policies. The same writes on Redis, PostgreSQL and over HTTP:
tests/integration/test_review_api.py.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from api.keys.errors import KeyStoreUnavailable
from api.review.policies import CachedPolicies, PolicyStore
from api.review.queue import ImageFilter, decode_cursor, waiting_images
from core.contracts.jobs import (
    GateCheck,
    GateReport,
    ImageDecision,
    ImageReview,
    JobEventType,
    JobKind,
    JobState,
    ReviewPolicy,
    StoredImage,
)
from core.contracts.v1 import parse_request
from core.errors import ErrorCode, PermanentError, RetryableError
from core.jobs import InvalidCursor, MemoryJobStore
from core.jobs.review import (
    GATE_REVIEWER,
    DecisionOutcome,
    held_for_review,
    regenerated_seed,
    review_end,
)
from core.settings import AtelierSettings
from core.topology import LISTING_TASK, REGENERATE_TASK, build_topology
from core.worker_settings import WorkerSettings
from producer.client import record_for
from tests.unit.test_message_gate import body
from worker.gate import inspect_message
from worker.inference import Generated
from worker.pipeline import RetryLater, job_seed, run_listing, succeed
from worker.regeneration import regenerate
from worker.stubs import MemoryImageStore, RecordingNotifier, StubInference, stub_context

HOOK = "https://shop.example/hooks/atelier"
ALL_EVENTS = [event.value for event in JobEventType]
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def listing(**fields: Any) -> dict[str, Any]:
    return {
        "requester": "shop-eu",
        "listing_id": "SKU-1",
        "attributes": {"category": "dress", "colour": "navy"},
        "variants": 3,
        "seed": 5,
        "output": {"format": "png", "size": 64},
        "callback": {"url": HOOK, "events": ALL_EVENTS},
        **fields,
    }


def gate(passed: bool) -> GateReport:
    check = GateCheck(name="category", score=0.9 if passed else 0.1, threshold=0.5, passed=passed)
    return GateReport(passed=passed, checks=[check])


def image(variant: int, *, passed: bool | None = None, review: ImageReview | None = None) -> StoredImage:
    return StoredImage(
        variant=variant,
        bucket="test",
        key=f"listing/j/{variant}.png",
        content_type="image/png",
        url="https://s3.test/x",
        url_expires_at=NOW,
        gate=None if passed is None else gate(passed),
        review=review,
    )


class Harness:
    """A worker context of the shipped stand-ins, and a job store to submit to."""

    def __init__(
        self, *, triton: StubInference | None = None, bucket: MemoryImageStore | None = None
    ) -> None:
        self.settings = WorkerSettings(  # type: ignore[call-arg]
            _env_file=None, job_retry_attempts=3, job_retry_backoff_base_s=2.0, job_retry_backoff_max_s=10.0
        )
        ticks = iter(range(1_000_000, 10_000_000))
        self.store = MemoryJobStore(clock=lambda: float(next(ticks)))  # later jobs enter review later
        self.triton = triton or StubInference()
        self.bucket = bucket or MemoryImageStore()
        self.notifier = RecordingNotifier()
        self.ctx = stub_context(
            self.settings, store=self.store, inference=self.triton, images=self.bucket, notify=self.notifier
        )

    def submit(self, request: dict[str, Any], *, policy: ReviewPolicy) -> tuple[str, dict[str, Any]]:
        parsed = parse_request(request)
        record = record_for(parsed, uuid.uuid4().hex, review_policy=policy)
        body = parsed.model_dump(mode="json")
        self.store.create(record, request=body)
        self.store.claim_event(record.job_id, JobEventType.QUEUED)  # the producer's publish went through
        return record.job_id, body

    def awaiting(self, *, policy: ReviewPolicy = ReviewPolicy.ALL, **fields: Any) -> str:
        """A listing job run to ``awaiting_review`` under ``policy`` (every image pending)."""
        job_id, request = self.submit(listing(**fields), policy=policy)
        run_listing(job_id, request, self.ctx)
        assert self.store.records[job_id].state is JobState.AWAITING_REVIEW
        return job_id

    def decide(self, job_id: str, variant: int, status: ImageDecision, reason: str | None = None) -> Any:
        review = ImageReview(status=status, reason=reason, reviewer="key-1", decided_at=NOW)
        return self.store.decide_image(job_id, variant, review)

    def events(self, job_id: str) -> list[str]:
        return self.notifier.events(job_id)


# --- the rules ---


def test_auto_holds_nothing_and_try_ons_are_never_held() -> None:
    images = [image(0, passed=False), image(1)]
    assert held_for_review(JobKind.LISTING, ReviewPolicy.AUTO, images, now=NOW) == (images, False)
    assert held_for_review(JobKind.TRYON, ReviewPolicy.ALL, images, now=NOW) == (images, False)


def test_flagged_holds_only_a_job_whose_gate_failed_an_image_and_approves_the_rest_as_the_gate() -> None:
    reviewed, held = held_for_review(
        JobKind.LISTING,
        ReviewPolicy.FLAGGED,
        [image(0, passed=True), image(1, passed=False), image(2)],
        now=NOW,
    )
    assert held
    assert [i.review.status for i in reviewed if i.review] == ["approved", "pending", "approved"]
    assert reviewed[0].review is not None and reviewed[0].review.reviewer == GATE_REVIEWER
    clean, held = held_for_review(JobKind.LISTING, ReviewPolicy.FLAGGED, [image(0, passed=True)], now=NOW)
    assert not held and clean[0].review is not None and clean[0].review.status is ImageDecision.APPROVED


def test_all_holds_every_image_pending() -> None:
    reviewed, held = held_for_review(
        JobKind.LISTING, ReviewPolicy.ALL, [image(0, passed=True), image(1)], now=NOW
    )
    assert held and all(i.review == ImageReview() for i in reviewed)


def test_a_review_ends_when_nothing_is_open_approved_if_any_image_is() -> None:
    h = Harness()
    job_id = h.awaiting()
    record = h.store.records[job_id]
    assert review_end(record) is None
    rejected = ImageReview(status=ImageDecision.REJECTED, reason="no")
    approved = ImageReview(status=ImageDecision.APPROVED)
    regenerating = ImageReview(status=ImageDecision.REGENERATING, reason="again", regenerations=1)
    one_approved = [i.model_copy(update={"review": rejected}) for i in record.results[:2]]
    one_approved.append(record.results[2].model_copy(update={"review": approved}))
    assert review_end(record.model_copy(update={"results": one_approved})) is JobState.APPROVED
    none = [i.model_copy(update={"review": rejected}) for i in record.results]
    assert review_end(record.model_copy(update={"results": none})) is JobState.REJECTED
    remaking = [*none[:2], none[2].model_copy(update={"review": regenerating})]
    assert review_end(record.model_copy(update={"results": remaking})) is None


def test_a_remake_seed_is_derived_deterministic_and_differs_per_variant_and_remake() -> None:
    seeds = {regenerated_seed(5, variant, n) for variant in range(4) for n in range(1, 4)}
    assert len(seeds) == 12 and all(0 <= seed < 2**63 for seed in seeds)
    assert regenerated_seed(5, 1, 2) == regenerated_seed(5, 1, 2)


# --- the worker's end of a job ---


def test_under_auto_a_job_succeeds_as_before() -> None:
    h = Harness()
    job_id, request = h.submit(listing(), policy=ReviewPolicy.AUTO)
    run_listing(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.SUCCEEDED and all(i.review is None for i in record.results)
    assert h.events(job_id) == ["job.started", "job.succeeded"]
    assert h.store.awaiting_review_index("shop-eu") == []


def test_under_all_a_job_awaits_review_with_every_image_pending_and_joins_the_review_index() -> None:
    h = Harness()
    job_id, request = h.submit(listing(), policy=ReviewPolicy.ALL)
    run_listing(job_id, request, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.AWAITING_REVIEW and record.finished_at is None
    assert [i.review.status for i in record.results if i.review] == ["pending"] * 3
    assert record.catalog_images() == []
    assert h.events(job_id) == ["job.started", "job.review_required"]
    assert [entry.job_id for entry in h.store.awaiting_review_index("shop-eu")] == [job_id]
    assert h.store.awaiting_review_index("shop-us") == []


def test_under_flagged_the_gate_reports_decide_between_succeeded_and_awaiting_review() -> None:
    h = Harness()
    generated = Generated(images=None, model="product_cgan", version="1")  # type: ignore[arg-type]
    clean, request = h.submit(listing(), policy=ReviewPolicy.FLAGGED)
    flagged, _ = h.submit(listing(), policy=ReviewPolicy.FLAGGED)
    for job_id in (clean, flagged):
        assert h.store.transition(job_id, JobState.RUNNING)
    req = parse_request(request)
    succeed(clean, req, h.ctx, generated, 5, [image(0, passed=True), image(1)])
    succeed(flagged, req, h.ctx, generated, 5, [image(0, passed=True), image(1, passed=False)])
    assert h.store.records[clean].state is JobState.SUCCEEDED
    assert len(h.store.records[clean].catalog_images()) == 2
    held = h.store.records[flagged]
    assert held.state is JobState.AWAITING_REVIEW
    assert [i.review.status for i in held.results if i.review] == ["approved", "pending"]
    assert h.events(clean) == ["job.succeeded"] and h.events(flagged) == ["job.review_required"]


def test_a_cancel_asked_while_running_wins_over_review_too() -> None:
    h = Harness()
    job_id, request = h.submit(listing(), policy=ReviewPolicy.ALL)
    real_put = h.bucket.put_image

    def put_then_cancel(*args: Any, **kwargs: Any) -> StoredImage:
        h.store.request_cancel(job_id)
        return real_put(*args, **kwargs)

    h.bucket.put_image = put_then_cancel  # type: ignore[method-assign]
    run_listing(job_id, request, h.ctx)
    assert h.store.records[job_id].state is JobState.CANCELED and h.bucket.objects == {}
    assert h.events(job_id) == ["job.started", "job.canceled"]
    assert h.store.awaiting_review_index("shop-eu") == []


def test_a_redelivered_message_of_a_job_awaiting_review_queues_its_callback_again_and_does_no_work() -> None:
    h = Harness()
    job_id, request = h.submit(listing(), policy=ReviewPolicy.ALL)
    run_listing(job_id, request, h.ctx)
    run_listing(job_id, request, h.ctx, redelivered=True)
    assert len(h.triton.calls) == 1 and h.store.records[job_id].attempts == 1
    assert h.events(job_id)[-1] == "job.review_required"


# --- decisions on the state machine ---


def test_approving_some_and_rejecting_the_rest_ends_approved_with_links_only_for_the_approved() -> None:
    h = Harness()
    job_id = h.awaiting()
    assert h.decide(job_id, 0, ImageDecision.APPROVED).applied
    assert h.decide(job_id, 1, ImageDecision.REJECTED, "wrong colour").applied
    assert h.store.records[job_id].state is JobState.AWAITING_REVIEW
    last = h.decide(job_id, 2, ImageDecision.APPROVED)
    assert last.applied and last.record.state is JobState.APPROVED and last.record.finished_at is not None
    assert [i.variant for i in last.record.catalog_images()] == [0, 2]
    approved = h.store.events(job_id)[-1].event
    assert approved.type is JobEventType.APPROVED
    assert [r["variant"] for r in approved.data["results"]] == [0, 2]
    assert approved.data["rejected"][0]["review"]["reason"] == "wrong colour"
    assert h.store.awaiting_review_index("shop-eu") == []


def test_rejecting_every_image_ends_rejected_with_no_link() -> None:
    h = Harness()
    job_id = h.awaiting()
    for variant in range(3):
        change = h.decide(job_id, variant, ImageDecision.REJECTED, "blank")
    assert change.record.state is JobState.REJECTED and change.record.catalog_images() == []
    event = h.store.events(job_id)[-1].event
    assert event.type is JobEventType.REJECTED and "results" not in event.data


def test_a_decided_image_a_missing_variant_and_a_canceled_job_are_refused_without_a_write() -> None:
    h = Harness()
    job_id = h.awaiting()
    assert h.decide(job_id, 0, ImageDecision.APPROVED).applied
    again = h.decide(job_id, 0, ImageDecision.REJECTED, "changed my mind")
    assert again.outcome is DecisionOutcome.CONFLICT and "already approved" in again.detail
    assert h.decide(job_id, 7, ImageDecision.APPROVED).outcome is DecisionOutcome.NOT_FOUND
    assert h.decide("nope", 0, ImageDecision.APPROVED).outcome is DecisionOutcome.NOT_FOUND
    assert h.store.request_cancel(job_id).state is JobState.CANCELED
    late = h.decide(job_id, 1, ImageDecision.APPROVED)
    assert late.outcome is DecisionOutcome.CONFLICT and "canceled" in late.detail
    record = h.store.records[job_id]
    assert record.results[1].review == ImageReview() and record.results[0].review.status == "approved"


def test_racing_reviewers_and_a_cancel_change_each_image_once() -> None:
    h = Harness()
    job_id = h.awaiting(variants=1)
    start = threading.Barrier(9)
    outcomes: list[str] = []

    def decide() -> None:
        start.wait()
        outcomes.append(h.decide(job_id, 0, ImageDecision.APPROVED).outcome.value)

    def cancel() -> None:
        start.wait()
        outcomes.append("canceled" if h.store.request_cancel(job_id).state is JobState.CANCELED else "-")

    threads = [threading.Thread(target=decide) for _ in range(8)] + [threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = h.store.records[job_id].state
    terminal = [
        e.event.type for e in h.store.events(job_id) if e.event.type.value in ("job.approved", "job.canceled")
    ]
    assert len(terminal) == 1
    if final is JobState.APPROVED:
        assert outcomes.count("applied") == 1 and "canceled" not in outcomes
    else:
        assert final is JobState.CANCELED and "applied" not in outcomes


# --- remakes ---


def rejected_for_remake(h: Harness, job_id: str, variant: int = 1) -> int:
    change = h.decide(job_id, variant, ImageDecision.REGENERATING, "wrong collar")
    assert change.applied and change.record.state is JobState.AWAITING_REVIEW
    review = change.record.results[variant].review
    assert review is not None and review.status is ImageDecision.REGENERATING
    return review.regenerations


def test_a_remake_replaces_the_image_at_the_same_key_with_a_derived_seed_and_puts_it_up_again() -> None:
    h = Harness()
    job_id = h.awaiting()
    before = dict(h.bucket.objects)
    regeneration = rejected_for_remake(h, job_id)
    assert regeneration == 1
    regenerate(job_id, 1, regeneration, h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.AWAITING_REVIEW
    assert record.results[1].review == ImageReview(regenerations=1)
    assert sorted(h.bucket.objects) == sorted(before)  # same keys: nothing left behind
    data, _, metadata = h.bucket.objects[f"listing/{job_id}/1.png"]
    assert data != before[f"listing/{job_id}/1.png"][0]
    assert metadata["seed"] == regenerated_seed(5, 1, 1) and metadata["regeneration"] == 1
    # one request: the other kept variants again from their seeds (for the gate), the remake last
    assert h.triton.calls[-1][1]["seeds"] == [5, 7, regenerated_seed(5, 1, 1)]
    assert h.events(job_id) == ["job.started", "job.review_required"]  # no callback for a remake
    # a duplicate of the message, or a stale one, does nothing
    regenerate(job_id, 1, regeneration, h.ctx)
    assert len(h.triton.calls) == 2


def test_the_same_decisions_make_the_same_remade_image() -> None:
    remade = []
    for _ in range(2):
        h = Harness()
        job_id = h.awaiting(seed=11)
        regenerate(job_id, 1, rejected_for_remake(h, job_id), h.ctx)
        remade.append(h.bucket.objects[f"listing/{job_id}/1.png"][0])
    assert remade[0] == remade[1]


def test_a_remake_of_a_job_canceled_meanwhile_is_dropped() -> None:
    h = Harness()
    job_id = h.awaiting()
    regeneration = rejected_for_remake(h, job_id)
    h.store.request_cancel(job_id)
    regenerate(job_id, 1, regeneration, h.ctx)
    assert len(h.triton.calls) == 1 and h.store.records[job_id].state is JobState.CANCELED


def test_a_remake_retries_while_triton_is_down_then_leaves_the_image_rejected_and_ends_the_review() -> None:
    down = RetryableError(ErrorCode.INFERENCE_UNAVAILABLE, "triton is down")
    h = Harness()
    job_id = h.awaiting(variants=1)
    h.triton.errors = [down, down]
    regeneration = rejected_for_remake(h, job_id, variant=0)
    with pytest.raises(RetryLater):
        regenerate(job_id, 0, regeneration, h.ctx, tries=1)
    assert h.store.records[job_id].state is JobState.AWAITING_REVIEW
    regenerate(job_id, 0, regeneration, h.ctx, tries=3)  # the last try
    record = h.store.records[job_id]
    assert record.state is JobState.REJECTED
    review = record.results[0].review
    assert review is not None and review.status is ImageDecision.REJECTED
    assert review.reason is not None and review.reason.startswith(
        "wrong collar (not made again: triton is down"
    )
    assert h.events(job_id)[-1] == "job.rejected"


def test_a_permanent_remake_failure_gives_up_at_once() -> None:
    h = Harness()
    job_id = h.awaiting()
    h.triton.errors = [PermanentError(ErrorCode.INVALID_REQUEST, "no such model version")]
    regenerate(job_id, 2, rejected_for_remake(h, job_id, variant=2), h.ctx)
    record = h.store.records[job_id]
    assert record.state is JobState.AWAITING_REVIEW  # variants 0 and 1 still pending
    assert record.results[2].review is not None and record.results[2].review.status is ImageDecision.REJECTED


def test_an_unpublished_remake_is_undone_as_if_never_decided() -> None:
    h = Harness()
    job_id = h.awaiting()
    regeneration = rejected_for_remake(h, job_id)
    assert h.store.reopen_image(job_id, 1, regeneration=regeneration).applied
    assert h.store.records[job_id].results[1].review == ImageReview()


def test_the_remake_task_is_routed_to_the_listing_queue_and_its_message_passes_the_gate() -> None:
    topology = build_topology(AtelierSettings(_env_file=None))  # type: ignore[call-arg]
    assert topology.queue_for(REGENERATE_TASK) == topology.queue_for(LISTING_TASK)
    known = {LISTING_TASK, REGENERATE_TASK}
    headers = {"task": REGENERATE_TASK, "id": "j.regenerate.1.1"}

    def check(kwargs: dict[str, Any]) -> str | None:
        poison = inspect_message(
            body(kwargs), headers, "application/json", known_tasks=known, max_bytes=10_000
        )
        return None if poison is None else poison.detail

    assert check({"job_id": "j", "variant": 1, "regeneration": 1}) is None
    assert check({"job_id": "j", "variant": 1}) == "keyword argument 'regeneration' is missing"
    assert (
        check({"job_id": "j", "variant": True, "regeneration": 1})
        == "keyword argument 'variant' is not a int"
    )


# --- the waiting images, a page at a time ---


def test_waiting_images_page_across_jobs_and_inside_a_job_oldest_first() -> None:
    h = Harness()
    jobs = [h.awaiting(variants=variants) for variants in (3, 2, 3)]
    seen: list[tuple[str, int]] = []
    cursor = None
    pages = 0
    while True:
        page = waiting_images(h.store, "shop-eu", limit=2, cursor=cursor)
        pages += 1
        seen.extend((w.record.job_id, w.image.variant) for w in page.images)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = (
        [(jobs[0], v) for v in range(3)] + [(jobs[1], v) for v in range(2)] + [(jobs[2], v) for v in range(3)]
    )
    assert seen == expected and pages == 4
    assert waiting_images(h.store, "shop-us").images == []


def test_waiting_images_filter_by_status_category_and_flag() -> None:
    h = Harness()
    dress = h.awaiting(variants=2)
    bag = h.awaiting(variants=2, attributes={"category": "bag", "colour": "red"})
    h.decide(dress, 0, ImageDecision.APPROVED)
    pending = waiting_images(h.store, "shop-eu").images
    assert [(w.record.job_id, w.image.variant) for w in pending] == [(dress, 1), (bag, 0), (bag, 1)]
    bags = waiting_images(h.store, "shop-eu", filters=ImageFilter(category="bag")).images
    assert [w.request["attributes"]["category"] for w in bags] == ["bag", "bag"]
    approved = waiting_images(h.store, "shop-eu", filters=ImageFilter(status=ImageDecision.APPROVED)).images
    assert [(w.record.job_id, w.image.variant) for w in approved] == [(dress, 0)]
    assert waiting_images(h.store, "shop-eu", filters=ImageFilter(flagged=True)).images == []  # no gate ran
    assert len(waiting_images(h.store, "shop-eu", filters=ImageFilter(flagged=False)).images) == 3


def test_a_rare_filter_answers_a_short_page_with_a_cursor_and_a_bad_cursor_is_refused() -> None:
    h = Harness()
    for _ in range(3):
        h.awaiting(variants=1)
    page = waiting_images(h.store, "shop-eu", filters=ImageFilter(category="bag"), scan_limit=2)
    assert page.images == [] and page.next_cursor is not None
    assert decode_cursor(page.next_cursor).variant is None
    rest = waiting_images(h.store, "shop-eu", filters=ImageFilter(category="bag"), cursor=page.next_cursor)
    assert rest.images == [] and rest.next_cursor is None
    with pytest.raises(InvalidCursor):
        waiting_images(h.store, "shop-eu", cursor="not-a-cursor")


def test_an_expired_record_leaves_the_review_index_when_met() -> None:
    h = Harness()
    job_id = h.awaiting(variants=1)
    del h.store.records[job_id]
    assert waiting_images(h.store, "shop-eu").images == []
    assert h.store.awaiting_review_index("shop-eu") == []


# --- the API's copy of the policies ---


class FlakyPolicies(PolicyStore):
    def __init__(self) -> None:
        self.default = ReviewPolicy.AUTO
        self.answers: list[ReviewPolicy | Exception] = []
        self.reads = 0

    def policy_for(self, requester: str) -> ReviewPolicy:
        self.reads += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_policies_are_read_once_per_ttl_and_a_stale_one_stands_in_while_postgres_is_down() -> None:
    now = [0.0]
    store = FlakyPolicies()
    cached = CachedPolicies(store, ttl_s=5, stale_limit_s=60, clock=lambda: now[0])
    down = KeyStoreUnavailable("the review database is unavailable")
    store.answers = [ReviewPolicy.ALL, down, down]
    assert cached.policy_for("shop-a") is ReviewPolicy.ALL
    now[0] = 4
    assert cached.policy_for("shop-a") is ReviewPolicy.ALL and store.reads == 1
    now[0] = 30
    assert cached.policy_for("shop-a") is ReviewPolicy.ALL and store.reads == 2  # stale, database down
    now[0] = 100
    with pytest.raises(KeyStoreUnavailable):  # too old to stand in: never silently auto
        cached.policy_for("shop-a")
    store.answers = [down]
    with pytest.raises(KeyStoreUnavailable):
        cached.policy_for("shop-b")


def test_the_producer_writes_the_requester_policy_on_listings_only() -> None:
    listing_request = parse_request(listing())
    assert record_for(listing_request, "j", review_policy=ReviewPolicy.ALL).review_policy is ReviewPolicy.ALL
    tryon = parse_request(
        {
            "kind": "tryon",
            "requester": "shop-eu",
            "shopper_ref": "anon-1",
            "measurements": {"height": 172, "weight": 68, "chest": 94, "waist": 78, "hips": 98},
            "garment": {"source": "attributes", "category": "dress", "colour": "navy"},
            "size": "L",
        }
    )
    assert record_for(tryon, "t", review_policy=ReviewPolicy.ALL).review_policy is ReviewPolicy.AUTO
    assert job_seed(5, "j") == 5
