"""The job state machine, as rules every store shares (Redis, memory): which changes a record
accepts, and what a change writes. A store only supplies :meth:`JobStateMachine.get` and one
write primitive, :meth:`JobStateMachine.write_change`, that applies :func:`accepts` atomically.

Allowed: ``queued -> running | canceled | failed``, ``running -> running | succeeded |
failed``; a terminal state never changes. Entering ``running`` counts an attempt (``running ->
running`` is a redelivery) and sets ``started_at`` on the first one; entering a terminal state
sets ``finished_at``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.contracts.jobs import JobEventType, JobRecord, JobState, StoredImage
from core.jobs.errors import JobNotFound

#: every state change the store accepts; anything else (and any change of a terminal state) is refused
ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED}),
}

#: ``ALLOWED_TRANSITIONS`` as the JSON the Redis write script decodes (``{from: {to: 1}}``)
ALLOWED_TRANSITIONS_JSON = json.dumps(
    {src.value: {dst.value: 1 for dst in sorted(dsts)} for src, dsts in ALLOWED_TRANSITIONS.items()}
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
    """Why a cancel left ``record`` as it is, or ``None`` when the job is canceled."""
    if record.state is JobState.CANCELED:
        return None
    if record.state is JobState.RUNNING:
        return "the job is already running: a cancel does not interrupt it; it ends succeeded or failed"
    if record.state is JobState.QUEUED:
        return "the job is still queued (it changed while canceling); try again"
    return f"the job already ended {record.state.value}"


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
        to_state = JobState(to_state)
        unknown = set(fields) - MUTABLE_FIELDS
        if unknown:
            raise TypeError(f"transition cannot set {sorted(unknown)}; settable: {sorted(MUTABLE_FIELDS)}")

        def change(record: JobRecord) -> JobRecord | None:
            return transitioned(record, to_state, fields, only_from=only_from, only_if=only_if)

        allowed = tuple(only_from) if only_from is not None else ()
        return self.write_change(job_id, change, mode=Mode.TRANSITION, only_from=allowed) is not None

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
        """Cancel a queued job now; any other state comes back unchanged.

        A running job is not interrupted (it ends ``succeeded`` or ``failed``); see
        :func:`cancel_refusal` for the reason to show. Raises :class:`JobNotFound`.
        """
        record = self.require(job_id)
        if record.state is JobState.QUEUED:
            self.transition(job_id, JobState.CANCELED)
            record = self.require(job_id)
        return record
