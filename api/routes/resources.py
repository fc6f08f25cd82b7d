"""What the routes exchange: the submission bodies (the v1 request contracts without
``requester``, which comes from the key) and the job resource (a job record as a caller sees it,
with output links signed on the read).

A body may still carry ``requester`` (a client reusing the Python producer's request dicts): it
is accepted when it names the key's requester and refused (422) when it names another, so a
request never silently runs as someone other than it says.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from core.contracts.jobs import JobError, JobKind, JobState
from core.contracts.v1 import Identifier, ListingImageRequest, TryOnRequest

_REQUESTER_NOTE = "optional: the requester is the API key's; a body naming another requester is refused (422)"


class ListingSubmission(ListingImageRequest):
    """A listing request as submitted over HTTP (``requester`` comes from the key)."""

    requester: Identifier | None = Field(default=None, description=_REQUESTER_NOTE)  # type: ignore[assignment]


class TryOnSubmission(TryOnRequest):
    """A try-on request as submitted over HTTP (``requester`` comes from the key)."""

    requester: Identifier | None = Field(default=None, description=_REQUESTER_NOTE)  # type: ignore[assignment]


class Output(BaseModel):
    """One generated image, with a GET link signed on this read."""

    variant: int
    content_type: str
    url: str = Field(
        description="presigned GET link, signed afresh on every read; valid until url_expires_at"
    )
    url_expires_at: datetime


class Job(BaseModel):
    """A job as its requester sees it."""

    id: str = Field(description="the job id: 32 lowercase hex digits")
    kind: JobKind
    state: JobState
    requester: str
    subject: str = Field(description="listing id or shopper reference")
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    attempts: int = 0
    model: str | None = None
    model_version: str | None = None
    seed: int | None = None
    idempotency_key: str | None = None
    error: JobError | None = None
    outputs: list[Output] = Field(
        default_factory=list,
        description="the images that may reach a catalog: all of a succeeded job, "
        "the approved ones of an approved job",
    )


class JobList(BaseModel):
    """One page of the caller's jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None = Field(
        default=None, description="pass as ?cursor= for the next page; absent on the last page"
    )
