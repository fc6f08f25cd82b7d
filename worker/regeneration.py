"""The story of a remake: a reviewer rejected one image of a listing job awaiting review and asked
for another (``POST /v1/review/decisions`` with ``regenerate``), and the API published
``REGENERATE_TASK(job_id, variant, regeneration)``. ``worker/tasks.py`` calls :func:`regenerate`.

- **Still wanted?** The job must still await review and the variant still wait for this remake
  (review ``regenerating``, ``regenerations`` equal to the message's); otherwise the message is a
  duplicate or stale (the job was canceled, the remake already landed) and is dropped.
- **Seed**: derived from the job's seed, the variant and the remake number
  (``core.jobs.review.regenerated_seed``), with the model version that made the other images:
  the same decisions on the same request make the same images.
- **Gate** (when the worker has one): the new image is judged last beside the job's other kept
  images (pending or approved; :func:`worker.gating.gate_remake`), so the near-duplicate check
  fails it, not them; while it fails it is made again from ``worker.gating.retry_seed`` of its
  seed, up to ``ATELIER_GATE_MAX_TRIES`` generations, and it keeps its report either way (a
  person decides next). The others are judged as the model made them (32 px): each one whose
  gate report records its seed is made again in the same Triton request as the new image (the
  seed contract gives the same pixels at any batch position, docs/determinism.md), which costs
  a few rows of one request where reading them back would cost two S3 calls and a decode each
  and give back an upscaled, maybe lossy copy; only one without a recorded seed (made while the
  gate was off) is read back from S3 and shrunk to 32 px.
- **Store** at the variant's key: the rejected image is overwritten, nothing is left behind; the
  gate's verdict goes in the object metadata (``worker.pipeline.gate_metadata``) and on the image.
- **Record**: the new image in the old one's place, pending again
  (``JobStateMachine.regenerated_image``); the job stays awaiting review, so no callback.
- **Failures**: a retryable one (Triton or S3 unavailable) retries with the jobs' backoff until
  ``job_retry_attempts`` tries; then, or at once for any other, the image stays rejected with
  why (``JobStateMachine.regeneration_failed``), and if that leaves nothing open the review ends
  and its callback is queued.
"""

from __future__ import annotations

import logging
from typing import Protocol, cast

import numpy as np

from core.contracts.jobs import (
    EVENT_FOR_STATE,
    GateReport,
    ImageDecision,
    ImageReview,
    JobKind,
    JobRecord,
    JobState,
    StoredImage,
)
from core.contracts.v1 import CallbackSpec, ListingImageRequest
from core.errors import ErrorCode, PermanentError
from core.jobs.review import ReviewChange, image_of, regenerated_seed, status_of
from serving_contract.tensors import PRODUCT_IMAGE_SIZE
from worker import metrics, pipeline
from worker.boundaries import JobRecords
from worker.context import WorkerContext
from worker.encoding import decode, encode
from worker.gating import gate_remake
from worker.inference import Generated
from worker.storage import image_key

#: review statuses of images that can no longer reach a catalog as they are, so a remake need not
#: differ from them: rejected, or about to be replaced by their own remake
_LEAVING = frozenset({ImageDecision.REJECTED, ImageDecision.REGENERATING})

log = logging.getLogger(__name__)


class ReviewRecords(JobRecords, Protocol):
    """The review writes a remake makes (``core.jobs.machine.JobStateMachine`` offers them)."""

    def regenerated_image(self, job_id: str, image: StoredImage, *, regeneration: int) -> ReviewChange: ...

    def regeneration_failed(
        self, job_id: str, variant: int, *, regeneration: int, why: str
    ) -> ReviewChange: ...


def regenerate(job_id: str, variant: int, regeneration: int, ctx: WorkerContext, *, tries: int = 1) -> None:
    """Make remake ``regeneration`` of ``variant`` and put it up for review again.

    ``tries``: this message's delivery count (1, then 2 on its first retry...), against
    ``job_retry_attempts``. Raises :class:`worker.pipeline.RetryLater` to retry.
    """
    store = cast(ReviewRecords, ctx.store)
    record = store.get(job_id)
    stored_request = store.get_request(job_id)
    image = image_of(record, variant) if record is not None else None
    if (
        record is None
        or record.state is not JobState.AWAITING_REVIEW
        or stored_request is None
        or image is None
        or not _wanted(image, regeneration)
    ):
        _log(job_id, variant, regeneration, "no longer wanted: message dropped")
        return
    try:
        req = ListingImageRequest.model_validate(stored_request)
        remade = _remake(job_id, req, variant, regeneration, record, ctx)
    except Exception as error:
        failure = pipeline.job_failure(error)
        if failure.code is ErrorCode.INTERNAL_ERROR:
            log.exception("job %s: unexpected error in a remake", job_id, extra={"job_id": job_id})
        if failure.retryable and tries < ctx.settings.job_retry_attempts:
            settings = ctx.settings
            delay = pipeline.backoff_delay(
                tries, settings.job_retry_backoff_base_s, settings.job_retry_backoff_max_s
            )
            _log(job_id, variant, regeneration, f"will retry in {delay:.1f} s: {failure}")
            raise pipeline.RetryLater(failure, delay) from error
        callback = pipeline.callback_of(stored_request)
        _give_up(job_id, variant, regeneration, callback, failure.message, ctx, store)
        return
    change = store.regenerated_image(job_id, remade, regeneration=regeneration)
    _log(job_id, variant, regeneration, "pending review again" if change.applied else change.detail)


def _wanted(image: StoredImage, regeneration: int) -> bool:
    review = image.review or ImageReview()
    return review.status is ImageDecision.REGENERATING and review.regenerations == regeneration


def _remake(
    job_id: str,
    req: ListingImageRequest,
    variant: int,
    regeneration: int,
    record: JobRecord,
    ctx: WorkerContext,
) -> StoredImage:
    """Generate (and gate) the remade image, encode and store it; the stored image (no review yet)."""
    seed = regenerated_seed(pipeline.job_seed(record.seed, job_id), variant, regeneration)
    product, made = pipeline.product_conditions(ctx, req, _version(record.model_version))
    report: GateReport | None = None
    if ctx.gate is None:
        generated = _generate(ctx, req, [seed], record.model_version)
    else:
        others = [
            image for image in record.results if image.variant != variant and status_of(image) not in _LEAVING
        ]
        generated, kept = _generate_beside(ctx, job_id, req, others, seed, record.model_version)
        asked = pipeline.judged_as(ctx, product, made)
        gated = gate_remake(ctx.inference, ctx.gate, req, kept, generated, seed, asked)
        generated, seed, report = gated.generated, gated.seeds[0], gated.reports[0]
    with metrics.stage(JobKind.LISTING, "encode"):
        data, content_type = encode(generated.images[0], req.output.format, req.output.size)
    metadata = {
        **pipeline.listing_metadata(job_id, req, generated, made),
        "variant": variant,
        "seed": seed,
        "regeneration": regeneration,
        **pipeline.gate_metadata(report),
    }
    key = image_key(JobKind.LISTING, job_id, variant, req.output.format)
    with metrics.stage(JobKind.LISTING, "upload"):
        stored = ctx.bucket().put_image(key, data, content_type, metadata, variant=variant)
    return stored.model_copy(update={"gate": report})


def _generate(
    ctx: WorkerContext, req: ListingImageRequest, seeds: list[int], version: str | None
) -> Generated:
    """One Triton request: the request's product from each of ``seeds``, with the conditions as
    indexes of ``version``'s manifest (the version that made the job)."""
    product, made = pipeline.product_conditions(ctx, req, _version(version))
    with metrics.stage(JobKind.LISTING, "inference"):
        return pipeline.make_products(ctx, made, seeds, product.version)


def _version(recorded: str | None) -> int | None:
    """The job's recorded model version as a number (``None``: not recorded)."""
    return int(recorded) if recorded and recorded.isdigit() else None


def _generate_beside(
    ctx: WorkerContext,
    job_id: str,
    req: ListingImageRequest,
    others: list[StoredImage],
    seed: int,
    version: str | None,
) -> tuple[Generated, list[np.ndarray]]:
    """The remade image from ``seed``, and ``others`` as the model made them, in variant order:
    made again from their recorded seeds in the same request, else read back from S3 (see the
    module)."""
    seeded = {o.variant: o.gate.seed for o in others if o.gate is not None and o.gate.seed is not None}
    generated = _generate(ctx, req, [*seeded.values(), seed], version)
    made = dict(zip(seeded, generated.images[:-1], strict=True))
    kept = [made[o.variant] if o.variant in made else _read_back(ctx, job_id, o.variant) for o in others]
    return Generated(generated.images[-1:], generated.model, generated.version), kept


def _read_back(ctx: WorkerContext, job_id: str, variant: int) -> np.ndarray:
    """A stored variant shrunk back to the model's size (area average): as close as the object
    allows to what the model made, for an image whose seed is not on record."""
    data = ctx.bucket().get_listing_image(job_id, variant)
    try:
        return decode(data, size=PRODUCT_IMAGE_SIZE)
    except ValueError as error:
        raise PermanentError(
            ErrorCode.OBJECT_NOT_FOUND, f"variant {variant}'s stored image cannot be judged beside: {error}"
        ) from None


def _give_up(
    job_id: str,
    variant: int,
    regeneration: int,
    callback: CallbackSpec | None,
    why: str,
    ctx: WorkerContext,
    store: ReviewRecords,
) -> None:
    """Leave the image rejected with ``why``; queue the review's end callback if it ended."""
    change = store.regeneration_failed(job_id, variant, regeneration=regeneration, why=why)
    _log(job_id, variant, regeneration, f"not made: {why}", level=logging.WARNING)
    written = change.record
    if change.applied and written is not None and written.state.terminal:
        pipeline.notify(ctx, job_id, callback, EVENT_FOR_STATE[written.state])


def _log(job_id: str, variant: int, regeneration: int, what: str, *, level: int = logging.INFO) -> None:
    extra = {"job_id": job_id, "variant": variant, "regeneration": regeneration}
    log.log(level, "job %s variant %d remake %d %s", job_id, variant, regeneration, what, extra=extra)
