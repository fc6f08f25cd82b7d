"""The audit trail of people's decisions (``review_decisions``): written inside the transaction
that applies a decision (``api.review.decide``), read back per image.

Only decisions that applied are kept: the row is inserted first, the decision applied to the job
record in Redis, and the transaction committed only if that applied; a refusal rolls the row
back. The table refuses any change to a row once written (``api.review.tables``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.database import Database
from api.review.tables import ReviewDecisionRow


@dataclass(frozen=True)
class AuditedDecision:
    """One decision on one image as the trail keeps it."""

    job_id: str
    variant: int
    requester: str
    decision: str  #: ``approve`` or ``reject``
    reason: str | None
    regenerate: bool
    reviewer: str  #: the deciding key's id
    decided_at: datetime


class DecisionLog:
    """Appends to, and reads, the trail in ``database``."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @staticmethod
    def append(session: Session, decision: AuditedDecision) -> None:
        """Add ``decision`` to ``session``'s transaction and send it (so a broken rule raises
        here, before anything else happens); it is kept only if that transaction commits."""
        session.add(
            ReviewDecisionRow(
                job_id=decision.job_id,
                variant=decision.variant,
                requester=decision.requester,
                decision=decision.decision,
                reason=decision.reason,
                regenerate=decision.regenerate,
                reviewer=decision.reviewer,
                decided_at=decision.decided_at,
            )
        )
        session.flush()

    def trail(self, job_id: str, variant: int | None = None) -> list[AuditedDecision]:
        """The decisions on ``job_id`` (on one ``variant`` of it, if given), oldest first."""
        query = select(ReviewDecisionRow).where(ReviewDecisionRow.job_id == job_id)
        if variant is not None:
            query = query.where(ReviewDecisionRow.variant == variant)
        query = query.order_by(ReviewDecisionRow.decided_at, ReviewDecisionRow.id)
        with self.database.session() as session:
            return [_audited(row) for row in session.scalars(query)]


def _audited(row: ReviewDecisionRow) -> AuditedDecision:
    return AuditedDecision(
        job_id=row.job_id,
        variant=row.variant,
        requester=row.requester,
        decision=row.decision,
        reason=row.reason,
        regenerate=row.regenerate,
        reviewer=row.reviewer,
        decided_at=row.decided_at,
    )
