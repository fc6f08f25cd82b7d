"""The boundary clients one worker process uses, created once per process.

A job's code receives a :class:`WorkerContext` instead of building clients itself: the status
store, inference, the image store, the callback sender, and ``notify``, which queues a callback
delivery, each typed by its protocol (``worker.boundaries``). Unit tests build one from the
shipped in-memory stand-ins (``worker.stubs.stub_context``).

A worker process gets its own from :func:`current`, built by the factory given to
:func:`configure` (``worker.signals`` gives the real clients; a benchmark may give its own, e.g.
the in-process model of ``bench.perf.inprocess_app``). Celery's ``worker_process_init`` builds it
eagerly, so the first job does not pay for connections; a thread or solo pool builds it at
``worker_init`` (``worker.signals``), or on first use, once (a lock: the pool's threads share it).
:func:`use` installs one already built, for this process only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from core.jobs import JobStore
from core.model_registry import ModelRegistry
from core.worker_settings import WorkerSettings
from quality.settings import GateSettings
from worker.boundaries import Callbacks, Images, Inference, Notify, QualityGate, StatusStore
from worker.callbacks import CallbackSender
from worker.gating import JudgeGate
from worker.inference import InferenceClient
from worker.storage import ImageStore

log = logging.getLogger(__name__)

#: a job's images are put to S3 this many at a time (a job has at most 8): a put mostly waits on
#: S3, about 40% of a listing job's time when sequential (docs/benchmarks/README.md)
UPLOAD_CONCURRENCY = 4
#: the upload threads of one process, whatever its pool's concurrency: urllib3 keeps this many
#: connections to S3 (``worker.storage``), so more threads would only open and drop connections
MAX_UPLOAD_THREADS = 10
#: from this many jobs in flight per process, each job puts its images in its own thread: the
#: other jobs fill its waits on S3, and upload threads would only add handoffs and turns at the
#: GIL (one process of 8 jobs: 13% less orchestration CPU per image without them, docs/benchmarks)
PUTS_IN_JOB_THREAD_FROM = 4


def upload_threads(jobs_in_flight: int = 1) -> ThreadPoolExecutor | None:
    """The process's upload threads: :data:`UPLOAD_CONCURRENCY` per job it runs at once, at most
    :data:`MAX_UPLOAD_THREADS`; none (``None``) from :data:`PUTS_IN_JOB_THREAD_FROM` jobs in
    flight (the threads pool's ``worker_concurrency``)."""
    if jobs_in_flight >= PUTS_IN_JOB_THREAD_FROM:
        return None
    workers = min(MAX_UPLOAD_THREADS, UPLOAD_CONCURRENCY * jobs_in_flight)
    return ThreadPoolExecutor(workers, thread_name_prefix="atelier-upload")


@dataclass
class WorkerContext:
    """Everything a job talks to. ``bucket()`` is the image store, its bucket made sure of once;
    ``uploads`` the threads that put a job's images while the next one is encoded (``None``: the
    job's own thread puts them, see :func:`upload_threads`)."""

    settings: WorkerSettings
    store: StatusStore
    inference: Inference
    images: Images
    callbacks: Callbacks
    notify: Notify
    #: the quality gate on listing images; ``None``: off (``ATELIER_GATE_ENABLED=false``)
    gate: QualityGate | None = None
    #: the model versions' manifests; ``None``: the process's own on the status store's Redis
    #: (``worker.model_versions.registry``)
    models: ModelRegistry | None = None
    uploads: ThreadPoolExecutor | None = field(default_factory=upload_threads, repr=False)
    _bucket_ready: bool = field(default=False, repr=False)

    @classmethod
    def create(
        cls, settings: WorkerSettings, *, notify: Notify, inference: Inference | None = None
    ) -> WorkerContext:
        """Real clients from ``settings``; no connection is opened until first use.

        ``inference``: another model server than Triton (default ``InferenceClient``)."""
        return cls(
            settings=settings,
            store=JobStore(settings),
            inference=inference if inference is not None else InferenceClient(settings),
            images=ImageStore(settings),
            callbacks=CallbackSender(settings),
            notify=notify,
            gate=default_gate(),
            uploads=upload_threads(jobs_in_flight(settings)),
        )

    def bucket(self) -> Images:
        """The image store, after creating its bucket if missing (once per process).

        Raises the store's typed errors, so a job that cannot reach S3 retries like any other.
        """
        if not self._bucket_ready:
            self.images.ensure_bucket()
            self._bucket_ready = True
        return self.images

    def close(self) -> None:
        if self.uploads is not None:
            self.uploads.shutdown(wait=True)
        self.inference.close()
        self.callbacks.close()
        self.store.close()


def jobs_in_flight(settings: WorkerSettings) -> int:
    """Jobs one process runs at once: the threads pool's concurrency, else one."""
    return settings.worker_concurrency if settings.worker_pool == "threads" else 1


def default_gate() -> QualityGate | None:
    """The gate with thresholds from ``ATELIER_GATE_*``, or ``None`` when it is turned off."""
    settings = GateSettings()
    return JudgeGate(settings) if settings.enabled else None


#: builds a process's context: called on first use, and again in a forked child
ContextFactory = Callable[[], WorkerContext]

_factory: ContextFactory | None = None
_current: WorkerContext | None = None
_pid: int | None = None
#: the threads pool's jobs share one context: only one of them builds it
_building = threading.Lock()


def configure(factory: ContextFactory) -> None:
    """Say how :func:`current` builds each process's context (``worker.signals`` does, at import)."""
    global _factory
    _factory = factory


def use(context: WorkerContext) -> None:
    """Make ``context`` this process's context (a forked child still builds its own)."""
    global _current, _pid
    _current, _pid = context, os.getpid()


def current() -> WorkerContext:
    """This process's context, built on first use (and again after a fork)."""
    global _current, _pid
    built = _current
    if built is not None and _pid == os.getpid():
        return built
    with _building:
        if _current is None or _pid != os.getpid():
            if _factory is None:
                raise RuntimeError("worker.context.configure() was not called (import worker.app first)")
            _current, _pid = _factory(), os.getpid()
        return _current


def warm_up() -> None:
    """Build this process's context and make sure of the bucket; a failure is only logged
    (S3 may come up later: each job makes sure of the bucket again until it exists)."""
    context = current()
    try:
        context.bucket()
    except Exception as error:
        log.warning("image bucket not ready yet: %s", error)


def close() -> None:
    """Close this process's clients (at pool process shutdown)."""
    global _current
    if _current is not None and _pid == os.getpid():
        _current.close()
    _current = None
