"""The story of a job, as plain functions (no Celery): load, start, infer, encode, store, record,
notify. ``worker/tasks.py`` calls them; the unit tests call them with ``worker.stubs``.

- **Start** (:func:`start`): ``queued -> running`` happens once. A message for a job that is
  not queued is dropped, except a redelivery or retry of a running job, which counts another
  attempt; a canceled or finished job gets its final callback queued again (the callback task
  sends each event once) and the message is dropped. Both paths first queue any earlier event
  whose message a broker outage lost (:func:`catch_up`).
- **Lease**: starting an attempt takes the job's lease for the hard time limit plus
  ``sweep_grace_s``, in the same write as its transition (``start_attempt``); a ``running`` job
  without one has no live worker (``worker/sweeper.py``).
- **Conditions**: the request's category, colour and pattern are mapped to the indexes of the
  manifest of the version the job runs at (``worker.model_versions.job_manifest``), and that
  concrete version is what Triton is asked for. A condition that version does not know (its
  default changed between submit and run) fails the job ``unknown_condition``, naming the version:
  never a wrong image.
- **Seeds**: the request's seed, else one derived from the job id, so a redelivered job makes
  the same images; variant ``i`` uses ``seed + i``. All variants go to Triton in one call.
- **Store**: one object per variant at ``{kind}/{job_id}/{variant}.{ext}``, so a redelivery
  overwrites and never duplicates; metadata says which job, model, version and seed made it.
- **Record**: one transition to ``succeeded`` with the results (presigned links), model,
  version and seed, then the ``job.succeeded`` callback is queued; or, when the requester's
  review policy asks people to look (``core.jobs.review.held_for_review``), to
  ``awaiting_review`` with each image's review set, and ``job.review_required``.
- **Failures** (:func:`failures`): a ``RetryableError`` retries the job after a capped
  exponential backoff with jitter (:class:`RetryLater`, which the task turns into a Celery
  retry) until ``job_retry_attempts`` attempts are used; then, or at once for any other
  error, the job ends ``failed`` with its ``JobError`` and a ``job.failed`` callback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from billiard.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError

from core.contracts.conditions import (
    ProductConditions,
    listing_conditions,
    tryon_conditions,
    wearable_category,
)
from core.contracts.jobs import (
    EVENT_FOR_STATE,
    GateReport,
    JobEventType,
    JobKind,
    JobRecord,
    JobState,
    ReviewPolicy,
    StoredImage,
)
from core.contracts.v1 import (
    CallbackSpec,
    GarmentByAttributes,
    GarmentFromListing,
    ListingImageRequest,
    OutputSpec,
    TryOnRequest,
)
from core.errors import AtelierError, ErrorCode, PermanentError, RetryableError, as_atelier_error
from core.jobs.machine import cancel_pending, utcnow
from core.jobs.review import OPEN_STATUSES, held_for_review, status_of
from serving_contract.manifest import ModelManifest
from serving_contract.tensors import PRODUCT_GENERATOR, PRODUCT_IMAGE_SIZE, QUALITY_JUDGE, TRYON_GENERATOR
from worker import metrics
from worker.boundaries import Images
from worker.context import WorkerContext
from worker.encoding import decode, encode
from worker.gating import Asked, asked_for, gate_listing
from worker.inference import Generated
from worker.model_versions import job_manifest, registry
from worker.storage import image_key

log = logging.getLogger(__name__)

#: seeds stay below this (Triton's SEED is int64); ``seed + i`` wraps around it
SEED_LIMIT = 2**63
#: images per try-on job (the request has no ``variants`` field)
TRYON_VARIANTS = 1
#: the style dict is stored as object metadata only up to this many bytes of JSON (S3 caps all
#: user metadata at 2 KB); larger ones stay in the job's stored request
MAX_STYLE_METADATA_BYTES = 1024

Request = ListingImageRequest | TryOnRequest
R = TypeVar("R", ListingImageRequest, TryOnRequest)


class RetryLater(Exception):
    """Run this job's message again after ``countdown`` seconds (raised to the task)."""

    def __init__(self, error: AtelierError, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.1f} s: {error}")
        self.error = error
        self.countdown = countdown


@dataclass(frozen=True)
class Garment:
    """What the try-on model dresses the body in: a product image and its category."""

    image: np.ndarray  #: uint8 [32, 32, 3]
    category: int
    metadata: dict[str, Any]


# --- the two jobs ---


def run_listing(
    job_id: str, request: Mapping[str, Any], ctx: WorkerContext, *, redelivered: bool = False
) -> None:
    """Product images for a listing: one batched ``product_cgan`` call for all variants, judged
    by the quality gate, failing variants generated again (``worker.gating``).

    ``redelivered``: the broker delivered this message before (a worker was lost) or it is a
    retry; a running job then counts another attempt instead of being dropped as a duplicate.
    """
    req = load(job_id, request, ListingImageRequest, ctx)
    if req is None or not start(job_id, req, ctx, redelivered=redelivered):
        return
    with failures(job_id, req, ctx):
        seed = job_seed(req.seed, job_id)
        seeds = variant_seeds(seed, req.variants)
        product, made = product_conditions(ctx, req, req.model_version)
        with metrics.stage(JobKind.LISTING, "inference"):
            generated = make_products(ctx, made, seeds, product.version)
        reports: Sequence[GateReport | None] = [None] * len(seeds)
        if ctx.gate is not None:
            gated = gate_listing(
                ctx.inference, ctx.gate, req, generated, seeds, judged_as(ctx, product, made)
            )
            generated, seeds, reports = gated.generated, gated.seeds, gated.reports
        metadata = listing_metadata(job_id, req, generated, made)
        stored = store_images(
            ctx, JobKind.LISTING, job_id, generated.images, seeds, req.output, metadata, reports=reports
        )
        succeed(job_id, req, ctx, generated, seed, stored)


def run_tryon(
    job_id: str, request: Mapping[str, Any], ctx: WorkerContext, *, redelivered: bool = False
) -> None:
    """A try-on image: the garment (a stored listing image, or generated from category and
    colour first), the body's measurements and the size, in one ``tryon_cvae`` call."""
    req = load(job_id, request, TryOnRequest, ctx)
    if req is None or not start(job_id, req, ctx, redelivered=redelivered):
        return
    with failures(job_id, req, ctx):
        seed = job_seed(req.seed, job_id)
        seeds = variant_seeds(seed, TRYON_VARIANTS)
        tryon = job_manifest(ctx, TRYON_GENERATOR.name, req.model_version, ctx.settings.tryon_model_version)
        size = tryon_conditions(req, tryon, product=None).size
        garment = load_garment(req, seed, ctx, tryon)
        if stopped_for_cancel(job_id, req, ctx):
            return
        n = len(seeds)
        with metrics.stage(JobKind.TRYON, "inference"):
            generated = ctx.inference.generate_tryon(
                [list(req.measurements.metric().values())] * n,
                [size] * n,
                [garment.category] * n,
                np.stack([garment.image] * n),
                seeds,
                version=tryon.version,
            )
        metadata = tryon_metadata(job_id, req, generated, garment)
        stored = store_images(ctx, JobKind.TRYON, job_id, generated.images, seeds, req.output, metadata)
        succeed(job_id, req, ctx, generated, seed, stored)


# --- the steps ---


def load(job_id: str, request: Mapping[str, Any], model: type[R], ctx: WorkerContext) -> R | None:
    """The message's request, validated; ``None`` after failing the job when it does not validate."""
    try:
        return model.model_validate(request)
    except ValidationError as error:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors())
        failure = PermanentError(ErrorCode.INVALID_REQUEST, f"the request does not validate ({fields})")
        fail(job_id, callback_of(request), ctx, failure)
        return None


def start(job_id: str, req: Request, ctx: WorkerContext, *, redelivered: bool) -> bool:
    """Move the job to ``running`` for this attempt; ``False``: drop the message."""
    store = ctx.store
    if store.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=lease_s(ctx)):
        metrics.job_started(req.kind)
        # the producer queues job.queued right after its publish; a broker lost in between lost it
        catch_up(ctx, job_id, req.callback, [JobEventType.QUEUED])
        notify(ctx, job_id, req.callback, JobEventType.STARTED)
        _log(logging.INFO, job_id, "started", attempt=1)
        return True
    record = store.get(job_id)
    if record is None:
        _log(logging.WARNING, job_id, "has no record (expired or never created): message dropped")
        return False
    if record.state.terminal or record.state is JobState.AWAITING_REVIEW:
        # canceled before it ran, or an earlier delivery finished it (or left it to people):
        # make sure its callbacks are queued (each is sent once, whoever queues it), and do no work
        _log(logging.INFO, job_id, f"is {record.state.value}: message dropped")
        earlier = events_before(record.started_at is not None)
        if record.state in (JobState.APPROVED, JobState.REJECTED):
            earlier.append(JobEventType.REVIEW_REQUIRED)
        catch_up(ctx, job_id, req.callback, earlier)
        notify(ctx, job_id, req.callback, EVENT_FOR_STATE[record.state])
        return False
    if cancel_pending(record):
        stop_canceled(job_id, req, ctx)
        return False
    if record.state is JobState.RUNNING and redelivered:
        # the attempt before may have died between its start and queuing job.started (a broker
        # connection lost there terminates the task): queue what was not
        catch_up(ctx, job_id, req.callback, events_before(started=True))
        if record.attempts >= ctx.settings.job_retry_attempts:
            failure = RetryableError(
                ErrorCode.ATTEMPTS_EXHAUSTED, f"the job's message came back after {record.attempts} attempts"
            )
            fail(job_id, req.callback, ctx, failure)
            return False
        if store.start_attempt(job_id, only_from=JobState.RUNNING, lease_s=lease_s(ctx)):
            _log(logging.INFO, job_id, "runs again", attempt=record.attempts + 1)
            return True
    _log(logging.INFO, job_id, f"is {record.state.value} elsewhere: duplicate message dropped")
    return False


def take_lease(job_id: str, ctx: WorkerContext, *, wait_s: float = 0.0) -> None:
    """Hold the job's lease for as long as this attempt may live (:func:`lease_s`): until it
    expires, ``worker/sweeper.py`` leaves the running job alone. A start takes it in the same
    write as its transition (``start_attempt``)."""
    ctx.store.take_lease(job_id, lease_s(ctx, wait_s=wait_s))


def lease_s(ctx: WorkerContext, *, wait_s: float = 0.0) -> float:
    """How long an attempt may live: ``wait_s`` (a retry's countdown) plus the hard time limit
    and the sweeper's grace."""
    settings = ctx.settings
    return wait_s + settings.task_time_limit_s + settings.sweep_grace_s


def job_seed(seed: int | None, job_id: str) -> int:
    """The request's seed, or one derived from the job id (the same on every redelivery)."""
    if seed is not None:
        return seed
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big") >> 2


def variant_seeds(seed: int, count: int) -> list[int]:
    """``seed + i`` for each variant ``i`` (wrapping below ``SEED_LIMIT``)."""
    return [(seed + i) % SEED_LIMIT for i in range(count)]


def product_conditions(
    ctx: WorkerContext, attributes: ListingImageRequest | GarmentByAttributes, version: int | None
) -> tuple[ModelManifest, ProductConditions]:
    """The product model version a listing (or a garment by attributes) runs at, and its
    conditions as that version's indexes; ``ConditionRefused`` (``unknown_condition``) or
    ``UnknownVersion`` (``model_version_not_found``), both permanent, when it cannot run there."""
    product = job_manifest(ctx, PRODUCT_GENERATOR.name, version, ctx.settings.product_model_version)
    if isinstance(attributes, ListingImageRequest):
        return product, listing_conditions(attributes.attributes, product)
    return product, listing_conditions(attributes, product, at=("garment",))


def make_products(
    ctx: WorkerContext, made: ProductConditions, seeds: Sequence[int], version: int
) -> Generated:
    """One product image per seed of ``made`` by ``version`` (with ``PATTERN`` when it has patterns)."""
    n = len(seeds)
    patterns = {} if made.pattern is None else {"patterns": [made.pattern] * n}
    return ctx.inference.generate_products(
        [made.category] * n, [made.colour] * n, seeds, version=version, **patterns
    )


def judged_as(ctx: WorkerContext, product: ModelManifest, made: ProductConditions) -> Asked:
    """What the gate compares a listing's images with: the judge's vocabulary (its latest
    registered version's manifest) and the product version's colour (``worker.gating``)."""
    return asked_for(made, product, registry(ctx).resolve(QUALITY_JUDGE.name, None))


def load_garment(req: TryOnRequest, seed: int, ctx: WorkerContext, tryon: ModelManifest) -> Garment:
    """The garment as a 32x32 product image: generated from attributes (by the product model's
    version a request pinning none runs at), or a stored listing's; its category as ``tryon``'s
    index (a wearable category of that try-on version, else ``unknown_condition``)."""
    garment = req.garment
    if isinstance(garment, GarmentByAttributes):
        category = wearable_category(garment.category, tryon, at=("garment", "category"))
        product, made = product_conditions(ctx, garment, None)
        generated = make_products(ctx, made, [seed], product.version)
        metadata = {
            "source": "attributes",
            "category": garment.category,
            "colour": made.colour_name,
            **({} if made.pattern_name is None else {"pattern": made.pattern_name}),
            "model": generated.model,
            "model_version": generated.version,
            "seed": seed,
        }
        return Garment(generated.images[0], category, metadata)
    return garment_from_listing(garment, ctx, tryon)


def garment_from_listing(garment: GarmentFromListing, ctx: WorkerContext, tryon: ModelManifest) -> Garment:
    """A variant of a succeeded listing job, read back from S3 and shrunk to the model's size."""
    listing = ctx.store.get(garment.job_id)
    stored = ctx.store.get_request(garment.job_id)
    if listing is None or stored is None or listing.kind is not JobKind.LISTING:
        raise PermanentError(ErrorCode.GARMENT_NOT_FOUND, f"there is no listing job {garment.job_id}")
    if not listing.state.terminal:
        raise RetryableError(
            ErrorCode.GARMENT_NOT_READY, f"listing job {garment.job_id} is still {listing.state.value}"
        )
    if listing.state is not JobState.SUCCEEDED:
        raise PermanentError(
            ErrorCode.GARMENT_NOT_FOUND,
            f"listing job {garment.job_id} ended {listing.state.value}, without images",
        )
    slug = ListingImageRequest.model_validate(stored).attributes.category
    try:
        category = wearable_category(slug, tryon, at=("garment", "job_id"))
    except PermanentError as refused:
        raise PermanentError(
            ErrorCode.GARMENT_NOT_WEARABLE,
            f"listing job {garment.job_id} shows a {slug}, which {tryon.model} v{tryon.version} cannot "
            f"dress a body in ({refused.message.split('; ', 1)[-1]})",
        ) from None
    data = ctx.bucket().get_listing_image(garment.job_id, garment.variant)
    try:
        image = decode(data, size=PRODUCT_IMAGE_SIZE)
    except ValueError as error:
        raise PermanentError(ErrorCode.GARMENT_NOT_FOUND, f"listing job {garment.job_id}: {error}") from None
    metadata = {"source": "listing", "job_id": garment.job_id, "variant": garment.variant}
    return Garment(image, category, metadata)


def store_images(
    ctx: WorkerContext,
    kind: JobKind,
    job_id: str,
    images: np.ndarray,
    seeds: Sequence[int],
    output: OutputSpec,
    metadata: Mapping[str, Any],
    *,
    reports: Sequence[GateReport | None] | None = None,
) -> list[StoredImage]:
    """Encode each variant and write it at its deterministic key, with its seed (and the gate's
    verdict, when it ran: ``reports``) in the metadata and on the stored image.

    The puts run on the process's upload threads (``ctx.uploads``) while the next variant is
    encoded, or in this thread when the process has none (several jobs in flight fill each
    other's waits); the first failed put raises its typed error here, like a sequential one."""
    bucket = ctx.bucket()
    uploads: list[Future[StoredImage] | StoredImage] = []
    reports = reports if reports is not None else [None] * len(seeds)
    for variant, (image, seed, report) in enumerate(zip(images, seeds, reports, strict=True)):
        with metrics.stage(kind, "encode"):
            data, content_type = encode(image, output.format, output.size)
        key = image_key(kind, job_id, variant, output.format)
        details = {**metadata, "variant": variant, "seed": seed, **gate_metadata(report)}
        put = (bucket, kind, key, data, content_type, details, variant)
        uploads.append(_put(*put) if ctx.uploads is None else ctx.uploads.submit(_put, *put))
    stored = [upload if isinstance(upload, StoredImage) else upload.result() for upload in uploads]
    return [image.model_copy(update={"gate": report}) for image, report in zip(stored, reports, strict=True)]


def gate_metadata(report: GateReport | None) -> dict[str, Any]:
    """The gate's verdict as object metadata: passed or the failed checks, scores, tries."""
    if report is None:
        return {}
    failed = [check.name for check in report.checks if not check.passed]
    scores = ",".join(f"{check.name}={check.score:.4g}" for check in report.checks)
    return {
        "gate": "passed" if report.passed else "failed:" + "+".join(failed),
        "gate_scores": scores,
        "gate_tries": report.tries,
    }


def _put(
    bucket: Images,
    kind: JobKind,
    key: str,
    data: bytes,
    content_type: str,
    details: dict[str, Any],
    variant: int,
) -> StoredImage:
    with metrics.stage(kind, "upload"):
        return bucket.put_image(key, data, content_type, details, variant=variant)


def listing_metadata(
    job_id: str, req: ListingImageRequest, generated: Generated, made: ProductConditions
) -> dict[str, Any]:
    """Object metadata of a listing image (the variant and seed are added per image): the
    conditions as the version made them (a ``#rrggbb`` as its colour, the pattern it defaulted to)."""
    metadata: dict[str, Any] = {
        "job_id": job_id,
        "kind": JobKind.LISTING.value,
        "requester": req.requester,
        "listing_id": req.listing_id,
        "model": generated.model,
        "model_version": generated.version,
        "category": req.attributes.category,
        "colour": made.colour_name,
    }
    if made.pattern_name is not None:
        metadata["pattern"] = made.pattern_name
    style = req.attributes.style
    if style:
        small = len(json.dumps(style, ensure_ascii=True)) <= MAX_STYLE_METADATA_BYTES
        metadata["style"] = style if small else "omitted (over 1 KB): see the job's request"
    return metadata


def tryon_metadata(job_id: str, req: TryOnRequest, generated: Generated, garment: Garment) -> dict[str, Any]:
    """Object metadata of a try-on image; the body's measurements stay in the request only."""
    return {
        "job_id": job_id,
        "kind": JobKind.TRYON.value,
        "requester": req.requester,
        "shopper_ref": req.shopper_ref,
        "model": generated.model,
        "model_version": generated.version,
        "size": req.size,
        "garment": garment.metadata,
    }


def succeed(
    job_id: str,
    req: Request,
    ctx: WorkerContext,
    generated: Generated,
    seed: int,
    stored: list[StoredImage],
    *,
    policy: ReviewPolicy | None = None,
) -> None:
    """Record the results and the model that made them in one transition; notify. The job ends
    ``succeeded``, or awaits people (``awaiting_review``) when its requester's review policy
    (``policy``, else its record's, :func:`review_policy`) and its images' gate reports say so
    (``core.jobs.review.held_for_review``). A cancel asked while the job ran wins: the write
    refuses it, and the job ends ``canceled`` instead, without its objects.

    This write is also the job's cancel check before its end: a listing job's steps run in
    well under a second, and a read before the upload cost every job a round trip to Redis to
    spare a rare canceled one its puts (their objects are removed all the same)."""
    if policy is None:
        policy = review_policy(job_id, ctx)
    images, held = held_for_review(JobKind(req.kind), policy, stored, now=utcnow())
    if not held and stored and all(image.gate is not None and not image.gate.passed for image in stored):
        gate_failed(job_id, req, ctx, stored)
        return
    state = JobState.AWAITING_REVIEW if held else JobState.SUCCEEDED
    done = ctx.store.transition_record(
        job_id,
        state,
        only_if=lambda record: record.cancel_requested_at is None,
        results=images,
        model=generated.model,
        model_version=generated.version,
        seed=seed,
    )
    if done is None:
        if stopped_for_cancel(job_id, req, ctx):
            return
        _log(logging.WARNING, job_id, "left running while it ran: results not recorded")
        return
    if held:
        pending = sum(status_of(image) in OPEN_STATUSES for image in images)
        what = f"awaits review ({policy.value}): {pending} of {len(images)} images pending"
        _log(logging.INFO, job_id, what, model=generated.model)
    else:
        _log(logging.INFO, job_id, f"succeeded: {len(stored)} images", model=generated.model)
        metrics.job_finished(ctx.store, job_id, done)
    notify(ctx, job_id, req.callback, EVENT_FOR_STATE[state])


def review_policy(job_id: str, ctx: WorkerContext) -> ReviewPolicy:
    """The job's review policy: written when the job was created and never changed, so the
    record this thread last saw (its start's write, ``JobStore.recent``) tells it without a read."""
    record = ctx.store.recent(job_id) or ctx.store.get(job_id)
    return record.review_policy if record is not None else ReviewPolicy.AUTO


def gate_failed(job_id: str, req: Request, ctx: WorkerContext, stored: Sequence[StoredImage]) -> None:
    """No variant passed the gate and nobody reviews: the job fails, keeping none of its images."""
    tries = max(image.gate.tries for image in stored if image.gate is not None)
    failed = sorted({c.name for i in stored if i.gate is not None for c in i.gate.checks if not c.passed})
    ctx.bucket().remove_job_images(req.kind, job_id)
    message = f"no variant passed the quality gate in {tries} tries (failed: {', '.join(failed)})"
    fail(job_id, req.callback, ctx, PermanentError(ErrorCode.QUALITY_GATE_FAILED, message))


def stopped_for_cancel(job_id: str, req: Request, ctx: WorkerContext) -> bool:
    """Whether the requester asked to cancel the job while it ran; if so, it is ended
    ``canceled`` (:func:`stop_canceled`) and the caller stops before its next step."""
    return _stopped(job_id, req, ctx, ctx.store.get(job_id))


def _stopped(job_id: str, req: Request, ctx: WorkerContext, record: JobRecord | None) -> bool:
    if record is None or not cancel_pending(record):
        return False
    stop_canceled(job_id, req, ctx)
    return True


def stop_canceled(job_id: str, req: Request, ctx: WorkerContext) -> None:
    """End a running job whose cancel was asked: delete every object it stored first (a failed
    delete raises and the job's retry tries again), then ``canceled``, then its callback."""
    removed = ctx.bucket().remove_job_images(req.kind, job_id)
    canceled = ctx.store.transition_record(job_id, JobState.CANCELED, only_from=[JobState.RUNNING])
    if canceled is not None:
        _log(logging.INFO, job_id, f"canceled while running ({removed} stored objects removed)")
        metrics.job_finished(ctx.store, job_id, canceled)
        notify(ctx, job_id, req.callback, JobEventType.CANCELED)


def fail(job_id: str, callback: CallbackSpec | None, ctx: WorkerContext, failure: AtelierError) -> None:
    """End the job ``failed`` with ``failure`` as its error; notify."""
    failed = ctx.store.transition_record(job_id, JobState.FAILED, error=failure.to_job_error())
    if failed is not None:
        _log(logging.WARNING, job_id, f"failed: {failure}")
        metrics.job_finished(ctx.store, job_id, failed)
        notify(ctx, job_id, callback, JobEventType.FAILED)
    else:
        _log(logging.WARNING, job_id, f"not failed with {failure.code}: it had already ended")


def notify(ctx: WorkerContext, job_id: str, callback: CallbackSpec | None, event: JobEventType) -> None:
    """Queue the ``event`` callback if the request subscribed to it."""
    if subscribed(callback, event):
        ctx.notify(job_id, event)


def events_before(started: bool) -> list[JobEventType]:
    """The events a job has passed before its current state: queued, and started if it ran."""
    return [JobEventType.QUEUED, JobEventType.STARTED] if started else [JobEventType.QUEUED]


def catch_up(
    ctx: WorkerContext, job_id: str, callback: CallbackSpec | None, events: Sequence[JobEventType]
) -> None:
    """Queue each subscribed event of ``events`` that no callback task has claimed: its message
    was lost (a broker outage between the state change and the publish). A message still on
    its way makes a duplicate, which the callback task drops (``JobStore.claim_event``)."""
    for event in events:
        if subscribed(callback, event) and not ctx.store.event_claimed(job_id, event):
            ctx.notify(job_id, event)


def subscribed(callback: CallbackSpec | None, event: JobEventType) -> bool:
    return callback is not None and event in callback.events


@contextmanager
def failures(job_id: str, req: Request, ctx: WorkerContext) -> Iterator[None]:
    """Turn whatever the block raises into a retry (:class:`RetryLater`) or a failed job."""
    try:
        yield
    except Exception as error:
        failure = job_failure(error)
        if failure.code is ErrorCode.INTERNAL_ERROR:
            log.exception("job %s: unexpected error", job_id, extra={"job_id": job_id})
        record = ctx.store.get(job_id)
        attempts = record.attempts if record is not None else 1
        settings = ctx.settings
        if failure.retryable:
            if attempts < settings.job_retry_attempts:
                delay = backoff_delay(
                    attempts, settings.job_retry_backoff_base_s, settings.job_retry_backoff_max_s
                )
                _log(logging.WARNING, job_id, f"will retry in {delay:.1f} s: {failure}", attempt=attempts)
                take_lease(job_id, ctx, wait_s=delay)  # the retry is not stuck while it waits
                metrics.job_retried(req.kind, failure.code)
                raise RetryLater(failure, delay) from error
            failure = RetryableError(failure.code, f"{failure.message} (gave up after {attempts} attempts)")
        fail(job_id, req.callback, ctx, failure)


def job_failure(error: BaseException) -> AtelierError:
    """What ``error`` means for the job: Celery's soft time limit is ``job_time_limit``
    (permanent: a retry would run as long), also when it landed inside a boundary's call and
    that boundary raised its own typed error from it; anything else as ``core.errors`` types it."""
    if any(isinstance(e, SoftTimeLimitExceeded) for e in _causes(error)):
        return PermanentError(ErrorCode.JOB_TIME_LIMIT, "the job ran past the task's soft time limit")
    return as_atelier_error(error)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the exceptions it was raised from or while handling, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def backoff_delay(
    attempt: int, base_s: float, max_s: float, *, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before attempt ``attempt + 1``: ``base * 2**(attempt - 1)`` capped at ``max_s``,
    of which the upper half is random (jitter spreads retries of many jobs apart)."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


def callback_of(request: Mapping[str, Any]) -> CallbackSpec | None:
    """The callback part of a request that does not validate as a whole, if that part does."""
    try:
        return CallbackSpec.model_validate(request.get("callback"))
    except ValidationError:
        return None


def _log(level: int, job_id: str, what: str, **extra: Any) -> None:
    log.log(level, "job %s %s", job_id, what, extra={"job_id": job_id, **extra})
