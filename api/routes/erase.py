"""``DELETE /v1/tryons/{id}``: erase a shopper's try-on, its measurements and its images.

Answered 204 once the data is gone: the objects in S3 first (everything under the job's prefix
and every image the record names, ``api.storage``), then the job in Redis in one script
(``JobStore.erase``: the record and the request holding the measurements, the event stream,
lease, index entries and the idempotency key). Objects go first so that a failure (503, retry)
never leaves images without the record that names them; a second DELETE after a 204 is 404.

A queued job is canceled first (it never starts; no ``job.canceled`` callback is sent for a
job being erased). A running job is answered 409 with ``Retry-After`` until it ends: erasing
under a running worker could leave the images it stores next (cancel it first: its worker stops
it at its next step, keeping none of its objects; then erase). Erasure needs the ``cancel``
scope (the same power over a job's life; no new scope for keys to carry); another requester's
job, or a listing job, is 404.

The broker copy of a queued job's message cannot be removed from a RabbitMQ queue; a worker
taking it finds no record and drops it unread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from api.auth import require
from api.keys.model import ApiKey, Scope
from api.problems import ProblemError, problem_responses
from api.routes.deps import not_found, own_record, producer
from api.storage import ObjectEraser, StorageUnavailable
from core.contracts.jobs import JobKind, JobState
from core.jobs import JobNotFound
from producer.client import Producer

router = APIRouter(prefix="/v1/tryons", tags=["erasure"])

#: Retry-After (seconds) of a 409 for a try-on that is still running
RUNNING_RETRY_AFTER_S = 5


def object_eraser(request: Request) -> ObjectEraser:
    eraser: ObjectEraser = request.app.state.eraser
    return eraser


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "the try-on's record, measurements and images are gone"},
        **problem_responses(401, 403, 404, 409, 422, 503),
    },
    summary="Erase a try-on: its measurements and images",
)
def erase_tryon(
    job_id: Annotated[str, Path(max_length=64, description="the try-on's job id")],
    key: ApiKey = Depends(require(Scope.CANCEL)),  # noqa: B008
    submitter: Producer = Depends(producer),  # noqa: B008
    eraser: ObjectEraser = Depends(object_eraser),  # noqa: B008
) -> Response:
    """Erase the try-on (a queued one is canceled first); 409 while it runs."""
    record = own_record(submitter, key.requester, job_id)
    if record.kind is not JobKind.TRYON:
        raise not_found(job_id)
    if record.state is JobState.QUEUED:
        try:
            record = submitter.store.request_cancel(job_id)
        except JobNotFound:  # erased by a concurrent DELETE
            raise not_found(job_id) from None
    if not record.state.terminal:
        raise ProblemError(
            409,
            "Conflict",
            f"the try-on is {record.state.value}: erase it once it has ended",
            kind="job-running",
            job_id=job_id,
            headers={"Retry-After": str(RUNNING_RETRY_AFTER_S)},
        )
    try:
        eraser.erase_job_objects(record.kind, job_id, record.results)
    except StorageUnavailable:
        raise ProblemError(
            503,
            "Service Unavailable",
            "could not remove the try-on's images; retry",
            headers={"Retry-After": "1"},
        ) from None
    submitter.store.erase(job_id)
    return Response(status_code=204)
