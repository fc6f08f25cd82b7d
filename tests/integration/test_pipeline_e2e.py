"""The whole pipeline on real services: Producer -> RabbitMQ -> ``celery -A worker.app worker``
processes -> Triton -> SeaweedFS S3 -> signed callbacks to a real HTTP receiver, with job state
in Redis.

One set of services per module: the session's Triton (``conftest.triton``), an S3 server, and
three worker processes (listing, try-on, callbacks) started as an operator starts them, on a
private exchange, queues and Redis key prefix. Refusal of invalid requests before publishing
(queue depth unchanged) is proven in ``test_producer.py``
(``test_invalid_requests_are_refused_with_field_and_rule_and_nothing_is_stored_or_queued``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.contracts.jobs import JobEventType, JobRecord, JobState
from core.worker_settings import WorkerSettings, new_webhook_secret
from embedded.receiver import CallbackReceiver, Received
from embedded.stack import Pool, Stack
from embedded.triton import TritonServer
from producer.client import Producer
from producer.webhook_verify import verify
from serving_contract.palette import PALETTE
from serving_contract.taxonomy import CATEGORIES
from tests.integration.services import queue_depth, require_services
from worker.callbacks import message_id
from worker.encoding import EXTENSIONS, decode
from worker.storage import ImageStore

pytestmark = [pytest.mark.triton, pytest.mark.slow]

GLOBAL_SECRET, SHOP_A_SECRET = new_webhook_secret(), new_webhook_secret()
ALL = [e.value for e in JobEventType]
#: requester -> the events it subscribes to (``None``: no callback at all)
REQUESTERS: dict[str, list[str] | None] = {
    "shop-a": ALL,  # signs with its own secret
    "shop-b": ["job.succeeded", "job.failed"],  # signs with the global secret
    "shop-c": None,
    "shop-flaky": ["job.succeeded"],  # answers 503 to the first POST of each event
}
WEARABLE = [c.slug for c in CATEGORIES if c.wearable]
BODY = {"height": 176, "weight": 74, "chest": 98, "waist": 84, "hips": 100}
FORMATS = ("png", "webp", "jpeg")
JOB_TIMEOUT_S = 300.0
CALLBACK_TIMEOUT_S = 60.0


def secret_for(requester: str) -> str:
    return SHOP_A_SECRET if requester == "shop-a" else GLOBAL_SECRET


class FlakyAnswer:
    """503 to the first POST of each event to ``shop-flaky`` (so it is retried), else 204."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, received: Received) -> int:
        if received.requester != "shop-flaky":
            return 204
        with self.lock:
            first = received.headers["webhook-id"] not in self.seen
            self.seen.add(received.headers["webhook-id"])
        return 503 if first else 204


#: the worker settings of every stack of this module, over the stack's own
SETTINGS: dict[str, Any] = {
    "presign_expiry_s": 3600,
    "callback_secret": GLOBAL_SECRET,
    "callback_secrets": {"shop-a": [SHOP_A_SECRET]},
    "callback_retry_schedule_s": [1.0, 2.0, 4.0],
    "job_retry_backoff_base_s": 0.5,
}


@dataclass
class Pipeline:
    stack: Stack
    settings: WorkerSettings
    producer: Producer
    images: ImageStore
    receiver: CallbackReceiver
    logs: Path

    def callback(self, requester: str) -> dict[str, Any] | None:
        events = REQUESTERS[requester]
        return None if events is None else {"url": self.receiver.url_for(requester), "events": events}

    def listing(self, i: int, requester: str, **fields: Any) -> dict[str, Any]:
        return {
            "kind": "listing",
            "requester": requester,
            "listing_id": f"SKU-E2E-{i}",
            "attributes": {
                "category": CATEGORIES[i % len(CATEGORIES)].slug,
                "colour": PALETTE[i % len(PALETTE)].name,
                "style": {"batch": "e2e", "row": str(i)},
            },
            "variants": 1 + i % 4,
            "seed": 1000 + i,
            "output": {"format": FORMATS[i % 3], "size": 64},
            "callback": self.callback(requester),
            **fields,
        }

    def tryon(self, i: int, requester: str, garment: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return {
            "kind": "tryon",
            "requester": requester,
            "shopper_ref": f"anon-{i}",
            "measurements": BODY,
            "garment": garment,
            "size": ("S", "M", "L", "XL")[i % 4],
            "seed": 2000 + i,
            "output": {"format": FORMATS[i % 3], "size": 128},
            "callback": self.callback(requester),
            **fields,
        }

    def wait(self, job_ids: Iterable[str], timeout_s: float = JOB_TIMEOUT_S) -> dict[str, JobRecord]:
        """Every job's record once all have ended (fails with the unfinished ones on timeout)."""
        pending = set(job_ids)
        records: dict[str, JobRecord] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            for job_id in list(pending):
                record = self.producer.status(job_id)
                if record.state.terminal:
                    records[job_id] = record
                    pending.discard(job_id)
            if pending and time.monotonic() > deadline:
                states = Counter(self.producer.status(j).state.value for j in pending)
                unfinished = f"{len(pending)} jobs unfinished after {timeout_s:.0f} s: {dict(states)}"
                pytest.fail(f"{unfinished}; logs in {self.logs}")
            time.sleep(0.25)
        return records

    def posts_for(self, job_id: str) -> list[Received]:
        return [
            r for r in self.receiver.received if r.event is not None and r.event.data.get("job_id") == job_id
        ]

    def wait_posts(self, count: int) -> list[Received]:
        assert self.receiver.wait_for(lambda got: len(got) >= count, CALLBACK_TIMEOUT_S), (
            f"{len(self.receiver.received)} of {count} callbacks arrived; logs in {self.logs}"
        )
        return self.receiver.received


@pytest.fixture(scope="module")
def pipeline(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    require_services()
    state = tmp_path_factory.mktemp("pipeline")
    with Stack(
        tag="e2e",
        workdir=state,
        triton_grpc_url=triton.grpc_url,
        answer=FlakyAnswer(),
        workers=[Pool("listing"), Pool("tryon"), Pool("callbacks")],
        settings=SETTINGS,
    ) as stack:
        assert stack.receiver is not None
        settings = stack.settings
        yield Pipeline(stack, settings, stack.producer, ImageStore(settings), stack.receiver, stack.logs)


def expected_events(request: dict[str, Any], record: JobRecord) -> set[str]:
    """The events a finished job's requester must have received."""
    callback = request.get("callback")
    if callback is None:
        return set()
    happened = {
        "job.queued",
        {JobState.SUCCEEDED: "job.succeeded", JobState.FAILED: "job.failed"}[record.state],
    }
    if record.attempts:
        happened.add("job.started")
    return happened & set(callback["events"])


def check_objects(pipeline: Pipeline, request: dict[str, Any], record: JobRecord) -> None:
    """Every image of a succeeded job is in S3 at its key, with its metadata, and only those."""
    kind = request["kind"]
    fmt, size = request["output"]["format"], request["output"]["size"]
    variants = request.get("variants", 1) if kind == "listing" else 1
    keys = [f"{kind}/{record.job_id}/{v}.{EXTENSIONS[fmt]}" for v in range(variants)]
    assert [image.key for image in record.results] == keys
    assert pipeline.images.list_keys(f"{kind}/{record.job_id}/") == keys
    assert record.seed == request["seed"]
    for variant, key in enumerate(keys):
        metadata = pipeline.images.metadata(key)
        assert metadata["job-id"] == record.job_id and metadata["kind"] == kind
        assert metadata["model"] == record.model and metadata["model-version"] == record.model_version
        gate = record.results[variant].gate
        # a variant the quality gate failed was generated again with a derived seed (worker.gating)
        seed = gate.seed if gate is not None and gate.tries > 1 else request["seed"] + variant
        assert (metadata["seed"], metadata["variant"]) == (str(seed), str(variant))
        assert metadata["content-type"] == f"image/{fmt}"
        if kind == "listing":
            assert gate is not None and metadata["gate-tries"] == str(gate.tries)
            assert metadata["gate"] == "passed" if gate.passed else metadata["gate"].startswith("failed:")
            assert metadata["category"] == request["attributes"]["category"]
            assert metadata["colour"] == request["attributes"]["colour"]
        assert decode(pipeline.images.get_bytes(key)).shape == (size, size, 3)


def check_callbacks(
    pipeline: Pipeline, requests: dict[str, dict[str, Any]], records: dict[str, JobRecord]
) -> None:
    """Each subscribed event arrived once (``shop-flaky``: twice, the first answered 503, with the
    same body), signed with its requester's secret; the outcome is recorded on the job."""
    want = {job_id: expected_events(requests[job_id], records[job_id]) for job_id in requests}

    def posts(job_id: str) -> int:
        return 2 if requests[job_id]["requester"] == "shop-flaky" else 1

    pipeline.wait_posts(sum(len(events) * posts(job_id) for job_id, events in want.items()))
    time.sleep(1.0)  # anything extra would arrive now
    arrived: dict[tuple[str, str], list[Received]] = {}
    for item in pipeline.receiver.received:
        assert item.event is not None, item.error
        job_id = str(item.event.data["job_id"])
        if job_id in requests:
            arrived.setdefault((job_id, item.event.type.value), []).append(item)
    assert set(arrived) == {(job_id, e) for job_id, events in want.items() for e in events}
    for (job_id, event_type), items in arrived.items():
        requester = requests[job_id]["requester"]
        assert len(items) == posts(job_id), (job_id, event_type, len(items))
        assert len({item.body for item in items}) == 1  # a retry sends the same event
        for item in items:
            event = verify(item.body, item.headers, secret_for(requester))
            assert item.requester == requester and event.type.value == event_type
            assert item.headers["webhook-id"] == message_id(job_id, event.type)
    deadline = time.monotonic() + 10
    while True:
        outcomes = {job_id: pipeline.producer.status(job_id).callbacks for job_id in requests}
        expected = {job_id: dict.fromkeys(want[job_id], "delivered") for job_id in requests}
        if outcomes == expected or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert outcomes == expected


def test_50_listing_and_20_tryon_jobs_end_succeeded_with_stored_objects_and_one_verified_callback_per_event(
    pipeline: Pipeline,
) -> None:
    requesters = list(REQUESTERS)
    requests: dict[str, dict[str, Any]] = {}
    for i in range(50):
        request = pipeline.listing(i, requesters[i % len(requesters)])
        requests[pipeline.producer.submit(request)] = request
    for i in range(10):
        garment = {"source": "attributes", "category": WEARABLE[i % len(WEARABLE)], "colour": PALETTE[i].name}
        request = pipeline.tryon(i, requesters[i % len(requesters)], garment)
        requests[pipeline.producer.submit(request)] = request
    records = pipeline.wait(requests)
    wearable = [
        j for j, r in requests.items() if r["kind"] == "listing" and r["attributes"]["category"] in WEARABLE
    ]
    for i, listing_job in enumerate(wearable[:10], start=10):
        garment = {"source": "listing", "job_id": listing_job, "variant": 0}
        request = pipeline.tryon(i, requesters[i % len(requesters)], garment)
        requests[pipeline.producer.submit(request)] = request
    records.update(pipeline.wait(set(requests) - set(records)))

    kinds = Counter(r["kind"] for r in requests.values())
    assert kinds == {"listing": 50, "tryon": 20}
    assert {job_id: r.state for job_id, r in records.items()} == dict.fromkeys(
        requests, JobState.SUCCEEDED
    ), {j: r.error for j, r in records.items() if r.error}
    assert all(record.attempts == 1 for record in records.values())
    for job_id, request in requests.items():
        check_objects(pipeline, request, records[job_id])
    check_callbacks(pipeline, requests, records)


def test_resubmitting_with_the_same_idempotency_key_returns_the_job_and_does_no_new_work(
    pipeline: Pipeline,
) -> None:
    request = pipeline.listing(100, "shop-a", idempotency_key="e2e-idempotent-100")
    first = pipeline.producer.enqueue(request)
    record = pipeline.wait([first.job_id])[first.job_id]
    assert first.created and record.state is JobState.SUCCEEDED
    pipeline.receiver.wait_for(
        lambda got: len([r for r in got if r.event and r.event.data["job_id"] == first.job_id]) >= 3,
        CALLBACK_TIMEOUT_S,
    )
    time.sleep(0.5)
    objects, posts, before = (
        pipeline.images.list_keys(""),
        len(pipeline.receiver.received),
        pipeline.producer.status(first.job_id),
    )

    again = pipeline.producer.enqueue(request)
    time.sleep(2.0)  # a new job, object or callback would show by now

    assert (again.job_id, again.created) == (first.job_id, False)
    assert pipeline.images.list_keys("") == objects
    assert len(pipeline.receiver.received) == posts
    assert pipeline.producer.status(first.job_id) == before
    settings = pipeline.settings
    assert [queue_depth(settings, q) for q in (settings.listing_queue, settings.callback_queue)] == [0, 0]


def test_a_canceled_queued_job_never_runs_ends_canceled_and_its_callback_says_so(pipeline: Pipeline) -> None:
    # a stack of its own on the same services with no worker yet: the job stays queued until it is canceled
    assert pipeline.stack.s3 is not None
    with Stack(
        tag="e2e-cancel",
        workdir=pipeline.logs.parent / "cancel",
        triton_grpc_url=pipeline.settings.triton_grpc_url,
        s3=pipeline.stack.s3,
        receiver=pipeline.receiver,
        settings={**SETTINGS, "s3_bucket": pipeline.settings.s3_bucket},
    ) as stack:
        settings, producer = stack.settings, stack.producer
        job_id = producer.submit(pipeline.listing(200, "shop-a"))
        assert producer.status(job_id).state is JobState.QUEUED
        assert producer.cancel(job_id).state is JobState.CANCELED
        assert queue_depth(settings, settings.listing_queue) == 1
        stack.start_workers(Pool("cancel", queues=("listing", "callbacks")))
        worker = stack.workers["cancel"]
        assert pipeline.receiver.wait_for(
            lambda got: any(
                r.event and r.event.type is JobEventType.CANCELED and r.event.data["job_id"] == job_id
                for r in got
            ),
            CALLBACK_TIMEOUT_S,
        )
        deadline = time.monotonic() + 30
        while f"job {job_id} is canceled: message dropped" not in worker.log_text():
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.25)
        time.sleep(1.0)
        stack.stop_worker("cancel")
        record = producer.status(job_id)
        assert (record.state, record.attempts, record.results, record.started_at) == (
            JobState.CANCELED,
            0,
            [],
            None,
        )
        assert pipeline.images.list_keys(f"listing/{job_id}/") == []
        assert queue_depth(settings, settings.listing_queue) == 0
        events = Counter(r.event.type.value for r in pipeline.posts_for(job_id) if r.event)
        assert events == {"job.queued": 1, "job.canceled": 1}
        (canceled,) = [
            r for r in pipeline.posts_for(job_id) if r.event and r.event.type is JobEventType.CANCELED
        ]
        assert verify(canceled.body, canceled.headers, SHOP_A_SECRET).data["state"] == "canceled"


def test_the_same_seed_and_request_give_byte_identical_images(pipeline: Pipeline) -> None:
    listing = pipeline.listing(300, "shop-c", seed=777, variants=3, output={"format": "webp", "size": 96})
    tryon = pipeline.tryon(
        301, "shop-c", {"source": "attributes", "category": "coat", "colour": "green"}, seed=31
    )
    jobs = [pipeline.producer.submit(r) for r in (listing, listing, tryon, tryon)]
    assert len(set(jobs)) == 4
    records = pipeline.wait(jobs)
    images = {job_id: [pipeline.images.get_bytes(i.key) for i in records[job_id].results] for job_id in jobs}
    assert images[jobs[0]] == images[jobs[1]] and len(images[jobs[0]]) == 3
    assert images[jobs[2]] == images[jobs[3]] and len(images[jobs[2]]) == 1
    assert len(set(images[jobs[0]])) == 3  # variants differ: seed + i


def test_a_tryon_of_a_listing_job_that_does_not_exist_fails_with_the_reason_and_a_failed_callback(
    pipeline: Pipeline,
) -> None:
    missing = "e" * 32
    job_id = pipeline.producer.submit(pipeline.tryon(400, "shop-a", {"source": "listing", "job_id": missing}))
    record = pipeline.wait([job_id])[job_id]
    assert record.state is JobState.FAILED and record.error is not None
    assert (record.error.code, record.error.retryable) == ("garment_not_found", False)
    assert missing in record.error.message and record.results == []
    assert pipeline.receiver.wait_for(
        lambda got: len([r for r in got if r.event and r.event.data["job_id"] == job_id]) >= 3,
        CALLBACK_TIMEOUT_S,
    )
    posts = {r.event.type.value: r for r in pipeline.posts_for(job_id) if r.event}
    assert set(posts) == {"job.queued", "job.started", "job.failed"}
    failed = verify(posts["job.failed"].body, posts["job.failed"].headers, SHOP_A_SECRET)
    assert failed.data["state"] == "failed" and failed.data["error"]["code"] == "garment_not_found"
