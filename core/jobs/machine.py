"""The job state machine, as rules every store shares (Redis, memory): which changes a record
accepts, and what a change writes. A store only supplies :meth:`JobStateMachine.get` and one
write primitive, :meth:`JobStateMachine.write_change`, that applies :func:`accepts` atomically.

Allowed: ``queued -> running | canceled | failed``, ``running -> running | succeeded | failed |
canceled | awaiting_review``, ``awaiting_review -> approved | rejected | canceled``; a terminal
state never changes. Entering ``running`` counts an attempt (``running -> running`` is a
redelivery) and sets ``started_at`` on the first one; entering a terminal state sets
``finished_at``. A running job is canceled by its worker, at its next step, after a cancel
request marked it (``cancel_requested_at``). People's decisions on a job awaiting review
(``core.jobs.review``) are written the same way, each checked against the record as written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.contracts.jobs import ImageDecision, ImageReview, JobEventType, JobRecord, JobState, StoredImage
from core.jobs.errors import JobNotFound, StoreConflict
from core.jobs.review import (
    DecisionOutcome,
    ReviewChange,
    decision_refusal,
    image_of,
    replaced,
    review_end,
    with_review,
)

#: every state change the store accepts; anything else (and any change of a terminal state) is refused
ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.AWAITING_REVIEW}
    ),
    JobState.AWAITING_REVIEW: frozenset({JobState.APPROVED, JobState.REJECTED, JobState.CANCELED}),
}

#: ``ALLOWED_TRANSITIONS`` as the Redis write script looks them up (``' from>to from>to '``): a
#: plain substring search, where decoding JSON on every write cost Redis more than the write
ALLOWED_TRANSITIONS_ARG = (
    " "
    + " ".join(
        f"{src.value}>{dst.value}" for src, dsts in ALLOWED_TRANSITIONS.items() for dst in sorted(dsts)
    )
    + " "
)

#: fields a transition may set; identity fields (job id, kind, requester, subject) never change
MUTABLE_FIELDS = frozenset(JobRecord.model_fields) - {
    "job_id",
    "kind",
    "requester",
    "subject",
    "created_at",
    "state",
    "idempotency_key",
}

#: a change of a record: the record to write, or ``None`` to leave it as it is
Change = Callable[[JobRecord], JobRecord | None]
#: a review change of a record: the record to write, or why it does not apply
ReviewApply = Callable[[JobRecord], JobRecord | ReviewChange]

#: times a review write looks at the record again when it changed between its look and its write
REVIEW_WRITE_ATTEMPTS = 20


class Mode(StrEnum):
    """How a write is checked: a ``transition`` follows ``ALLOWED_TRANSITIONS``; an ``update``
    (results, callback notes) keeps the state."""

    TRANSITION = "transition"
    UPDATE = "update"


def utcnow() -> datetime:
    return datetime.now(UTC)


def accepts(
    state: JobState, new_state: JobState, *, mode: Mode, only_from: Collection[JobState] = ()
) -> bool:
    """Whether a record in ``state`` may be written in ``new_state`` (the check every store
    makes at write time, atomically with the write)."""
    if mode is Mode.TRANSITION:
        allowed = new_state in ALLOWED_TRANSITIONS.get(state, frozenset())
    else:
        allowed = new_state is state
    return allowed and (not only_from or state in only_from)


def transitioned(
    record: JobRecord,
    to_state: JobState,
    fields: Mapping[str, Any],
    *,
    only_from: Collection[JobState] | None = None,
    only_if: Callable[[JobRecord], bool] | None = None,
) -> JobRecord | None:
    """``record`` moved to ``to_state`` with ``fields`` set, or ``None`` when refused."""
    if to_state not in ALLOWED_TRANSITIONS.get(record.state, frozenset()):
        return None
    if only_from is not None and record.state not in only_from:
        return None
    if only_if is not None and not only_if(record):
        return None
    now = utcnow()
    data = record.model_dump()
    data.update(fields, state=to_state, updated_at=now)
    if to_state is JobState.RUNNING:
        if "attempts" not in fields:
            data["attempts"] = record.attempts + 1
        if record.started_at is None and "started_at" not in fields:
            data["started_at"] = now
    if to_state.terminal and "finished_at" not in fields:
        data["finished_at"] = now
    return JobRecord.model_validate(data)


def cancel_refusal(record: JobRecord) -> str | None:
    """Why a cancel left ``record`` as it is, or ``None`` when the job is canceled or will be
    (running, marked: :func:`cancel_pending`)."""
    if record.state is JobState.CANCELED or cancel_pending(record):
        return None
    if record.state is JobState.QUEUED:
        return "the job is still queued (it changed while canceling); try again"
    return f"the job already ended {record.state.value}"


def cancel_pending(record: JobRecord) -> bool:
    """Whether the job runs with a cancel asked: its worker ends it ``canceled`` at its next step."""
    return record.state is JobState.RUNNING and record.cancel_requested_at is not None


class JobStateMachine(ABC):
    """The record changes every store offers, written through :meth:`write_change`."""

    @abstractmethod
    def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or ``None`` (never created, or expired)."""

    @abstractmethod
    def write_change(
        self, job_id: str, change: Change, *, mode: Mode, only_from: Sequence[JobState] = ()
    ) -> JobRecord | None:
        """Apply ``change`` to the job's record and write it if :func:`accepts` agrees on the
        record as it is when written; the record written, or ``None`` (refused, or no job)."""

    def require(self, job_id: str) -> JobRecord:
        """Like :meth:`get`, but raises :class:`JobNotFound` instead of returning ``None``."""
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    def transition(
        self,
        job_id: str,
        to_state: JobState | str,
        *,
        only_from: Collection[JobState] | None = None,
        only_if: Callable[[JobRecord], bool] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job to ``to_state`` and set ``fields``; ``False`` when the state machine refuses.

        Fields are validated as :class:`JobRecord` fields (``error=JobError(...)``,
        ``results=[...]``). ``only_from`` narrows the allowed source states (``only_from=[QUEUED]``:
        fail a job only if no worker started it). ``only_if`` is checked on the record as it is
        when written (compare-and-set), e.g. "still the attempt I looked at". An unknown job is
        refused too.
        """
        return (
            self.transition_record(job_id, to_state, only_from=only_from, only_if=only_if, **fields)
            is not None
        )

    def transition_record(
        self,
        job_id: str,
        to_state: JobState | str,
        *,
        only_from: Collection[JobState] | None = None,
        only_if: Callable[[JobRecord], bool] | None = None,
        **fields: Any,
    ) -> JobRecord | None:
        """:meth:`transition`, returning the record as written (``None`` when refused): for a
        caller that goes on with it (the metrics of a job that just ended) without reading it."""
        to_state = JobState(to_state)
        unknown = set(fields) - MUTABLE_FIELDS
        if unknown:
            raise TypeError(f"transition cannot set {sorted(unknown)}; settable: {sorted(MUTABLE_FIELDS)}")

        def change(record: JobRecord) -> JobRecord | None:
            return transitioned(record, to_state, fields, only_from=only_from, only_if=only_if)

        allowed = tuple(only_from) if only_from is not None else ()
        return self.write_change(job_id, change, mode=Mode.TRANSITION, only_from=allowed)

    def set_results(self, job_id: str, results: Sequence[StoredImage]) -> bool:
        """Record stored images while the job runs; ``False`` unless it is ``running``."""

        def change(record: JobRecord) -> JobRecord:
            return record.model_copy(update={"results": list(results), "updated_at": utcnow()})

        return self.write_change(job_id, change, mode=Mode.UPDATE, only_from=(JobState.RUNNING,)) is not None

    def record_callback(self, job_id: str, event: JobEventType | str, outcome: str) -> bool:
        """Note a delivery outcome (e.g. ``delivered``, ``failed: HTTP 500``) in any state."""
        event = JobEventType(event)

        def change(record: JobRecord) -> JobRecord:
            callbacks = {**record.callbacks, event.value: outcome}
            return record.model_copy(
                update={
                    "callbacks": callbacks,
                    "callback_state": f"{event.value}: {outcome}",
                    "updated_at": utcnow(),
                }
            )

        return self.write_change(job_id, change, mode=Mode.UPDATE) is not None

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job, or one awaiting review, now; mark a running one, whose worker
        ends it ``canceled`` before its next inference or upload, keeping none of its objects.
        A finished job comes back unchanged (:func:`cancel_refusal` says why). Raises
        :class:`JobNotFound`.
        """

        def mark(current: JobRecord) -> JobRecord:
            now = utcnow()
            return current.model_copy(update={"cancel_requested_at": now, "updated_at": now})

        for _ in range(3):  # the state may change under us (the job starts): look again
            record = self.require(job_id)
            if record.state in (JobState.QUEUED, JobState.AWAITING_REVIEW):
                done = self.transition(job_id, JobState.CANCELED, only_from=[record.state])
            elif record.state is JobState.RUNNING and record.cancel_requested_at is None:
                marked = self.write_change(job_id, mark, mode=Mode.UPDATE, only_from=(JobState.RUNNING,))
                done = marked is not None
            else:
                return record
            if done:
                return self.require(job_id)
        return self.require(job_id)

    # --- review (the rules: core.jobs.review) ---

    def decide_image(self, job_id: str, variant: int, review: ImageReview) -> ReviewChange:
        """Apply a person's decision on a pending image of a job awaiting review: ``review`` says
        approved, rejected or regenerating (a reject asking for another image), why, who and when.

        One write, which also ends the review when no image is left open (``approved`` or
        ``rejected``, with its event). A job canceled meanwhile, or an image another reviewer
        decided first, is refused (``conflict``) and nothing is written.
        """

        def apply(record: JobRecord) -> JobRecord | ReviewChange:
            refusal = decision_refusal(record, variant)
            if refusal is not None:
                return refusal
            image = image_of(record, variant)
            assert image is not None and image.review is not None  # decision_refusal checked both
            remade = 1 if review.status is ImageDecision.REGENERATING else 0
            remakes = image.review.regenerations + remade
            return replaced(record, with_review(image, review.model_copy(update={"regenerations": remakes})))

        return self._write_review(job_id, apply)

    def regenerated_image(self, job_id: str, image: StoredImage, *, regeneration: int) -> ReviewChange:
        """Put a remade image in place of its variant's, pending again, if that variant still waits
        for remake number ``regeneration`` (a duplicate or stale message is refused)."""

        def apply(record: JobRecord) -> JobRecord | ReviewChange:
            refusal = _remake_refusal(record, image.variant, regeneration)
            if refusal is not None:
                return refusal
            return replaced(record, with_review(image, ImageReview(regenerations=regeneration)))

        return self._write_review(job_id, apply)

    def regeneration_failed(self, job_id: str, variant: int, *, regeneration: int, why: str) -> ReviewChange:
        """A remake that could not be made: the image stays rejected, the person's decision, with
        ``why`` added to the reason; the review ends if no other image is open."""

        def apply(record: JobRecord) -> JobRecord | ReviewChange:
            refusal = _remake_refusal(record, variant, regeneration)
            if refusal is not None:
                return refusal
            image = image_of(record, variant)
            assert image is not None and image.review is not None
            reason = f"{image.review.reason or 'rejected'} (not made again: {why})"
            review = image.review.model_copy(update={"status": ImageDecision.REJECTED, "reason": reason})
            return replaced(record, with_review(image, review))

        return self._write_review(job_id, apply)

    def reopen_image(self, job_id: str, variant: int, *, regeneration: int) -> ReviewChange:
        """Undo a remake that was never asked of a worker (its message was not published): the
        image is pending again, as before the decision, whatever the job's state."""

        def apply(record: JobRecord) -> JobRecord | ReviewChange:
            image = image_of(record, variant)
            if image is None or not _remaking(image, regeneration):
                return ReviewChange(
                    DecisionOutcome.CONFLICT, f"variant {variant} is not being made again", record
                )
            return replaced(record, with_review(image, ImageReview(regenerations=regeneration - 1)))

        return self._write_review(job_id, apply, only_from=())

    def _write_review(
        self,
        job_id: str,
        apply: ReviewApply,
        *,
        only_from: Sequence[JobState] = (JobState.AWAITING_REVIEW,),
    ) -> ReviewChange:
        """Write ``apply``'s record, ending the review if nothing is left open, as one checked write.

        Whether the write ends the review (a transition, with its event) or not (an update) is
        planned on the record as read; if the record as written would go the other way (another
        decision landed in between), the write is refused and planned again.
        """
        for _ in range(REVIEW_WRITE_ATTEMPTS):
            record = self.get(job_id)
            if record is None:
                return ReviewChange(DecisionOutcome.NOT_FOUND, "no such job")
            planned = _ending(apply(record))
            if isinstance(planned, ReviewChange):
                return planned
            ends = planned.state is not record.state

            def change(current: JobRecord, ends: bool = ends) -> JobRecord | None:
                updated = _ending(apply(current))
                if isinstance(updated, ReviewChange) or (updated.state is not current.state) != ends:
                    return None
                return updated

            mode = Mode.TRANSITION if ends else Mode.UPDATE
            written = self.write_change(job_id, change, mode=mode, only_from=only_from)
            if written is not None:
                return ReviewChange(DecisionOutcome.APPLIED, f"the job is {written.state.value}", written)
        raise StoreConflict(f"job {job_id} kept changing; gave up after {REVIEW_WRITE_ATTEMPTS} attempts")


def _ending(applied: JobRecord | ReviewChange) -> JobRecord | ReviewChange:
    """``applied`` moved to the state its review ends in, if it ends; else just stamped."""
    if isinstance(applied, ReviewChange):
        return applied
    end = review_end(applied) if applied.state is JobState.AWAITING_REVIEW else None
    if end is None:
        return applied.model_copy(update={"updated_at": utcnow()})
    ended = transitioned(applied, end, {})
    assert ended is not None  # awaiting_review -> approved | rejected is always allowed
    return ended


def _remaking(image: StoredImage, regeneration: int) -> bool:
    review = image.review
    return (
        review is not None
        and review.status is ImageDecision.REGENERATING
        and review.regenerations == regeneration
    )


def _remake_refusal(record: JobRecord, variant: int, regeneration: int) -> ReviewChange | None:
    """Why remake ``regeneration`` of ``variant`` no longer applies to ``record``, or ``None``."""
    if record.state is not JobState.AWAITING_REVIEW:
        return ReviewChange(
            DecisionOutcome.CONFLICT, f"the job is {record.state.value}, not awaiting review", record
        )
    image = image_of(record, variant)
    if image is None:
        return ReviewChange(DecisionOutcome.NOT_FOUND, f"the job has no variant {variant}", record)
    if not _remaking(image, regeneration):
        return ReviewChange(
            DecisionOutcome.CONFLICT, f"variant {variant} no longer waits for remake {regeneration}", record
        )
    return None
