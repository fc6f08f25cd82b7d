"""Two ``JobStore`` instances on one private prefix (a worker's and another process's), and a
queued job to work on: for the status-store tests that follow one job across processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.contracts.jobs import JobKind, JobRecord, JobState
from core.jobs import JobStore, utcnow
from tests.redis_namespace import private_namespace


@contextmanager
def two_stores() -> Iterator[tuple[JobStore, JobStore]]:
    """A worker's store (on the namespace's client) and another process's, on one private prefix."""
    with private_namespace() as (settings, client):
        yield JobStore(settings, client=client), JobStore(settings)


def queued_job(store: JobStore, request: dict[str, Any]) -> str:
    """A new queued listing job with ``request`` stored beside it; its id."""
    now = utcnow()
    record = JobRecord(
        job_id=str(uuid.uuid4()),
        kind=JobKind.LISTING,
        requester="shop-eu",
        subject="listing-1",
        state=JobState.QUEUED,
        created_at=now,
        updated_at=now,
    )
    job_id, _ = store.create(record, request=request)
    return job_id
