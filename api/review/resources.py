"""What the review routes exchange: an image waiting for people (with its job's other variants),
a batch of decisions and what came of each, and an image's audit trail.

Links are signed on the read (``api.presign``), short-lived like every output link; a reviewer
sees images that have no catalog link yet, so these links never leave the console's page.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.review.tables import MAX_JOB_ID_CHARS, MAX_REASON_CHARS
from core.contracts.jobs import GateReport, ImageReview, JobKind, JobState
from core.jobs.review import DecisionOutcome

#: most decisions one request carries
MAX_DECISIONS = 200


class OtherVariant(BaseModel):
    """Another image of the same job, for comparison."""

    variant: int
    url: str = Field(description="GET link signed on this read")
    gate: GateReport | None = None
    review: ImageReview | None = None


class ReviewItem(BaseModel):
    """One image waiting for people, with what they need to decide."""

    job_id: str
    variant: int
    kind: JobKind
    requester: str
    subject: str = Field(description="listing id")
    attributes: dict[str, Any] = Field(description="the request's attributes: category, colour, style")
    gate: GateReport | None = Field(description="the quality gate's scores; null when no gate ran")
    review: ImageReview
    url: str = Field(description="GET link signed on this read, valid until url_expires_at")
    url_expires_at: datetime
    others: list[OtherVariant] = Field(description="the job's other variants")


class ReviewPage(BaseModel):
    """One page of images waiting for people, oldest job first."""

    items: list[ReviewItem]
    next_cursor: str | None = Field(
        default=None, description="pass as ?cursor= for the next page; null on the last page"
    )


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class DecisionRequest(BaseModel):
    """A person's decision on one image."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(max_length=MAX_JOB_ID_CHARS)
    variant: int = Field(ge=0, lt=1000)
    decision: DecisionKind
    reason: str | None = Field(
        default=None, max_length=MAX_REASON_CHARS, description="why; required to reject"
    )
    regenerate: bool = Field(
        default=False, description="reject only: make this image again (with a derived seed), for review"
    )


class DecisionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: list[DecisionRequest] = Field(min_length=1, max_length=MAX_DECISIONS)


class DecisionResult(BaseModel):
    """What came of one decision; each applies, or not, on its own."""

    job_id: str
    variant: int
    outcome: DecisionOutcome = Field(
        description="applied; conflict (the job is no longer awaiting review, or the image was decided "
        "already); not_found (no such job for this key, or no such variant); invalid (a reject without "
        "a reason, an approve asking to regenerate); unavailable (a service behind failed: nothing "
        "applied, decide again)"
    )
    detail: str
    job_state: JobState | None = Field(description="the job's state after this decision, when known")


class DecisionResults(BaseModel):
    results: list[DecisionResult] = Field(description="one per decision, in the order sent")


class AuditEntry(BaseModel):
    """One decision that applied to an image."""

    decision: DecisionKind
    reason: str | None
    regenerate: bool
    reviewer: str = Field(description="the id of the key that decided")
    decided_at: datetime


class AuditTrail(BaseModel):
    entries: list[AuditEntry] = Field(description="oldest first")
