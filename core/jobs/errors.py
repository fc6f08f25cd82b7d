"""The job store's typed failures: what a caller retries (Redis down, a record that kept
changing) and what it reports (no such job, a watch that ran out of time)."""

from __future__ import annotations

from core.contracts.codes import ErrorCode
from core.contracts.jobs import JobRecord
from core.errors import AtelierError


class StoreError(AtelierError):
    """Base of the status store's failures."""


class StoreUnavailable(StoreError):
    """Redis unreachable or timing out (retryable)."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STORE_UNAVAILABLE, message)


class JobNotFound(StoreError, LookupError):
    """No record for this job id (never created, or expired after ``job_record_ttl_s``)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(ErrorCode.JOB_NOT_FOUND, f"no job {job_id!r}")
        self.job_id = job_id


class IdempotencyConflict(StoreError):
    """The idempotency key already names a job created from another request (IETF
    ``Idempotency-Key`` draft: a reused key with a different payload is refused, not replayed)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            f"the idempotency key already names job {job_id}, created from another request",
        )
        self.job_id = job_id


class StoreConflict(StoreError):
    """A record kept changing under a compare-and-set; give up rather than loop forever."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STORE_CONFLICT, message)


class WatchTimeout(AtelierError, TimeoutError):
    """``watch`` reached its timeout before the job reached a terminal state."""

    def __init__(self, record: JobRecord, timeout: float) -> None:
        super().__init__(
            ErrorCode.WATCH_TIMEOUT, f"job {record.job_id} still {record.state} after {timeout:g} s"
        )
        self.record = record
