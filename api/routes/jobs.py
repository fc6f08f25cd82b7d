"""``GET /v1/jobs/{id}``, ``GET /v1/jobs`` and ``POST /v1/jobs/{id}/cancel``: a requester's
own jobs only. Another requester's job answers 404, exactly as a job that does not exist
(never 403), so a key learns nothing about ids that are not its own.

Reads sign each output link afresh (``api.presign``). Listing pages through the requester's
index newest first with an opaque cursor (``core.jobs.listing``). Cancel goes through
``Producer.cancel``: a queued job is canceled and never starts; a running one is marked and its
worker ends it canceled at its next step, keeping none of its objects (202); a finished one is
left as it is and answered 409 with the reason (``core.jobs.cancel_refusal``).

A publishable key lives in a browser, where anyone can read it, and holds only the try-on and
read scopes: it reads the try-ons it submits, by id (:func:`readable_record`; a listing job is
404 to it), and cannot list (403): a listing would hand every shopper's try-ons of the tenant to
whoever copied the key from the page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from api.auth import require
from api.keys.model import ApiKey, Scope
from api.presign import Presigner
from api.problems import ProblemError, problem_responses
from api.routes.deps import (
    CursorQuery,
    cursor_problem,
    job_resource,
    not_found,
    own_record,
    presigner,
    producer,
)
from api.routes.resources import Job, JobList
from api.settings import ApiSettings
from core.contracts.jobs import JobKind, JobRecord, JobState
from core.contracts.v1 import MAX_IDENTIFIER_CHARS
from core.jobs import InvalidCursor, cancel_pending, cancel_refusal
from producer.client import Producer

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(max_length=64, description="the job id returned by a submit")]


def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def readable_record(submitter: Producer, key: ApiKey, job_id: str) -> JobRecord:
    """The job's record if ``key`` may read it: its requester's and, for a publishable key, a
    try-on (the only kind such a key can submit); 404 problem otherwise."""
    record = own_record(submitter, key.requester, job_id)
    if key.publishable and record.kind is not JobKind.TRYON:
        raise not_found(job_id)
    return record


@router.get("/{job_id}", response_model=Job, responses=problem_responses(401, 403, 404, 422, 503))
def read_job(
    job_id: JobId,
    key: ApiKey = Depends(require(Scope.READ)),  # noqa: B008
    submitter: Producer = Depends(producer),  # noqa: B008
    signer: Presigner = Depends(presigner),  # noqa: B008
) -> Job:
    """The job's state, timestamps, model version, error and outputs (links signed now)."""
    return job_resource(readable_record(submitter, key, job_id), signer)


@router.get("", response_model=JobList, responses=problem_responses(401, 403, 422, 503))
def list_jobs(
    subject: Annotated[
        str | None,
        Query(max_length=MAX_IDENTIFIER_CHARS, description="only jobs for this listing id or shopper"),
    ] = None,
    state: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
    cursor: CursorQuery = None,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="jobs per page (capped by the server)")
    ] = None,
    key: ApiKey = Depends(require(Scope.READ)),  # noqa: B008
    submitter: Producer = Depends(producer),  # noqa: B008
    signer: Presigner = Depends(presigner),  # noqa: B008
    settings: ApiSettings = Depends(_settings),  # noqa: B008
) -> JobList:
    """The key's requester's jobs, newest first, a page at a time (not for a publishable key)."""
    if key.publishable:
        raise ProblemError(
            403,
            "Forbidden",
            "a publishable key reads the try-ons it submits by id; listing jobs needs a secret key",
            kind="publishable-key-cannot-list",
        )
    size = min(limit or settings.api_page_limit_default, settings.api_page_limit_max)
    try:
        page = submitter.list_jobs(key.requester, limit=size, cursor=cursor, subject=subject, state=state)
    except InvalidCursor as error:
        raise cursor_problem(error) from None
    return JobList(jobs=[job_resource(record, signer) for record in page.jobs], next_cursor=page.next_cursor)


@router.post(
    "/{job_id}/cancel",
    response_model=Job,
    responses={
        202: {"model": Job, "description": "the job is running: it ends canceled at its next step"},
        **problem_responses(401, 403, 404, 409, 422, 503),
    },
)
def cancel_job(
    job_id: JobId,
    response: Response,
    key: ApiKey = Depends(require(Scope.CANCEL)),  # noqa: B008
    submitter: Producer = Depends(producer),  # noqa: B008
    signer: Presigner = Depends(presigner),  # noqa: B008
) -> Job:
    """Cancel a job. Queued or awaiting review: canceled now (200). Running: marked, and its
    worker ends it ``canceled`` before its next inference or upload, keeping none of its objects
    (202; follow the job or its events). Finished: 409 with the reason."""
    own_record(submitter, key.requester, job_id)
    record = submitter.cancel(job_id)
    refusal = cancel_refusal(record)
    if refusal is not None:
        raise ProblemError(409, "Conflict", refusal, kind="not-cancelable", job_id=job_id)
    if cancel_pending(record):
        response.status_code = 202
    return job_resource(record, signer)
