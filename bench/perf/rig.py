"""The services the performance benchmarks share, and one pipeline run's private namespace.

:class:`Environment` is started once per ``python -m bench.perf`` run: an ``embedded.stack.Stack``
with the real Triton (the committed repository or its ``KIND_GPU`` copy), a SeaweedFS S3 server
and a callback receiver, and by default a RabbitMQ node and a Redis server of its own, so the
CPU they spend is the run's alone (the machine's shared ones also serve every other client).
A benchmark that needs Triton with other settings (dynamic batching off) starts a variant with
:meth:`Environment.triton_variant`.

:class:`PipelineRig` is one run of the pipeline on the run's RabbitMQ and Redis: a ``Stack``
with a private exchange, queues and key prefix that uses the environment's Triton, S3 and
receiver, the producer, and Celery workers started as an operator starts them, of the real app
(``worker.app``) or of the in-process alternative (``bench.perf.inprocess_app``). It reads job
records back and measures each worker's processes (RSS, CPU time) with psutil.
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
from core.worker_settings import WorkerSettings
from embedded.namespace import namespace
from embedded.rabbitmq import RabbitMQServer
from embedded.receiver import CallbackReceiver
from embedded.redis import RedisServer
from embedded.s3 import S3Server
from embedded.stack import Pool, Stack
from embedded.triton import DEFAULT_REPOSITORY, TritonServer
from embedded.workers import WORKER_APP
from producer.client import Producer
from serving_contract.palette import PALETTE
from serving_contract.taxonomy import CATEGORIES, wearable_categories

#: the bucket every benchmark writes its images to
BUCKET = "atelier-perf"
#: the events a benchmark job subscribes to: what a catalog system or a try-on UI waits for
EVENTS = ["job.succeeded", "job.failed"]
#: Celery app of the in-process alternative (the model in each worker process, no Triton)
INPROCESS_APP = "bench.perf.inprocess_app"
#: Celery app of the real worker
TRITON_APP = WORKER_APP
#: a body in the middle of every measurement range (cm, kg)
BODY = {"height": 172.0, "weight": 70.0, "chest": 96.0, "waist": 82.0, "hips": 98.0}


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
    (use this Triton instead of starting one), ``private_services`` (default ``True``: start a
    RabbitMQ node and a Redis server for the run; ``False``: the machine's shared ones,
    ``ATELIER_BROKER_URL`` / ``ATELIER_REDIS_URL``).
    """

    workdir: Path
    gpu: bool = False
    triton_grpc_url: str | None = None
    private_services: bool = True
    repository: Path = field(default=DEFAULT_REPOSITORY, init=False)

    def __enter__(self) -> Environment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._services = contextlib.ExitStack()
        #: what every stack of the run connects to (empty: the shared services)
        self.services: dict[str, str] = {}
        if self.private_services:
            logs = self.workdir / "logs"
            broker = RabbitMQServer(state_dir=self.workdir, log_path=logs / "rabbitmq.log")
            redis = RedisServer(state_dir=self.workdir, log_path=logs / "redis.log")
            try:
                self.services = {
                    "broker_url": self._services.enter_context(broker).url,
                    "redis_url": self._services.enter_context(redis).url,
                }
            except BaseException:
                self._services.close()
                raise
        if self.gpu:
            from training.export import gpu_repository  # torch only here

            self.repository = gpu_repository(DEFAULT_REPOSITORY, self.workdir / "triton-models-gpu")
        self.stack = Stack(
            tag="perf",
            workdir=self.workdir,
            triton_repository=self.repository if self.triton_grpc_url is None else None,
            triton_grpc_url=self.triton_grpc_url,
            broker_url=self.services.get("broker_url"),
            settings={"s3_bucket": BUCKET, **self.redis_setting()},
        ).__enter__()
        self.triton_grpc_url = self.stack.settings.triton_grpc_url
        self.triton_pid: int | None = self.stack.triton.pid if self.stack.triton else None
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.stack.__exit__(*exc)
        finally:
            self._services.close()

    def redis_setting(self) -> dict[str, str]:
        """The settings value that points a stack at the run's Redis (none: the shared one)."""
        return {"redis_url": self.services["redis_url"]} if "redis_url" in self.services else {}

    @property
    def grpc_url(self) -> str:
        assert self.triton_grpc_url is not None
        return self.triton_grpc_url

    @property
    def s3(self) -> S3Server:
        assert self.stack.s3 is not None
        return self.stack.s3

    @property
    def receiver(self) -> CallbackReceiver:
        assert self.stack.receiver is not None
        return self.stack.receiver

    @contextlib.contextmanager
    def triton_variant(self, *, dynamic_batching: bool) -> Iterator[tuple[str, int | None]]:
        """``(gRPC URL, pid)`` of Triton serving this run's repository with dynamic batching on or
        off (on: the run's own server; off: a copy without the batcher, started for the block)."""
        if dynamic_batching:
            yield self.grpc_url, self.triton_pid
            return
        copy = without_dynamic_batching(self.repository, self.workdir / "triton-models-nobatch")
        with self.triton_serving(copy, "nobatch") as served:
            yield served

    @contextlib.contextmanager
    def triton_serving(self, repository: Path, name: str) -> Iterator[tuple[str, int | None]]:
        """``(gRPC URL, pid)`` of a second Triton serving ``repository`` for the block (logs:
        ``tritonserver-{name}.log``), beside the run's own."""
        logs = self.stack.logs / f"tritonserver-{name}.log"
        with TritonServer(repository, state_dir=self.workdir, log_path=logs) as server:
            yield server.grpc_url, server.pid

    def settings(self, tag: str) -> WorkerSettings:
        """Worker settings for a private namespace on the run's services (nothing declared)."""
        return self.stack.settings.model_copy(update=namespace(f"perf-{tag}"))


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
        self.stack = Stack(
            tag=f"perf-{tag}",
            workdir=env.workdir / tag,
            triton_grpc_url=grpc_url or env.grpc_url,
            s3=env.s3,
            receiver=env.receiver,
            broker_url=env.services.get("broker_url"),
            settings={"s3_bucket": BUCKET, **env.redis_setting(), **overrides},
        )

    def __enter__(self) -> PipelineRig:
        self.stack.__enter__()
        self.settings = self.stack.settings
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stack.__exit__(*exc)

    @property
    def producer(self) -> Producer:
        return self.stack.producer

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
        self.stack.start_workers(
            *(
                Pool(
                    role,
                    concurrency=concurrency,
                    app=app,
                    nice=(nice or {}).get(role, 0),
                    env={"OMP_NUM_THREADS": str(threads or 1), **(env or {}).get(role, {})},
                )
                for role, (concurrency, app) in roles.items()
            )
        )

    def stats(self, role: str) -> ProcessStats:
        return process_stats(self.stack.workers[role].pid)

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
