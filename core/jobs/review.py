"""The rules of human review, as pure functions on job records: which images people must look at
when a job's images are stored, whether a decision may apply, and how a review ends.

- **Held or not** (:func:`held_for_review`): under ``auto`` nothing is held; under ``flagged`` the
  images the quality gate passed (or that no gate judged) are approved by the gate
  (reviewer :data:`GATE_REVIEWER`) and the job is held only if one failed; under ``all`` every
  image is pending. Try-ons are never held: a shopper is waiting, and they never reach a catalog.
- **A decision applies** to a pending image of a job still ``awaiting_review``
  (:func:`decision_refusal` says why not otherwise).
- **The end** (:func:`review_end`): once no image is pending or being made again, the job ends
  ``approved`` if people approved at least one image, else ``rejected``.

``core.jobs.machine.JobStateMachine`` writes these changes atomically; this module only computes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from core.contracts.jobs import (
    ImageDecision,
    ImageReview,
    JobKind,
    JobRecord,
    JobState,
    ReviewPolicy,
    StoredImage,
)

#: who approved an image that passed the quality gate under the ``flagged`` policy
GATE_REVIEWER = "gate"
#: the statuses that keep a job awaiting review: people have yet to decide, or to see a new image
OPEN_STATUSES = frozenset({ImageDecision.PENDING, ImageDecision.REGENERATING})


class DecisionOutcome(StrEnum):
    """What came of one decision (the ``outcome`` of ``POST /v1/review/decisions``)."""

    APPLIED = "applied"
    CONFLICT = "conflict"  #: the job or the image changed: no longer awaiting review, already decided
    NOT_FOUND = "not_found"  #: no such job (for this key), or no such variant
    INVALID = "invalid"  #: the decision breaks a rule (a reject without a reason...)
    UNAVAILABLE = "unavailable"  #: a service behind failed; nothing was applied: decide again


@dataclass(frozen=True)
class ReviewChange:
    """The answer to a review write: ``record`` as written when ``applied``, else why not."""

    outcome: DecisionOutcome
    detail: str
    record: JobRecord | None = None

    @property
    def applied(self) -> bool:
        return self.outcome is DecisionOutcome.APPLIED


def flagged(image: StoredImage) -> bool:
    """Whether the quality gate judged the image and failed it (no gate ran: not flagged)."""
    return image.gate is not None and not image.gate.passed


def held_for_review(
    kind: JobKind, policy: ReviewPolicy, images: Sequence[StoredImage], *, now: datetime
) -> tuple[list[StoredImage], bool]:
    """The images with their review set as ``policy`` asks, and whether people must look."""
    if kind is not JobKind.LISTING or policy is ReviewPolicy.AUTO:
        return list(images), False
    if policy is ReviewPolicy.ALL:
        return [with_review(image, ImageReview()) for image in images], True
    approved = ImageReview(status=ImageDecision.APPROVED, reviewer=GATE_REVIEWER, decided_at=now)
    reviewed = [with_review(image, ImageReview() if flagged(image) else approved) for image in images]
    return reviewed, any(flagged(image) for image in images)


def with_review(image: StoredImage, review: ImageReview) -> StoredImage:
    return image.model_copy(update={"review": review})


def image_of(record: JobRecord, variant: int) -> StoredImage | None:
    return next((image for image in record.results if image.variant == variant), None)


def status_of(image: StoredImage) -> ImageDecision | None:
    return image.review.status if image.review is not None else None


def decision_refusal(record: JobRecord, variant: int) -> ReviewChange | None:
    """Why a person's decision on ``variant`` cannot apply to ``record`` now, or ``None``."""
    if record.state is not JobState.AWAITING_REVIEW:
        return ReviewChange(
            DecisionOutcome.CONFLICT, f"the job is {record.state.value}, not awaiting review", record
        )
    image = image_of(record, variant)
    if image is None:
        return ReviewChange(DecisionOutcome.NOT_FOUND, f"the job has no variant {variant}", record)
    status = status_of(image)
    if status is not ImageDecision.PENDING:
        shown = status.value if status is not None else "not under review"
        return ReviewChange(DecisionOutcome.CONFLICT, f"variant {variant} is already {shown}", record)
    return None


def replaced(record: JobRecord, image: StoredImage) -> JobRecord:
    """``record`` with ``image`` in place of the stored image of its variant."""
    results = [image if stored.variant == image.variant else stored for stored in record.results]
    return record.model_copy(update={"results": results})


def review_end(record: JobRecord) -> JobState | None:
    """The state a job awaiting review ends in now, or ``None`` while an image is still open."""
    statuses = [status_of(image) for image in record.results]
    if any(status in OPEN_STATUSES for status in statuses):
        return None
    return JobState.APPROVED if ImageDecision.APPROVED in statuses else JobState.REJECTED


def regenerated_seed(job_seed: int, variant: int, regeneration: int, *, limit: int = 2**63) -> int:
    """The seed of the ``regeneration``-th remake of ``variant`` (from 1): derived from the job's
    seed, so the same decisions on the same request make the same images again."""
    digest = hashlib.sha256(f"{job_seed}:{variant}:{regeneration}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % limit
