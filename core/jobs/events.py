"""A job's events as the store records them: one :class:`~core.contracts.jobs.JobEvent` per
state change, kept beside the record so that a reader who was away (a reconnecting
``GET /v1/jobs/{id}/events`` client) gets every one it missed, in order, none twice.

Each store appends the event in the same atomic write as the state change it reports (Redis:
a per-job stream, ``core.jobs.keys``; memory: a list). An event's ``id`` is the record's
``version`` after that write: it grows with every write of the record, so ids increase, with
gaps where a write changed no state (results, callback notes). A stream holds at most
:data:`EVENTS_MAX_LEN` events and lives as long as its record.

:func:`build_event` is also what a callback sends (``worker.notifications``), so a webhook and
a stream report a change with the same body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.contracts.jobs import (
    EVENT_FOR_STATE,
    ImageDecision,
    ImageUnderReview,
    JobEvent,
    JobEventType,
    JobRecord,
    StoredImage,
)

#: most events one job's stream keeps (the oldest go first): queued, a start per delivery, the end
EVENTS_MAX_LEN = 64
#: the state each event reports (the inverse of ``EVENT_FOR_STATE``)
STATE_FOR_EVENT = {event: state for state, event in EVENT_FOR_STATE.items()}
#: the stream entry's field holding the event (JSON)
EVENT_FIELD = "event"


@dataclass(frozen=True)
class StoredEvent:
    """One recorded event of a job and its ``id`` (the record's version after the change)."""

    id: int
    event: JobEvent

    @property
    def terminal(self) -> bool:
        """Whether this event ends the job (no later event follows it)."""
        return STATE_FOR_EVENT[self.event.type].terminal


def build_event(record: JobRecord, event: JobEventType) -> JobEvent:
    """The ``JobEvent`` for ``event`` of the job in ``record``: state, links or error, no bytes.

    ``data.state`` is the state the event reports (``job.started`` says ``running`` even when
    the job has finished by the time it is sent); ``timestamp`` is when the job entered it.
    """
    state = STATE_FOR_EVENT[event]
    data: dict[str, Any] = {
        "job_id": record.job_id,
        "kind": record.kind.value,
        "state": state.value,
        "requester": record.requester,
        "subject": record.subject,
    }
    if event is JobEventType.STARTED:
        data["attempts"] = record.attempts
    if event in (JobEventType.SUCCEEDED, JobEventType.APPROVED):
        data["model"] = record.model
        data["model_version"] = record.model_version
        data["seed"] = record.seed
        data["results"] = [image.model_dump(mode="json") for image in record.catalog_images()]
    if event is JobEventType.APPROVED:
        data["rejected"] = [_unlinked(image) for image in record.results if not _approved(image)]
    if event in (JobEventType.REVIEW_REQUIRED, JobEventType.REJECTED):
        data["images"] = [_unlinked(image) for image in record.results]
    if event is JobEventType.FAILED and record.error is not None:
        data["error"] = record.error.model_dump(mode="json")
    when = {
        JobEventType.QUEUED: record.created_at,
        JobEventType.STARTED: record.started_at,
    }.get(event, record.finished_at)
    return JobEvent(type=event, timestamp=when or record.updated_at or datetime.now(UTC), data=data)


def _approved(image: StoredImage) -> bool:
    return image.review is not None and image.review.status is ImageDecision.APPROVED


def _unlinked(image: StoredImage) -> dict[str, Any]:
    """An image as events show it before approval: its scores and decision, never a link."""
    unlinked = ImageUnderReview(variant=image.variant, gate=image.gate, review=image.review)
    return unlinked.model_dump(mode="json")


def change_event(record: JobRecord) -> JobEvent:
    """The event a transition into ``record``'s state records (``running -> running``, a
    redelivery, records another ``job.started`` with the new attempt count)."""
    return build_event(record, EVENT_FOR_STATE[record.state])


def stream_id(event_id: int) -> str:
    """The Redis stream entry id of event ``event_id`` (``<version>-0``)."""
    return f"{event_id}-0"


def parse_entries(entries: Any) -> list[StoredEvent]:
    """An ``XRANGE`` reply (``[(entry id, {field: value})]``, decoded) as events."""
    found: Sequence[tuple[str, dict[str, str]]] = entries or []
    return [
        StoredEvent(int(entry_id.split("-", 1)[0]), JobEvent.model_validate_json(fields[EVENT_FIELD]))
        for entry_id, fields in found
    ]


def parse_read(reply: Any) -> list[StoredEvent]:
    """An ``XREAD`` reply of one stream (``[(key, entries)]``, or nothing on a timeout)."""
    streams: Sequence[tuple[str, Any]] = reply or []
    return [event for _, entries in streams for event in parse_entries(entries)]
