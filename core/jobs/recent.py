"""The job records a thread last read or wrote, with their versions, so its next write of the
same job can skip reading the record again (``JobStore.write_change``).

A worker reads a job's record (is a cancel asked?) and then writes it (succeeded), or writes it
twice in a row (a callback's claim, then its outcome): each write began with one more round trip
to Redis for the record it had just seen. A remembered ``(version, record)`` is only a guess: the
write script compares the version atomically and refuses a stale one (``-2``), after which the
writer reads again, as it does when nothing is remembered. A change that a remembered record
refuses is tried again on a fresh read too, so a stale guess can delay a write by one round trip
but never decide it. Records are kept as the JSON written or read, not as shared objects.

A terminal transition also brings back, from the same atomic write, whether its event's
callback is claimed and the job's request (:class:`Peek`): what the worker's inline callback
attempt reads next (``JobStore.claim_and_read`` with ``claim=False``), which then answers as of
that write, once, and only while the remembered record is still the one written (any later read
or write of the job by this thread replaces it). The claim itself stays an atomic ``HSETNX``.

Per thread (a job's steps run on one thread of the threads pool), at most
:data:`RECENT_PER_THREAD` jobs each. A job id is a fresh UUID that Redis never sees twice; an
erased job is forgotten here (``JobStore.erase``), so its id coming back with version 1 cannot
meet a remembered version 1 in this process.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

#: jobs remembered per thread (a thread runs one job at a time; a few cover its callbacks too)
RECENT_PER_THREAD = 8


class Peek(NamedTuple):
    """A write's look at one callback claim (``event:{type}``) and at the job's request (JSON)."""

    field: str
    claimed: bool
    request: str | None


class Remembered(NamedTuple):
    """One job's record as this thread last saw it, and the peek its last write took (if any)."""

    version: str
    record_json: str
    peek: Peek | None = None


class RecentRecords:
    """:class:`Remembered` per job id, per thread, the newest :data:`RECENT_PER_THREAD`."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _records(self) -> dict[str, Remembered]:
        records: dict[str, Remembered] | None = getattr(self._local, "records", None)
        if records is None:
            records = self._local.records = {}
        return records

    def remember(self, job_id: str, version: str, record_json: str, peek: Peek | None = None) -> None:
        records = self._records()
        records.pop(job_id, None)  # re-inserted last: the newest
        records[job_id] = Remembered(version, record_json, peek)
        while len(records) > RECENT_PER_THREAD:
            del records[next(iter(records))]

    def take_peek(self, job_id: str, field: str) -> tuple[str, str, Peek] | None:
        """The remembered ``(version, record JSON)`` with the peek its write took at ``field``,
        forgetting the peek (it answers once); ``None`` when there is none."""
        records = self._records()
        remembered = records.get(job_id)
        if remembered is None or remembered.peek is None or remembered.peek.field != field:
            return None
        records[job_id] = remembered._replace(peek=None)
        return remembered.version, remembered.record_json, remembered.peek

    def take(self, job_id: str) -> tuple[str, str] | None:
        """The remembered ``(version, record JSON)``, forgotten (a write remembers what it wrote)."""
        remembered = self._records().pop(job_id, None)
        return None if remembered is None else (remembered.version, remembered.record_json)

    def peek(self, job_id: str) -> tuple[str, str] | None:
        remembered = self._records().get(job_id)
        return None if remembered is None else (remembered.version, remembered.record_json)

    def forget(self, job_id: str) -> None:
        self._records().pop(job_id, None)
