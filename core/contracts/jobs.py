"""Job records and events: what a job is while it runs, and what requesters are told.

States move ``queued -> running -> succeeded | failed``, or ``queued -> canceled``, or
``queued -> failed`` (the publish was not confirmed, or the worker refused the request before
starting it); ``running -> running`` is a redelivery after a worker was lost. When the
requester's review policy (:class:`ReviewPolicy`) asks people to look, a job whose images are
stored goes ``running -> awaiting_review`` instead, and ends ``approved`` (at least one image
approved: only those get links) or ``rejected`` (every image rejected), or ``canceled``. A
terminal state never changes again. Each transition emits the event of its state
(``EVENT_FOR_STATE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, TypeAdapter
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
    AWAITING_REVIEW = "awaiting_review"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.APPROVED, JobState.REJECTED}
)


class JobEventType(StrEnum):
    QUEUED = "job.queued"
    STARTED = "job.started"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELED = "job.canceled"
    REVIEW_REQUIRED = "job.review_required"
    APPROVED = "job.approved"
    REJECTED = "job.rejected"


#: the event each state transition emits
EVENT_FOR_STATE = {
    JobState.QUEUED: JobEventType.QUEUED,
    JobState.RUNNING: JobEventType.STARTED,
    JobState.SUCCEEDED: JobEventType.SUCCEEDED,
    JobState.FAILED: JobEventType.FAILED,
    JobState.CANCELED: JobEventType.CANCELED,
    JobState.AWAITING_REVIEW: JobEventType.REVIEW_REQUIRED,
    JobState.APPROVED: JobEventType.APPROVED,
    JobState.REJECTED: JobEventType.REJECTED,
}


class ReviewPolicy(StrEnum):
    """Who checks a requester's generated images before they get catalog links."""

    AUTO = "auto"  #: the quality gate alone
    FLAGGED = "flagged"  #: people review the images the gate flagged; the rest pass
    ALL = "all"  #: people review every image


class GateCheck(BaseModel):
    """One automatic check of one image: its score against its threshold."""

    name: str = Field(description="e.g. category, colour, duplicate, blank")
    score: float
    threshold: float
    passed: bool
    judged: bool = Field(
        default=True,
        description="false: the check could not run and does not count; the category check of a "
        "category the judge model does not know (a catalog version's own)",
    )


class GateReport(BaseModel):
    """What the quality gate said of an image: every check, and after how many tries."""

    passed: bool
    checks: list[GateCheck] = Field(default_factory=list)
    tries: int = Field(default=1, ge=1, description="generations of this variant, the kept one last")
    seed: int | None = Field(default=None, description="the seed of the kept generation")


class ImageDecision(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    #: rejected by a person who asked for another: the worker makes it, and it comes back pending
    REGENERATING = "regenerating"


class ImageReview(BaseModel):
    """A person's decision on one image (the audit trail is in PostgreSQL)."""

    status: ImageDecision = ImageDecision.PENDING
    reason: str | None = None
    reviewer: str | None = Field(default=None, description="the key id that decided")
    decided_at: datetime | None = None
    regenerations: int = Field(default=0, ge=0, description="times people had this image made again")


class StoredImage(BaseModel):
    """One generated image in object storage."""

    variant: int
    bucket: str
    key: str
    content_type: str
    url: str = Field(description="presigned GET link, valid until url_expires_at")
    url_expires_at: datetime
    gate: GateReport | None = Field(default=None, description="the quality gate's scores")
    review: ImageReview | None = Field(
        default=None, description="people's decision, when the review policy asks for one"
    )


class ImageUnderReview(BaseModel):
    """An image as events report it before (or without) approval: no link."""

    variant: int
    gate: GateReport | None = None
    review: ImageReview | None = None


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
    cancel_requested_at: datetime | None = Field(
        default=None, description="a cancel asked while the job ran: it stops at its next step"
    )
    attempts: int = 0
    model: str | None = None
    model_version: str | None = None
    seed: int | None = None
    updated_at: datetime | None = Field(default=None, description="last change of this record")
    idempotency_key: str | None = None
    review_policy: ReviewPolicy = Field(
        default=ReviewPolicy.AUTO,
        description="set at submit from the requester's tenant, never by the caller",
    )
    results: list[StoredImage] = Field(default_factory=list)
    error: JobError | None = None
    callback_state: str | None = Field(
        default=None, description="the last delivery outcome, 'event: outcome'"
    )
    callbacks: dict[str, str] = Field(
        default_factory=dict,
        description="delivery outcome per event type, e.g. {'job.succeeded': 'delivered'}",
    )

    def catalog_images(self) -> list[StoredImage]:
        """The images that may get links: those of a succeeded job the quality gate passed (or
        that no gate judged), the approved ones of an approved job, none in any other state
        (awaiting review, rejected, canceled...)."""
        if self.state is JobState.SUCCEEDED:
            return [i for i in self.results if i.gate is None or i.gate.passed]
        if self.state is JobState.APPROVED:
            return [i for i in self.results if i.review and i.review.status is ImageDecision.APPROVED]
        return []


class JobEventData(BaseModel):
    """What every event's ``data`` holds (``core.jobs.events.build_event``); each event type's
    model below adds its own fields and fixes ``state``, the union's discriminator.

    ``extra="allow"``: a field added in a later minor version is kept, never refused.
    """

    model_config = ConfigDict(extra="allow")

    job_id: str
    kind: JobKind
    requester: str
    subject: str = Field(description="listing id or shopper reference")


class JobQueuedData(JobEventData):
    """``data`` of ``job.queued``: the job is recorded and published."""

    state: Literal[JobState.QUEUED] = Field(description="the state the event reports")


class JobStartedData(JobEventData):
    """``data`` of ``job.started``: a worker took the job (again, on a redelivery)."""

    state: Literal[JobState.RUNNING] = Field(description="the state the event reports")
    attempts: int = Field(ge=1, description="the attempt now running, from 1")


class JobSucceededData(JobEventData):
    """``data`` of ``job.succeeded``: the images are stored; ``results`` links to them."""

    state: Literal[JobState.SUCCEEDED] = Field(description="the state the event reports")
    model: str | None = Field(description="the model that made the images")
    model_version: str | None = Field(description="its version")
    seed: int | None = Field(description="the seed the images were made with")
    results: list[StoredImage] = Field(description="the images, links presigned")


class JobFailedData(JobEventData):
    """``data`` of ``job.failed``: the job ended without images."""

    state: Literal[JobState.FAILED] = Field(description="the state the event reports")
    error: JobError = Field(description="why (error codes may be added in minor versions)")


class JobCanceledData(JobEventData):
    """``data`` of ``job.canceled``: the job was canceled while queued and never ran."""

    state: Literal[JobState.CANCELED] = Field(description="the state the event reports")


class JobReviewRequiredData(JobEventData):
    """``data`` of ``job.review_required``: images are stored and wait for people; no links yet."""

    state: Literal[JobState.AWAITING_REVIEW] = Field(description="the state the event reports")
    images: list[ImageUnderReview] = Field(description="each image, its gate scores and decision so far")


class JobApprovedData(JobEventData):
    """``data`` of ``job.approved``: review is over; ``results`` links the approved images only."""

    state: Literal[JobState.APPROVED] = Field(description="the state the event reports")
    model: str | None = Field(description="the model that made the images")
    model_version: str | None = Field(description="its version")
    seed: int | None = Field(description="the seed the images were made with")
    results: list[StoredImage] = Field(description="the approved images, links presigned")
    rejected: list[ImageUnderReview] = Field(default_factory=list, description="the others, with reasons")


class JobRejectedData(JobEventData):
    """``data`` of ``job.rejected``: people rejected every image; nothing reaches the catalog."""

    state: Literal[JobState.REJECTED] = Field(description="the state the event reports")
    images: list[ImageUnderReview] = Field(description="each image with its reason")


#: ``JobEvent.data`` as published: one model per event type, told apart by ``state`` (each
#: event type reports exactly one state: ``EVENT_FOR_STATE``)
TypedEventData = Annotated[
    JobQueuedData
    | JobStartedData
    | JobSucceededData
    | JobFailedData
    | JobCanceledData
    | JobReviewRequiredData
    | JobApprovedData
    | JobRejectedData,
    Field(discriminator="state"),
]
#: validates ``data`` as the typed union (strict: an error code newer than this release fails)
TYPED_EVENT_DATA: TypeAdapter[TypedEventData] = TypeAdapter(TypedEventData)


@dataclass(frozen=True)
class DocumentedAs:
    """Annotation: publish the JSON schema of ``annotation`` (a model or a union of models) for a
    field that validates as something looser (a dict that code indexes by key)."""

    annotation: Any

    def __get_pydantic_json_schema__(
        self, _schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(TypeAdapter(self.annotation).core_schema)


class JobEvent(BaseModel):
    """The body of a callback and of each SSE frame (Standard Webhooks: ``type``, ``timestamp``,
    ``data``).

    ``data`` is published as :data:`TypedEventData` (the fields each event type carries) but read
    as a plain dict: a receiver on an older release still reads an event whose ``error.code`` was
    added after it (the published schema lists the codes known today). :meth:`typed_data` gives
    the typed view to a receiver that wants it.
    """

    type: JobEventType
    timestamp: datetime
    data: Annotated[dict[str, Any], DocumentedAs(TypedEventData)]

    def typed_data(self) -> JobEventData:
        """``data`` as the model of its event type; ``ValueError`` (a pydantic
        ``ValidationError``) if it does not fit that model or reports another event's state."""
        typed: JobEventData = TYPED_EVENT_DATA.validate_python(self.data)
        if EVENT_FOR_STATE[JobState(self.data["state"])] is not self.type:
            raise ValueError(f"{self.type.value} cannot report the state {self.data['state']!r}")
        return typed
