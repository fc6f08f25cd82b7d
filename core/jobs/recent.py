"""The job records a thread last read or wrote, with their versions, so its next write of the
same job can skip reading the record again (``JobStore.write_change``).

A worker reads a job's record (is a cancel asked?) and then writes it (succeeded), or writes it
twice in a row (a callback's claim, then its outcome): each write began with one more round trip
to Redis for the record it had just seen. A remembered ``(version, record)`` is only a guess: the
write script compares the version atomically and refuses a stale one (``-2``), after which the
writer reads again, as it does when nothing is remembered. A change that a remembered record
refuses is tried again on a fresh read too, so a stale guess can delay a write by one round trip
but never decide it. Records are kept as the JSON written or read, not as shared objects.

Per thread (a job's steps run on one thread of the threads pool), at most
:data:`RECENT_PER_THREAD` jobs each. A job id is a fresh UUID that Redis never sees twice; an
erased job is forgotten here (``JobStore.erase``), so its id coming back with version 1 cannot
meet a remembered version 1 in this process.
"""

from __future__ import annotations

import threading

#: jobs remembered per thread (a thread runs one job at a time; a few cover its callbacks too)
RECENT_PER_THREAD = 8


class RecentRecords:
    """``(version, record JSON)`` per job id, per thread, the newest :data:`RECENT_PER_THREAD`."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _records(self) -> dict[str, tuple[str, str]]:
        records: dict[str, tuple[str, str]] | None = getattr(self._local, "records", None)
        if records is None:
            records = self._local.records = {}
        return records

    def remember(self, job_id: str, version: str, record_json: str) -> None:
        records = self._records()
        records.pop(job_id, None)
        records[job_id] = (version, record_json)
        while len(records) > RECENT_PER_THREAD:
            del records[next(iter(records))]

    def take(self, job_id: str) -> tuple[str, str] | None:
        """The remembered ``(version, record JSON)``, forgotten (a write remembers what it wrote)."""
        return self._records().pop(job_id, None)

    def peek(self, job_id: str) -> tuple[str, str] | None:
        return self._records().get(job_id)

    def forget(self, job_id: str) -> None:
        self._records().pop(job_id, None)
