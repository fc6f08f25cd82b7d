"""Typed failures: the worker's retry policy reads the class, the job record keeps the ``code``.

``RetryableError``: the same call may succeed later (a server down or restarting, a timeout);
the task retries with backoff until its budget runs out. ``PermanentError``: retrying cannot
help (an invalid request, an unknown model version, a missing garment); the job fails now.
Messages are for operators and requesters: they never carry credentials.
"""

from __future__ import annotations

from billiard.exceptions import SoftTimeLimitExceeded

from producer.contracts.jobs import JobError
from producer.jobs_store import StoreUnavailable

#: Triton unreachable, unavailable or overloaded (retryable)
INFERENCE_UNAVAILABLE = "inference_unavailable"
#: Triton did not answer within the client timeout (retryable)
INFERENCE_TIMEOUT = "inference_timeout"
#: Triton answered with an internal error (retryable: it may be a transient fault)
INFERENCE_FAILED = "inference_failed"
#: Triton refused the inputs: INVALID_ARGUMENT names the tensor and rule (permanent)
INFERENCE_REJECTED = "inference_rejected"
#: the model or the requested version is not served (permanent)
MODEL_NOT_FOUND = "model_version_not_found"
#: S3 unreachable or answering 5xx (retryable)
STORAGE_UNAVAILABLE = "storage_unavailable"
#: S3 refused the credentials or the request (permanent until an operator fixes the config)
STORAGE_REJECTED = "storage_rejected"
#: an object that should exist does not (permanent)
OBJECT_NOT_FOUND = "object_not_found"
#: a try-on names a listing image that does not exist (permanent)
GARMENT_NOT_FOUND = "garment_not_found"
#: a try-on names a listing job that has not finished yet (retryable)
GARMENT_NOT_READY = "garment_not_ready"
#: a try-on names a listing of shoes or bags, which cannot be worn (permanent)
GARMENT_NOT_WEARABLE = "garment_not_wearable"
#: the message's request does not validate (permanent; the producer never sends one)
INVALID_REQUEST = "invalid_request"
#: the job ran past the task's soft time limit (permanent: a retry would run as long)
JOB_TIME_LIMIT = "job_time_limit"
#: the job's message was redelivered more often than ``job_retry_attempts`` allows
ATTEMPTS_EXHAUSTED = "attempts_exhausted"
#: the job stayed ``running`` past its lease with no live worker, and its attempts are used up
JOB_STUCK = "job_stuck"
#: the broker refused a callback message (retryable)
CALLBACK_ENQUEUE_FAILED = "callback_enqueue_failed"
#: the status store (Redis) did not answer (retryable)
STORE_UNAVAILABLE = "store_unavailable"
#: an exception the worker has no type for: a bug (permanent)
INTERNAL_ERROR = "internal_error"


class WorkerError(Exception):
    """Base of the worker's typed failures: ``code`` (machine-readable) and a message."""

    retryable: bool = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_job_error(self) -> JobError:
        """The ``JobError`` a job record and a ``job.failed`` callback carry."""
        return JobError(code=self.code, message=self.message, retryable=self.retryable)


class RetryableError(WorkerError):
    """Transient: retry the job later (with backoff)."""

    retryable = True


class PermanentError(WorkerError):
    """Retrying cannot help: fail the job with this reason."""

    retryable = False


def as_worker_error(error: BaseException) -> WorkerError:
    """``error`` as a typed failure: itself, ``store_unavailable`` for Redis, ``job_time_limit``
    for Celery's soft time limit, or ``internal_error`` for anything untyped (a bug: retrying
    would fail the same way)."""
    if isinstance(error, WorkerError):
        return error
    if isinstance(error, StoreUnavailable):
        return RetryableError(STORE_UNAVAILABLE, str(error))
    if isinstance(error, SoftTimeLimitExceeded):
        return PermanentError(JOB_TIME_LIMIT, "the job ran past the task's soft time limit")
    return PermanentError(INTERNAL_ERROR, f"{type(error).__name__}: {error}")
