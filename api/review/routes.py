"""``/v1/review``: the images waiting for people, decisions on them, and each image's audit trail.

Every route needs the ``review`` scope. A key reviews its own requester's jobs; a key that also
holds ``admin`` may name another requester (``?requester=`` on the listing) and decide any job.
Another tenant's job answers 404 (or ``not_found``), exactly as a job that does not exist.

Links to the images are signed on each read (``api.presign``); ``api.review.queue`` pages through
the tenant's jobs awaiting review, ``api.review.decide`` applies decisions (audited, atomic
against a cancel and another reviewer).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api.auth import require
from api.keys.model import ApiKey, Scope
from api.presign import Presigner
from api.problems import ProblemError, problem_responses
from api.review.desk import ReviewDesk
from api.review.queue import ImageFilter, Waiting, waiting_images
from api.review.resources import (
    AuditEntry,
    AuditTrail,
    DecisionBatch,
    DecisionKind,
    DecisionResults,
    OtherVariant,
    ReviewItem,
    ReviewPage,
)
from api.review.tables import MAX_JOB_ID_CHARS
from api.routes.deps import CursorQuery, cursor_problem, not_found, presigner
from core.contracts.jobs import ImageDecision, ImageReview
from core.contracts.v1 import MAX_IDENTIFIER_CHARS
from core.jobs import InvalidCursor
from core.jobs.review import image_of

router = APIRouter(prefix="/v1/review", tags=["review"])

#: images per page unless the caller asks otherwise, and the most one page holds
PAGE_DEFAULT, PAGE_MAX = 50, 200


async def review_desk(request: Request) -> ReviewDesk:
    desk: ReviewDesk | None = getattr(request.app.state, "review", None)
    if desk is None:
        raise ProblemError(503, "Service Unavailable", "review is not configured on this API")
    return desk


def reviewed_requester(key: ApiKey, requester: str | None) -> str:
    """Whose images ``key`` looks at: its own requester's, or another's for an admin key."""
    if requester is None or requester == key.requester:
        return key.requester
    if key.allows(Scope.ADMIN):
        return requester
    raise ProblemError(
        403, "Forbidden", "only a key with the admin scope may name another requester", kind="not-admin"
    )


@router.get("/images", response_model=ReviewPage, responses=problem_responses(401, 403, 422, 503))
def list_images(
    status: Annotated[ImageDecision, Query(description="the images' review status")] = ImageDecision.PENDING,
    requester: Annotated[
        str | None, Query(max_length=MAX_IDENTIFIER_CHARS, description="admin keys only: another requester")
    ] = None,
    category: Annotated[
        str | None, Query(max_length=64, description="only jobs that asked for this category")
    ] = None,
    flagged: Annotated[
        bool | None, Query(description="only images the quality gate flagged (true) or passed (false)")
    ] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="images per page")] = PAGE_DEFAULT,
    key: ApiKey = Depends(require(Scope.REVIEW)),  # noqa: B008
    desk: ReviewDesk = Depends(review_desk),  # noqa: B008
    signer: Presigner = Depends(presigner),  # noqa: B008
) -> ReviewPage:
    """Images of jobs awaiting review, oldest job first, each with the request's attributes, the
    gate's scores and the job's other variants (links signed now)."""
    tenant = reviewed_requester(key, requester)
    filters = ImageFilter(status=status, category=category, flagged=flagged)
    try:
        page = waiting_images(desk.producer.store, tenant, filters=filters, limit=limit, cursor=cursor)
    except InvalidCursor as error:
        raise cursor_problem(error) from None
    return ReviewPage(
        items=[review_item(waiting, signer) for waiting in page.images], next_cursor=page.next_cursor
    )


@router.post("/decisions", response_model=DecisionResults, responses=problem_responses(401, 403, 422, 503))
def decide(
    batch: DecisionBatch,
    key: ApiKey = Depends(require(Scope.REVIEW)),  # noqa: B008
    desk: ReviewDesk = Depends(review_desk),  # noqa: B008
) -> DecisionResults:
    """Approve or reject images (1 to 200); each decision applies, or not, on its own, and is
    audited when it applies. A reject needs a reason and may ask for the image to be made again."""
    return DecisionResults(results=desk.decisions.decide(key, batch.decisions))


@router.get(
    "/images/{job_id}/{variant}/audit",
    response_model=AuditTrail,
    responses=problem_responses(401, 403, 404, 422, 503),
)
def audit_trail(
    job_id: Annotated[str, Path(max_length=MAX_JOB_ID_CHARS, description="the job id")],
    variant: Annotated[int, Path(ge=0, lt=1000, description="the image's variant")],
    key: ApiKey = Depends(require(Scope.REVIEW)),  # noqa: B008
    desk: ReviewDesk = Depends(review_desk),  # noqa: B008
) -> AuditTrail:
    """Every decision that applied to the image, oldest first (kept after the job expires)."""
    record = desk.producer.store.get(job_id)
    trail = desk.audit.trail(job_id, variant)
    owner = record.requester if record is not None else (trail[0].requester if trail else None)
    if owner is None or not (owner == key.requester or key.allows(Scope.ADMIN)):
        raise not_found(job_id)
    if record is not None and image_of(record, variant) is None and not trail:
        raise not_found(job_id)
    return AuditTrail(
        entries=[
            AuditEntry(
                decision=DecisionKind(entry.decision),
                reason=entry.reason,
                regenerate=entry.regenerate,
                reviewer=entry.reviewer,
                decided_at=entry.decided_at,
            )
            for entry in trail
        ]
    )


def review_item(waiting: Waiting, signer: Presigner) -> ReviewItem:
    """An image waiting for people as the console shows it, every link signed now."""
    record, image = waiting.record, waiting.image
    signed = signer.sign(image)
    others = [
        OtherVariant(variant=other.variant, url=signer.sign(other).url, gate=other.gate, review=other.review)
        for other in record.results
        if other.variant != image.variant
    ]
    return ReviewItem(
        job_id=record.job_id,
        variant=image.variant,
        kind=record.kind,
        requester=record.requester,
        subject=record.subject,
        attributes=dict(waiting.request.get("attributes") or {}),
        gate=image.gate,
        review=image.review or ImageReview(),
        url=signed.url,
        url_expires_at=signed.url_expires_at,
        others=others,
    )
