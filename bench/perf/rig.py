"""The services the performance benchmarks share, and one pipeline run's private namespace.

:class:`Environment` is started once per ``python -m bench.perf`` run: the real Triton
(``embedded/triton.py``, the committed repository or its ``KIND_GPU`` copy), a SeaweedFS S3
server and a callback receiver. A benchmark that needs Triton with other settings (dynamic
batching off) starts a variant with :meth:`Environment.triton_variant`.

:class:`PipelineRig` is one run of the pipeline on the shared RabbitMQ and Redis: a private
exchange, queues and key prefix (``bench.faults.rig.namespace``), the producer, and Celery
workers started as an operator starts them (``embedded/workers.py``), of the real app
(``worker.app``) or of the in-process alternative (``bench.perf.inprocess_app``). It reads
job records back and measures each worker's processes (RSS, CPU time) with psutil.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from kombu import Connection

from core.contracts.jobs import JobRecord
from embedded.namespace import remove_namespace, worker_values
from embedded.process import free_port
from embedded.receiver import CallbackReceiver
from embedded.s3 import S3Server
from embedded.triton import DEFAULT_REPOSITORY, TritonServer
from embedded.workers import CeleryWorker
from producer.client import Producer
from serving_contract.palette import PALETTE
from serving_contract.taxonomy import CATEGORIES, wearable_categories
from worker.settings import WorkerSettings, new_webhook_secret

#: the S3 credentials of the benchmark's private SeaweedFS server
S3_ACCESS, S3_SECRET = "atelier-perf", "atelier-perf-secret-0123456789abcdef"
#: the events a benchmark job subscribes to: what a catalog system or a try-on UI waits for
EVENTS = ["job.succeeded", "job.failed"]
#: Celery app of the in-process alternative (the model in each worker process, no Triton)
INPROCESS_APP = "bench.perf.inprocess_app"
#: Celery app of the real worker
TRITON_APP = "worker.app"
#: a body in the middle of every measurement range (cm, kg)
BODY = {"height": 172.0, "weight": 70.0, "chest": 96.0, "waist": 82.0, "hips": 98.0}


class AppWorker(CeleryWorker):
    """A :class:`CeleryWorker` of another Celery app (``-A app``) than ``worker.app``, optionally
    at a lower CPU priority (``nice``: what a bulk pool gets beside an interactive one)."""

    def __init__(self, *, app: str = TRITON_APP, nice: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.nice = nice

    def command(self) -> list[str]:
        argv = super().command()
        argv[argv.index("-A") + 1] = self.app
        return ["nice", "-n", str(self.nice), *argv] if self.nice else argv


def without_dynamic_batching(source: Path, target: Path) -> Path:
    """Copy the model repository with every ``dynamic_batching { ... }`` block removed."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    for config in target.glob("*/config.pbtxt"):
        config.write_text(re.sub(r"dynamic_batching \{[^}]*\}\n", "", config.read_text()))
    return target


@dataclass
class Environment:
    """Triton, S3 and the callback receiver for a whole run; a context manager.

    Parameters: ``workdir`` (logs, S3 data, repository copies), keyword-only ``gpu`` (serve a
    ``KIND_GPU`` copy of the repository, ``training.export.gpu_repository``), ``triton_grpc_url``
    (use this Triton instead of starting one).
    """

    workdir: Path
    gpu: bool = False
    triton_grpc_url: str | None = None
    secret: str = field(default_factory=new_webhook_secret)

    def __post_init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.repository = DEFAULT_REPOSITORY

    def __enter__(self) -> Environment:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            if self.gpu:
                from training.export import gpu_repository  # torch only here

                self.repository = gpu_repository(DEFAULT_REPOSITORY, self.workdir / "triton-models-gpu")
            self.triton_pid: int | None = None
            if self.triton_grpc_url is None:
                triton = self._stack.enter_context(self._triton(self.repository, "main"))
                self.triton_grpc_url, self.triton_pid = triton.grpc_url, triton.pid
            self.s3 = self._stack.enter_context(
                S3Server(
                    access_key=S3_ACCESS,
                    secret_key=S3_SECRET,
                    data_dir=self.workdir / "s3",
                    state_dir=self.workdir,
                    log_path=self.workdir / "s3.log",
                )
            )
            self.receiver = self._stack.enter_context(
                CallbackReceiver(default_secret=self.secret, port=free_port())
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def grpc_url(self) -> str:
        assert self.triton_grpc_url is not None
        return self.triton_grpc_url

    def _triton(self, repository: Path, tag: str) -> TritonServer:
        return TritonServer(repository, log_path=self.workdir / f"tritonserver-{tag}.log")

    @contextlib.contextmanager
    def triton_variant(self, *, dynamic_batching: bool) -> Iterator[tuple[str, int | None]]:
        """``(gRPC URL, pid)`` of Triton serving this run's repository with dynamic batching on or
        off (on: the run's own server; off: a copy without the batcher, started for the block)."""
        if dynamic_batching:
            yield self.grpc_url, self.triton_pid
            return
        copy = without_dynamic_batching(self.repository, self.workdir / "triton-models-nobatch")
        with self._triton(copy, "nobatch") as server:
            yield server.grpc_url, server.pid

    def settings(self, tag: str, *, grpc_url: str | None = None, **overrides: Any) -> WorkerSettings:
        """Worker settings for a private namespace on the shared RabbitMQ and Redis."""
        values = worker_values(
            f"perf-{tag}",
            triton_grpc_url=grpc_url or self.grpc_url,
            s3=self.s3,
            s3_secret_key=S3_SECRET,
            s3_bucket="atelier-perf",
            callback_secret=self.secret,
            callback_allow_http=True,
            callback_allowed_hosts=["127.0.0.1"],
            **overrides,
        )
        return WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass(frozen=True)
class ProcessStats:
    """A worker's processes: RSS per pool process (MB), and CPU seconds of them all."""

    rss_mb: list[float]
    cpu_s: float

    @property
    def rss_median_mb(self) -> float:
        return statistics.median(self.rss_mb) if self.rss_mb else 0.0


def process_stats(pid: int | None) -> ProcessStats:
    """RSS of each pool process (the parent's when it has none) and CPU seconds of the tree."""
    if pid is None:
        return ProcessStats([], 0.0)
    try:
        parent = psutil.Process(pid)
        children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return ProcessStats([], 0.0)
    rss, cpu = [], 0.0
    for process in [parent, *children]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            cpu += times.user + times.system
            if process is not parent or not children:
                rss.append(process.memory_info().rss / 2**20)
    return ProcessStats(rss, cpu)


class PipelineRig:
    """One pipeline run in a private namespace; a context manager that removes it at exit.

    Parameters: ``env``, ``tag``; keyword-only ``grpc_url`` (default the run's Triton) and
    ``overrides`` (more worker settings).
    """

    def __init__(self, env: Environment, tag: str, *, grpc_url: str | None = None, **overrides: Any) -> None:
        self.env = env
        self.tag = tag
        self.settings = env.settings(tag, grpc_url=grpc_url, **overrides)
        self.workers: dict[str, AppWorker] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> PipelineRig:
        self._stack.callback(remove_namespace, self.settings)
        self.producer = self._stack.enter_context(Producer(self.settings, watch_poll_interval_s=0.2))
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers.values():
            worker.stop()
        self._stack.close()

    # --- workers ---

    def start_workers(
        self,
        roles: dict[str, tuple[int, str]],
        *,
        threads: int | None = None,
        nice: dict[str, int] | None = None,
        env: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """Start one worker per role (``listing``, ``tryon``, ``callbacks``): ``(concurrency, app)``;
        wait until all consume. ``threads``: ``OMP_NUM_THREADS`` of each process (default 1);
        ``nice``: a role's CPU niceness (default 0); ``env``: more variables per role."""
        queues = {
            "listing": self.settings.listing_queue,
            "tryon": self.settings.tryon_queue,
            "callbacks": self.settings.callback_queue,
        }
        for role, (concurrency, app) in roles.items():
            self.workers[role] = AppWorker(
                app=app,
                nice=(nice or {}).get(role, 0),
                settings=self.settings,
                queues=[queues[role]],
                name=f"{role}-{self.settings.exchange}",
                log_path=self.env.workdir / f"worker-{self.tag}-{role}.log",
                concurrency=concurrency,
                env={"OMP_NUM_THREADS": str(threads or 1), **(env or {}).get(role, {})},
            ).launch()
        for worker in self.workers.values():
            worker.wait_ready()

    def stats(self, role: str) -> ProcessStats:
        return process_stats(self.workers[role].pid)

    # --- jobs ---

    def listing(self, i: int, *, variants: int = 4) -> dict[str, Any]:
        """A listing request as a catalog backfill sends it: 4 variants, 256 px PNG (the defaults)."""
        return {
            "kind": "listing",
            "requester": "perf",
            "listing_id": f"SKU-PERF-{i}",
            "attributes": {
                "category": CATEGORIES[i % len(CATEGORIES)].slug,
                "colour": PALETTE[i % len(PALETTE)].name,
            },
            "variants": variants,
            "seed": 10_000 + i,
            "callback": {"url": self.env.receiver.url_for("perf"), "events": EVENTS},
        }

    def tryon(self, i: int) -> dict[str, Any]:
        """A try-on request of a generated garment (two model calls), 256 px PNG."""
        wearable = wearable_categories()
        return {
            "kind": "tryon",
            "requester": "perf-ui",
            "shopper_ref": f"shopper-{i}",
            "measurements": BODY,
            "garment": {
                "source": "attributes",
                "category": wearable[i % len(wearable)].slug,
                "colour": PALETTE[i % len(PALETTE)].name,
            },
            "size": "M",
            "seed": 20_000 + i,
            "callback": {"url": self.env.receiver.url_for("perf-ui"), "events": EVENTS},
        }

    def submit_all(self, requests: Iterable[dict[str, Any]]) -> list[str]:
        return [self.producer.submit(request) for request in requests]

    def wait_terminal(self, job_ids: Iterable[str], timeout_s: float) -> dict[str, JobRecord]:
        """Every job's record once all have ended, or at ``timeout_s`` (some may not have)."""
        return self.producer.wait_all(job_ids, timeout_s)

    def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (a passive declare)."""
        with Connection(self.settings.broker_url.get_secret_value()) as connection:
            channel = connection.default_channel
            _, count, _ = channel.queue_declare(queue=queue, passive=True)
            return int(count)

    def callbacks_at(self, job_ids: Iterable[str], event: str = "job.succeeded") -> dict[str, float]:
        """When each job's ``event`` callback arrived at the receiver (``time.time()``)."""
        wanted = set(job_ids)
        found: dict[str, float] = {}
        for received in self.env.receiver.received:
            ev = received.event
            if ev is not None and ev.type.value == event and ev.data.get("job_id") in wanted:
                found.setdefault(str(ev.data["job_id"]), received.at)
        return found


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)
