"""Job records and events: what a job is while it runs, and what requesters are told.

States move ``queued -> running -> succeeded | failed``, or ``queued -> canceled``, or
``queued -> failed`` (the publish was not confirmed, or the worker refused the request before
starting it); ``running -> running`` is a redelivery after a worker was lost. A terminal state
never changes again. Each transition emits the event of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

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


class JobEventData(BaseModel):
    """What a callback's ``data`` holds (``worker.notifications.build_event``).

    Used for the published JSON schema only: ``JobEvent.data`` stays a plain dict for the
    code that reads it, so receivers tolerate fields and error codes added later.
    """

    model_config = ConfigDict(extra="allow")

    job_id: str
    kind: JobKind
    state: JobState = Field(description="the state the event reports")
    requester: str
    subject: str = Field(description="listing id or shopper reference")
    attempts: int | None = Field(default=None, description="job.started only")
    model: str | None = Field(default=None, description="job.succeeded only")
    model_version: str | None = Field(default=None, description="job.succeeded only")
    seed: int | None = Field(default=None, description="job.succeeded only")
    results: list[StoredImage] | None = Field(default=None, description="job.succeeded only")
    error: JobError | None = Field(default=None, description="job.failed only")


@dataclass(frozen=True)
class DocumentedAs:
    """Annotation: publish ``model``'s JSON schema for a field that validates as something
    looser (a dict that code indexes by key)."""

    model: type[BaseModel]

    def __get_pydantic_json_schema__(
        self, _schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self.model.__pydantic_core_schema__)


class JobEvent(BaseModel):
    """The body of a callback (Standard Webhooks: ``type``, ``timestamp``, ``data``).

    ``data`` is read as a plain dict: a receiver on an older release still reads an event whose
    ``error.code`` was added after it (the published schema lists the codes known today).
    """

    type: JobEventType
    timestamp: datetime
    data: Annotated[dict[str, Any], DocumentedAs(JobEventData)]
