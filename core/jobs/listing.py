"""One requester's jobs, newest first, a page at a time: what ``GET /v1/jobs`` and
``Producer.list_jobs`` read.

Both stores keep a per-requester index of job ids by creation time (Redis: a sorted set written
by ``scripts/create.lua``). A page walks that index from an opaque cursor (the position of the
last entry it looked at), reads each record and keeps those matching the filters. A page looks at
no more than ``scan_limit`` entries, so a filter that matches rarely returns a short (even
empty) page with a cursor to go on from, instead of reading the whole index in one call.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from core.contracts.codes import ErrorCode
from core.contracts.jobs import JobRecord, JobState
from core.errors import AtelierError

#: most index entries one page looks at, matching or not
DEFAULT_SCAN_LIMIT: Final = 1000


class IndexEntry(NamedTuple):
    """A job's place in its requester's index: newest first, ties by job id descending."""

    created: float  #: epoch seconds the job was created
    job_id: str

    def comes_after(self, other: IndexEntry) -> bool:
        """Whether this entry is listed after ``other`` (older, or as old with a smaller id)."""
        return (self.created, self.job_id) < (other.created, other.job_id)


class InvalidCursor(AtelierError, ValueError):
    """A cursor this module did not write (or one that was altered)."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, "the cursor is not one a previous page returned")


def encode_cursor(entry: IndexEntry) -> str:
    """An opaque, URL-safe cursor that resumes after ``entry``."""
    return base64.urlsafe_b64encode(f"{entry.created!r}|{entry.job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> IndexEntry:
    """The entry a cursor resumes after; raises :class:`InvalidCursor`."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = text.split("|", 1)
        entry = IndexEntry(float(created), job_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
    if not job_id or len(job_id) > 64 or entry.created != entry.created:  # NaN
        raise InvalidCursor()
    return entry


class IndexedStore(Protocol):
    """What a page needs from a store (``JobStore`` and ``MemoryJobStore`` both offer it)."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def requester_index(
        self, requester: str, *, before: IndexEntry | None = None, count: int = 100
    ) -> list[IndexEntry]: ...


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobRecord]
    #: where the next page starts, or ``None`` when the index has no more entries
    next_cursor: str | None


def list_jobs(
    store: IndexedStore,
    requester: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    subject: str | None = None,
    state: JobState | None = None,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
) -> JobPage:
    """Up to ``limit`` of ``requester``'s jobs (newest first) matching ``subject`` and
    ``state``, after ``cursor``; raises :class:`InvalidCursor`. Expired records are skipped."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    position = decode_cursor(cursor) if cursor is not None else None
    jobs: list[JobRecord] = []
    scanned = 0
    while len(jobs) < limit and scanned < scan_limit:
        count = min(max(limit, 50), scan_limit - scanned)
        batch = store.requester_index(requester, before=position, count=count)
        for entry in batch:
            scanned += 1
            position = entry
            record = store.get(entry.job_id)
            if record is not None and record.requester == requester and _matches(record, subject, state):
                jobs.append(record)
                if len(jobs) == limit:
                    break
        if len(batch) < count:
            break
    if position is None or not store.requester_index(requester, before=position, count=1):
        return JobPage(jobs, None)
    return JobPage(jobs, encode_cursor(position))


def _matches(record: JobRecord, subject: str | None, state: JobState | None) -> bool:
    return (subject is None or record.subject == subject) and (state is None or record.state is state)
