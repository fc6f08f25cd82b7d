"""What the routes take from the app: the producer (the same core as the Python client) and
the presigner, as FastAPI dependencies, so a test builds the app against real services. They are
``async``, though they wait for nothing: FastAPI runs a plain ``def`` dependency in its thread
pool, a hop each request would pay for a mere attribute read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from api.presign import Presigner
from api.problems import FieldError, ProblemError
from api.routes.resources import Job, Output
from core.contracts.jobs import JobRecord
from core.jobs import InvalidCursor
from producer.client import Producer


async def producer(request: Request) -> Producer:
    submitter: Producer = request.app.state.producer
    return submitter


async def presigner(request: Request) -> Presigner:
    signer: Presigner = request.app.state.presigner
    return signer


#: the ``cursor`` query parameter of a paged listing
CursorQuery = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


def cursor_problem(error: InvalidCursor) -> ProblemError:
    """422 naming the ``cursor`` query parameter: a cursor this listing did not hand out."""
    return ProblemError(
        422,
        "Unprocessable Content",
        error.message,
        kind="validation",
        errors=[FieldError(loc=["query", "cursor"], type="invalid_cursor", msg=error.message)],
    )


def not_found(job_id: str) -> ProblemError:
    """The answer for a job that does not exist *or belongs to another requester*: the two are
    indistinguishable to the caller (404, never 403), so ids of other tenants leak nothing."""
    return ProblemError(404, "Not Found", "no such job for this key", kind="job-not-found")


def own_record(submitter: Producer, requester: str, job_id: str) -> JobRecord:
    """The job's record if it belongs to ``requester``; 404 problem otherwise."""
    record = submitter.store.get(job_id) if len(job_id) <= 64 else None
    if record is None or record.requester != requester:
        raise not_found(job_id)
    return record


def job_resource(record: JobRecord, signer: Presigner) -> Job:
    """``record`` as the caller sees it, with each output link signed now."""
    outputs = [
        Output(
            variant=signed.variant,
            content_type=signed.content_type,
            url=signed.url,
            url_expires_at=signed.url_expires_at,
        )
        for signed in (signer.sign(image) for image in record.catalog_images())
    ]
    return Job(
        id=record.job_id,
        kind=record.kind,
        state=record.state,
        requester=record.requester,
        subject=record.subject,
        created_at=record.created_at,
        updated_at=record.updated_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        cancel_requested_at=record.cancel_requested_at,
        attempts=record.attempts,
        model=record.model,
        model_version=record.model_version,
        seed=record.seed,
        idempotency_key=record.idempotency_key,
        error=record.error,
        outputs=outputs,
    )
