"""The real services one fault scenario runs on, and how it reads back what happened.

A :class:`Rig` is an ``embedded.stack.Stack``: a SeaweedFS S3 server, a callback receiver (on a
fixed port, so it can be stopped and come back at the same URL), a private namespace on the
shared RabbitMQ and Redis (or on the broker a scenario names in ``overrides``), and the Celery
worker processes, started as an operator starts them. Triton is passed in: it takes longest to
start; the one scenario that kills it starts its own. ``s3`` is kept so a scenario can stop and
restart it (same ports and data). The rig adds the faults (killing pool processes and worker
process groups) and the scenarios' requests and read-backs.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import psutil

from core.contracts.jobs import JobRecord
from core.worker_settings import WorkerSettings, new_webhook_secret
from embedded.receiver import CallbackReceiver, Received
from embedded.s3 import S3Server
from embedded.stack import Pool, Stack
from embedded.workers import WORKER_APP, CeleryWorker
from producer.client import Producer
from serving_contract.palette import PALETTE
from serving_contract.taxonomy import CATEGORIES
from worker.encoding import EXTENSIONS
from worker.storage import ImageStore

#: every event a job can send
ALL_EVENTS = ["job.queued", "job.started", "job.succeeded", "job.failed", "job.canceled"]
#: the retry backoff of every scenario's jobs unless its ``overrides`` say otherwise (compressed)
RETRY_BACKOFF_BASE_S = 0.5


def pool_children(pid: int) -> list[int]:
    """The child processes of ``pid`` (a prefork worker's pool processes)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


@dataclass
class Rig:
    """Services, settings and workers for one scenario run; a context manager.

    Parameters (keyword-only): ``tag`` (names the namespace), ``workdir`` (logs, S3 data),
    ``triton_grpc_url``, ``answer`` (the receiver's status code per POST), ``overrides``
    (more worker settings, e.g. a compressed callback retry schedule).
    """

    tag: str
    workdir: Path
    triton_grpc_url: str
    answer: Callable[[Received], int] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    secret: str = field(default_factory=new_webhook_secret)

    def __post_init__(self) -> None:
        self.stack = Stack(
            tag=self.tag,
            workdir=self.workdir,
            triton_grpc_url=self.triton_grpc_url,
            answer=self.answer,
            settings={
                "callback_secret": self.secret,
                "job_retry_backoff_base_s": RETRY_BACKOFF_BASE_S,
                **self.overrides,
            },
        )

    def __enter__(self) -> Rig:
        self.stack.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stack.__exit__(*exc)

    @property
    def settings(self) -> WorkerSettings:
        return self.stack.settings

    @property
    def s3(self) -> S3Server:
        assert self.stack.s3 is not None
        return self.stack.s3

    @property
    def receiver(self) -> CallbackReceiver:
        assert self.stack.receiver is not None
        return self.stack.receiver

    @property
    def producer(self) -> Producer:
        return self.stack.producer

    @property
    def workers(self) -> dict[str, CeleryWorker]:
        return self.stack.workers

    @cached_property
    def images(self) -> ImageStore:
        return ImageStore(self.settings)

    # --- workers ---
    def start_workers(
        self, roles: dict[str, int], env: Mapping[str, str] | None = None, *, app: str = WORKER_APP
    ) -> None:
        """Start one worker per role (``listing``, ``callbacks``) with its concurrency, Celery
        ``app`` and ``env`` on top of its settings; wait for all."""
        pools = [Pool(role, concurrency=n, app=app, env=dict(env or {})) for role, n in roles.items()]
        self.stack.start_workers(*pools)

    def restart_worker(self, role: str, env: dict[str, str] | None = None) -> None:
        """Stop ``role``'s worker (warm shutdown) and start a new one, with ``env`` on top of its settings
        (e.g. ``ATELIER_JOB_RETRY_ATTEMPTS``); wait until it is ready."""
        self.stack.restart_worker(role, env=env)

    def kill_pool_child(self, role: str) -> bool:
        """SIGKILL the pool processes of ``role``'s worker (the parent replaces them)."""
        pid = self.workers[role].pid
        children = pool_children(pid) if pid is not None else []
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        return bool(children)

    def kill_worker_group(self, role: str) -> None:
        """SIGKILL ``role``'s worker and its pool (its process group), then start a new one."""
        worker = self.workers[role]
        if worker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
        self.stack.restart_worker(role)  # reaps the dead process first

    # --- jobs ---
    def listing(
        self,
        i: int,
        requester: str,
        events: list[str] | None = None,
        *,
        variants: int | None = None,
        size: int = 64,
    ) -> dict[str, Any]:
        """A listing request (default: small, 1-2 variants of 64 px) whose callbacks go to
        ``requester``."""
        return {
            "kind": "listing",
            "requester": requester,
            "listing_id": f"SKU-FAULT-{i}",
            "attributes": {
                "category": CATEGORIES[i % len(CATEGORIES)].slug,
                "colour": PALETTE[i % len(PALETTE)].name,
            },
            "variants": variants or 1 + i % 2,
            "seed": 5000 + i,
            "output": {"format": "png", "size": size},
            "callback": {"url": self.receiver.url_for(requester), "events": events or ALL_EVENTS},
        }

    def records(self, job_ids: Iterable[str]) -> dict[str, JobRecord]:
        return {job_id: self.producer.status(job_id) for job_id in job_ids}

    def wait_terminal(self, job_ids: Iterable[str], timeout_s: float) -> dict[str, JobRecord]:
        """Every job's record once all have ended, or at ``timeout_s`` (some may not have)."""
        return self.producer.wait_all(job_ids, timeout_s)

    def object_sets(self, request: dict[str, Any], record: JobRecord) -> int:
        """How many sets of result objects the job has in S3: 1 when exactly its keys are there."""
        kind = request["kind"]
        ext = EXTENSIONS[request["output"]["format"]]
        keys = [f"{kind}/{record.job_id}/{v}.{ext}" for v in range(request.get("variants", 1))]
        stored = self.images.list_keys(f"{kind}/{record.job_id}/")
        if not stored:
            return 0
        if stored == keys and [image.key for image in record.results] == keys:
            return 1
        return 2  # anything else: extra or mismatched objects
