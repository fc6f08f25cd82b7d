"""The story of a remake: a reviewer rejected one image of a listing job awaiting review and asked
for another (``POST /v1/review/decisions`` with ``regenerate``), and the API published
``REGENERATE_TASK(job_id, variant, regeneration)``. ``worker/tasks.py`` calls :func:`regenerate`.

- **Still wanted?** The job must still await review and the variant still wait for this remake
  (review ``regenerating``, ``regenerations`` equal to the message's); otherwise the message is a
  duplicate or stale (the job was canceled, the remake already landed) and is dropped.
- **Seed**: derived from the job's seed, the variant and the remake number
  (``core.jobs.review.regenerated_seed``), with the model version that made the other images:
  the same decisions on the same request make the same images.
- **Store** at the variant's key: the rejected image is overwritten, nothing is left behind.
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

from core.contracts.jobs import EVENT_FOR_STATE, ImageDecision, ImageReview, JobKind, JobState, StoredImage
from core.contracts.v1 import CallbackSpec, ListingImageRequest
from core.errors import ErrorCode
from core.jobs.review import ReviewChange, image_of, regenerated_seed
from worker import metrics, pipeline
from worker.boundaries import JobRecords
from worker.context import WorkerContext
from worker.encoding import encode
from worker.storage import image_key

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
        remade = _remake(job_id, req, variant, regeneration, record.seed, record.model_version, ctx)
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
    job_seed: int | None,
    model_version: str | None,
    ctx: WorkerContext,
) -> StoredImage:
    """Generate, encode and store the remade image; the stored image (no review yet)."""
    seed = regenerated_seed(pipeline.job_seed(job_seed, job_id), variant, regeneration)
    attributes = req.attributes
    with metrics.stage(JobKind.LISTING, "inference"):
        generated = ctx.inference.generate_products(
            [attributes.category_index], [attributes.colour_index], [seed], version=model_version
        )
    with metrics.stage(JobKind.LISTING, "encode"):
        data, content_type = encode(generated.images[0], req.output.format, req.output.size)
    metadata = {
        **pipeline.listing_metadata(job_id, req, generated),
        "variant": variant,
        "seed": seed,
        "regeneration": regeneration,
    }
    key = image_key(JobKind.LISTING, job_id, variant, req.output.format)
    with metrics.stage(JobKind.LISTING, "upload"):
        return ctx.bucket().put_image(key, data, content_type, metadata, variant=variant)


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
