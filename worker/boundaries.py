"""What a job talks to, as protocols: the status store, inference, the quality gate, the image
store, and the two halves of notifying (queue a callback; deliver one).
``worker.context.WorkerContext`` holds one of each; the real ones are ``core.jobs.JobStore``,
``worker.inference.InferenceClient``, ``worker.gating.JudgeGate``, ``worker.storage.ImageStore``,
``worker.app``'s ``enqueue_callback`` and ``worker.callbacks.CallbackSender``. The in-memory ones
that unit tests and benchmarks use instead ship beside them: ``core.jobs.MemoryJobStore`` and
``worker.stubs``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from core.contracts.jobs import JobEvent, JobEventType, JobKind, JobRecord, JobState, StoredImage
from quality.verdict import Verdict
from worker.callbacks import DeliveryOutcome
from worker.inference import Generated


class JobRecords(Protocol):
    """The job records and their state machine, as the pipeline and the callback task use them."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def recent(self, job_id: str) -> JobRecord | None:
        """The record as this thread last read or wrote it, without a round trip (``None``: none)."""

    def require(self, job_id: str) -> JobRecord: ...

    def get_request(self, job_id: str) -> dict[str, Any] | None: ...

    def transition(
        self,
        job_id: str,
        to_state: JobState | str,
        *,
        only_from: Collection[JobState] | None = None,
        only_if: Callable[[JobRecord], bool] | None = None,
        **fields: Any,
    ) -> bool: ...

    def transition_record(
        self,
        job_id: str,
        to_state: JobState | str,
        *,
        only_from: Collection[JobState] | None = None,
        only_if: Callable[[JobRecord], bool] | None = None,
        **fields: Any,
    ) -> JobRecord | None: ...

    def record_callback(self, job_id: str, event: JobEventType | str, outcome: str) -> bool: ...

    def claim_event(self, job_id: str, event: JobEventType | str) -> bool: ...

    def claim_and_read(
        self, job_id: str, event: JobEventType | str, *, claim: bool = True
    ) -> tuple[bool, JobRecord | None, dict[str, Any] | None]: ...

    def event_claimed(self, job_id: str, event: JobEventType | str) -> bool: ...

    def close(self) -> None: ...


class JobLeases(Protocol):
    """The workers' leases and the indexes the stuck-job sweeper reads."""

    def take_lease(
        self, job_id: str, ttl_s: float, *, holder: str = "worker", only_new: bool = False
    ) -> bool: ...

    def lease_holder(self, job_id: str) -> str | None: ...

    def release_lease(self, job_id: str, *, holder: str) -> bool: ...

    def running_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]: ...

    def forget_running(self, job_id: str) -> None: ...

    def queued_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]: ...

    def forget_queued(self, job_id: str) -> None: ...

    def count_requeue(self, job_id: str) -> int: ...

    def requeue_count(self, job_id: str) -> int: ...


class StatusStore(JobRecords, JobLeases, Protocol):
    """The whole status store a worker process uses (``core.jobs.JobStore``, ``MemoryJobStore``)."""

    def start_attempt(
        self, job_id: str, *, only_from: JobState, lease_s: float, holder: str = "worker"
    ) -> bool: ...


class Inference(Protocol):
    """The two generators (``worker.inference.InferenceClient`` serves them from Triton)."""

    def generate_products(
        self,
        categories: Sequence[int],
        colours: Sequence[int],
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
        patterns: Sequence[int] | None = None,
    ) -> Generated:
        """One product image per (category, colour, seed) and pattern, for a version that has
        patterns (``None``: no ``PATTERN`` input): uint8 ``[N, 32, 32, 3]``."""
        ...

    def generate_tryon(
        self,
        measurements: np.ndarray | Sequence[Sequence[float]],
        sizes: Sequence[int],
        categories: Sequence[int],
        garments: np.ndarray,
        seeds: Sequence[int],
        *,
        version: int | str | None = None,
    ) -> Generated:
        """One try-on image per row: uint8 ``[N, 64, 64, 3]``."""
        ...

    def judge_products(self, images: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class QualityGate(Protocol):
    """The automatic checks of a listing job's images (``worker.gating.JudgeGate``)."""

    @property
    def max_tries(self) -> int: ...

    def judge(
        self,
        images: np.ndarray,
        probabilities: np.ndarray,
        *,
        category: int | None,
        colour: int | tuple[int, int, int],
        pattern: str | None = None,
    ) -> list[Verdict]:
        """``category``: the judge's index of the requested category, ``None`` when the judge does
        not know it (not judged); ``colour``: a palette index or the version's colour as RGB;
        ``pattern``: the pattern's name for a version with patterns (the colour check allows for it)."""
        ...


class Images(Protocol):
    """The bucket a job's images go to (``worker.storage.ImageStore``)."""

    def ensure_bucket(self) -> None: ...

    def put_image(
        self, key: str, data: bytes, content_type: str, metadata: Mapping[str, Any], *, variant: int
    ) -> StoredImage: ...

    def get_listing_image(self, job_id: str, variant: int) -> bytes: ...

    def remove_job_images(self, kind: JobKind | str, job_id: str) -> int: ...


class Notify(Protocol):
    """Has one callback event delivered: ``notify(job_id, event)`` (the worker's makes a terminal
    event's first attempt at once and queues the rest, ``worker.notifications``)."""

    def __call__(self, job_id: str, event: JobEventType, /) -> None: ...


class Callbacks(Protocol):
    """Delivers a signed event to a receiver (``worker.callbacks.CallbackSender``)."""

    def deliver(
        self,
        url: str,
        event: JobEvent,
        *,
        requester: str,
        msg_id: str | None = None,
        timeout_s: float | None = None,
    ) -> DeliveryOutcome: ...

    def next_delay(self, attempt: int, retry_after_s: float | None = None) -> float | None: ...

    def close(self) -> None: ...
