"""Applying people's decisions: audited in PostgreSQL, applied to the job record in Redis, each
decision on its own.

For one decision, in this order: open a transaction, insert its audit row (``api.review.audit``),
apply it to the record (``JobStateMachine.decide_image``: one checked write, atomic against a
cancel and against another reviewer), commit. A refusal (the job was canceled meanwhile, the image
was decided first) rolls the row back: the trail holds only what applied. Then, when the
decision ended the review, the job's ``job.approved`` or ``job.rejected`` callback is queued, as
a cancel queues ``job.canceled`` (``Producer.notify``). A reject with ``regenerate`` asks a
worker for a new image (``REGENERATE_TASK``) before the commit; if that message cannot be
published, the image is put back as it was and the row rolled back (``unavailable``).

Tenants: a key decides its own requester's jobs; a key with the ``admin`` scope any job.
Another tenant's job answers ``not_found``, exactly as a job that does not exist.

A commit that fails after the record changed is logged as an error naming the decision (the
record keeps it; the trail lacks it): PostgreSQL failing between a flushed insert and its commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from api.keys.errors import KeyStoreUnavailable
from api.keys.model import ApiKey, Scope
from api.review.audit import AuditedDecision, DecisionLog
from api.review.resources import DecisionKind, DecisionRequest, DecisionResult
from core.contracts.jobs import EVENT_FOR_STATE, ImageDecision, ImageReview, JobRecord
from core.jobs import StoreError, utcnow
from core.jobs.review import DecisionOutcome, ReviewChange, decision_refusal, image_of
from core.publish import PublishError
from producer.client import Producer

log = logging.getLogger(__name__)


class _Refused(Exception):
    """Roll the decision's transaction back and answer ``result``."""

    def __init__(self, result: DecisionResult) -> None:
        super().__init__(result.detail)
        self.result = result


@dataclass(frozen=True)
class Decisions:
    """Applies decisions through ``producer`` (its job store and publisher), audited in ``audit``."""

    producer: Producer
    audit: DecisionLog

    def decide(self, key: ApiKey, decisions: Sequence[DecisionRequest]) -> list[DecisionResult]:
        """What came of each decision, in order; none depends on another's outcome."""
        return [self.decide_one(key, decision) for decision in decisions]

    def decide_one(self, key: ApiKey, asked: DecisionRequest) -> DecisionResult:
        invalid = _invalid(asked)
        if invalid is not None:
            return _result(asked, DecisionOutcome.INVALID, invalid)
        store = self.producer.store
        try:
            record = store.get(asked.job_id)
        except StoreError as error:
            return _result(asked, DecisionOutcome.UNAVAILABLE, f"the job store is unavailable: {error}")
        if record is None or not (record.requester == key.requester or key.allows(Scope.ADMIN)):
            return _result(asked, DecisionOutcome.NOT_FOUND, "no such job for this key")
        refusal = decision_refusal(record, asked.variant)
        if refusal is not None:
            return _answer(asked, refusal)
        try:
            return self._apply(key, asked, record)
        except _Refused as refused:
            return refused.result
        except (KeyStoreUnavailable, SQLAlchemyError, StoreError) as error:
            log.warning(
                "decision on job %s not applied: %r", asked.job_id, error, extra={"job_id": asked.job_id}
            )
            return _result(
                asked, DecisionOutcome.UNAVAILABLE, "a service behind the API failed: nothing applied"
            )

    def _apply(self, key: ApiKey, asked: DecisionRequest, record: JobRecord) -> DecisionResult:
        now = utcnow()
        status = _status(asked)
        audited = AuditedDecision(
            job_id=asked.job_id,
            variant=asked.variant,
            requester=record.requester,
            decision=asked.decision.value,
            reason=asked.reason,
            regenerate=asked.regenerate,
            reviewer=key.key_id,
            decided_at=now,
        )
        review = ImageReview(status=status, reason=asked.reason, reviewer=key.key_id, decided_at=now)
        with self.audit.database.session() as session:
            DecisionLog.append(session, audited)
            change = self.producer.store.decide_image(asked.job_id, asked.variant, review)
            if not change.applied:
                session.rollback()
                raise _Refused(_answer(asked, change))
            if status is ImageDecision.REGENERATING:
                self._ask_for_remake(asked, change)
            try:
                session.commit()
            except SQLAlchemyError:
                log.exception(
                    "decision applied to job %s variant %d but its audit row was not committed: %s",
                    asked.job_id,
                    asked.variant,
                    audited,
                    extra={"job_id": asked.job_id},
                )
                raise
        written = change.record
        assert written is not None
        if written.state.terminal:
            self.producer.notify(asked.job_id, EVENT_FOR_STATE[written.state])
        return _answer(asked, change)

    def _ask_for_remake(self, asked: DecisionRequest, change: ReviewChange) -> None:
        """Publish the remake; if the broker refuses, undo the decision and refuse it."""
        assert change.record is not None
        image = image_of(change.record, asked.variant)
        assert image is not None and image.review is not None
        regeneration = image.review.regenerations
        try:
            self.producer.regenerate(asked.job_id, asked.variant, regeneration)
        except PublishError as error:
            self.producer.store.reopen_image(asked.job_id, asked.variant, regeneration=regeneration)
            detail = f"the new image could not be asked for ({error.message}): nothing applied"
            raise _Refused(_result(asked, DecisionOutcome.UNAVAILABLE, detail, change.record)) from error


def _invalid(asked: DecisionRequest) -> str | None:
    if asked.decision is DecisionKind.APPROVE and asked.regenerate:
        return "only a reject can ask for the image to be made again"
    if asked.decision is DecisionKind.REJECT and not (asked.reason or "").strip():
        return "a reject needs a reason"
    return None


def _status(asked: DecisionRequest) -> ImageDecision:
    if asked.decision is DecisionKind.APPROVE:
        return ImageDecision.APPROVED
    return ImageDecision.REGENERATING if asked.regenerate else ImageDecision.REJECTED


def _answer(asked: DecisionRequest, change: ReviewChange) -> DecisionResult:
    detail = change.detail
    if change.applied:
        image = image_of(change.record, asked.variant) if change.record is not None else None
        status = image.review.status.value if image is not None and image.review is not None else "decided"
        detail = f"variant {asked.variant} {status}; {change.detail}"
    return _result(asked, change.outcome, detail, change.record)


def _result(
    asked: DecisionRequest, outcome: DecisionOutcome, detail: str, record: JobRecord | None = None
) -> DecisionResult:
    return DecisionResult(
        job_id=asked.job_id,
        variant=asked.variant,
        outcome=outcome,
        detail=detail,
        job_state=record.state if record is not None else None,
    )
