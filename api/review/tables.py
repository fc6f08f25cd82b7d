"""The review tables, as SQLAlchemy 2 typed mappings (``migrations/versions/v0003_review.py``
creates them, beside the key store's tenants and keys, on the same declarative base; a change
here needs a new revision there).

``review_policies``: a requester's review policy (no row: the service's default,
``ATELIER_REVIEW_POLICY``). No foreign key to ``tenants``: an operator may set a tenant's policy
before its first key exists, so its first job is already held.

``review_decisions``: every person's decision that applied, one row each, never changed: a
trigger refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE``, so the audit trail cannot be rewritten
by a code path that forgets. A refused decision (the job was canceled meanwhile, another
reviewer decided first) is rolled back, so the table holds only what applied. ``reviewer`` is
the deciding key's id (keys are revoked, never deleted, so the name stays resolvable).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.keys.tables import Base
from core.contracts.v1 import MAX_IDENTIFIER_CHARS

#: the longest reason a reviewer may give
MAX_REASON_CHARS = 1000
#: longest job id (32 hex digits today; the API takes up to 64)
MAX_JOB_ID_CHARS = 64


class ReviewPolicyRow(Base):
    """Who checks one requester's generated images: ``auto``, ``flagged`` or ``all``."""

    __tablename__ = "review_policies"
    __table_args__ = (CheckConstraint("policy IN ('auto', 'flagged', 'all')", name="known_policy"),)

    requester: Mapped[str] = mapped_column(String(MAX_IDENTIFIER_CHARS), primary_key=True)
    policy: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReviewDecisionRow(Base):
    """One applied decision on one image: who (key id), when, what, why."""

    __tablename__ = "review_decisions"
    __table_args__ = (
        Index(None, "job_id", "variant"),
        CheckConstraint("decision IN ('approve', 'reject')", name="known_decision"),
        CheckConstraint("decision = 'reject' OR NOT regenerate", name="only_reject_regenerates"),
        CheckConstraint("decision = 'approve' OR reason IS NOT NULL", name="reject_has_reason"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(MAX_JOB_ID_CHARS))
    variant: Mapped[int] = mapped_column(Integer)
    requester: Mapped[str] = mapped_column(String(MAX_IDENTIFIER_CHARS))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    regenerate: Mapped[bool] = mapped_column(server_default=text("false"))
    reviewer: Mapped[str] = mapped_column(String(32), ForeignKey("api_keys.key_id", ondelete="RESTRICT"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
