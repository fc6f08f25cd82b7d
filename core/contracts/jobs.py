"""Job records and events: what a job is while it runs, and what requesters are told.

States move ``queued -> running -> succeeded | failed``, or ``queued -> canceled``, or
``queued -> failed`` (the publish was not confirmed, or the worker refused the request before
starting it); ``running -> running`` is a redelivery after a worker was lost. A terminal state
never changes again. Each transition emits the event of the same name.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.codes import ErrorCode


class JobKind(StrEnum):
    LISTING = "listing"
    TRYON = "tryon"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})


class JobEventType(StrEnum):
    QUEUED = "job.queued"
    STARTED = "job.started"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELED = "job.canceled"


#: the event each state transition emits
EVENT_FOR_STATE = {
    JobState.QUEUED: JobEventType.QUEUED,
    JobState.RUNNING: JobEventType.STARTED,
    JobState.SUCCEEDED: JobEventType.SUCCEEDED,
    JobState.FAILED: JobEventType.FAILED,
    JobState.CANCELED: JobEventType.CANCELED,
}


class StoredImage(BaseModel):
    """One generated image in object storage."""

    variant: int
    bucket: str
    key: str
    content_type: str
    url: str = Field(description="presigned GET link, valid until url_expires_at")
    url_expires_at: datetime


class JobError(BaseModel):
    code: ErrorCode = Field(description="machine-readable reason (core.contracts.codes.ErrorCode)")
    message: str
    retryable: bool


class JobRecord(BaseModel):
    """The status store's view of one job (what ``atelier status`` shows)."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    kind: JobKind
    state: JobState
    requester: str
    subject: str = Field(description="listing id or shopper reference")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    model: str | None = None
    model_version: str | None = None
    seed: int | None = None
    updated_at: datetime | None = Field(default=None, description="last change of this record")
    idempotency_key: str | None = None
    results: list[StoredImage] = Field(default_factory=list)
    error: JobError | None = None
    callback_state: str | None = Field(
        default=None, description="the last delivery outcome, 'event: outcome'"
    )
    callbacks: dict[str, str] = Field(
        default_factory=dict,
        description="delivery outcome per event type, e.g. {'job.succeeded': 'delivered'}",
    )


class JobEvent(BaseModel):
    """The body of a callback (Standard Webhooks: ``type``, ``timestamp``, ``data``)."""

    type: JobEventType
    timestamp: datetime
    data: dict[str, Any]
