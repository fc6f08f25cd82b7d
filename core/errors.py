"""One root for every failure Atelier raises: :class:`AtelierError`, with an :class:`ErrorCode`
and whether the same call may succeed later.

``RetryableError``: a server down or restarting, a timeout; the worker retries the job with
backoff until its budget runs out. ``PermanentError``: retrying cannot help (an invalid request,
an unknown model version, a missing garment); the job fails now. The status store's, the
publisher's and the operator commands' errors are subclasses too, so a caller catches one type.
Messages are for operators and requesters: they never carry credentials.
"""

from __future__ import annotations

from core.contracts.codes import ErrorCode
from core.contracts.jobs import JobError

__all__ = ["AtelierError", "ErrorCode", "PermanentError", "RetryableError", "as_atelier_error"]


class AtelierError(Exception):
    """Base of Atelier's typed failures: ``code`` (machine-readable) and a message."""

    retryable: bool = False

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = ErrorCode(code)
        super().__init__(f"{self.code.value}: {message}")
        self.message = message

    def to_job_error(self) -> JobError:
        """The ``JobError`` a job record and a ``job.failed`` callback carry."""
        return JobError(code=self.code, message=self.message, retryable=self.retryable)


class RetryableError(AtelierError):
    """Transient: retry later (with backoff)."""

    retryable = True


class PermanentError(AtelierError):
    """Retrying cannot help: fail with this reason."""

    retryable = False


class VersionRefused(PermanentError):
    """The version is not one Triton has loaded and ready (or the model is not ours)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.VERSION_REFUSED, message)

    def __str__(self) -> str:
        return self.message


def as_atelier_error(error: BaseException) -> AtelierError:
    """``error`` as a typed failure: itself, or ``internal_error`` for anything untyped (a bug:
    retrying would fail the same way)."""
    if isinstance(error, AtelierError):
        return error
    return PermanentError(ErrorCode.INTERNAL_ERROR, f"{type(error).__name__}: {error}")
