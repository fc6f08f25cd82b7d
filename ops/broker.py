"""What an operator asks the broker: how deep each queue is, and which workers consume them.

- :func:`queue_stats`: messages ready and consumers of every queue of the topology, dead-letter
  queue included, from a passive ``queue.declare`` (no management plugin needed; a queue never
  declared shows as missing).
- :func:`worker_stats`: every Celery worker that answers a broadcast ``ping`` within the
  timeout, with the queues it consumes, its running tasks and its pool's concurrency (Celery's
  remote control: ``inspect ping / active_queues / active / stats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amqp.exceptions import NotFound
from celery import Celery
from kombu import Connection

from core.settings import AtelierSettings
from core.topology import broker_ssl, build_topology, celery_config


@dataclass(frozen=True)
class QueueStats:
    """One queue: ``messages`` ready (not counting unacked ones), ``consumers`` attached;
    ``None`` for both when the queue does not exist."""

    role: str
    name: str
    messages: int | None
    consumers: int | None

    @property
    def exists(self) -> bool:
        return self.messages is not None


@dataclass(frozen=True)
class WorkerStats:
    """One worker node (``name@host``) as it answered the broadcast."""

    name: str
    queues: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)  #: ``task name[job id]`` of each running task
    concurrency: int | None = None
    pool: str = ""


def queue_stats(settings: AtelierSettings) -> list[QueueStats]:
    """Depth and consumers of the listing, try-on, callback and dead-letter queues."""
    topology = build_topology(settings)
    roles = {
        "listing": topology.listing,
        "tryon": topology.tryon,
        "callbacks": topology.callbacks,
        "dead_letter": topology.dead_letter,
    }
    url = settings.broker_url.get_secret_value()
    stats = []
    with Connection(url, connect_timeout=settings.broker_connect_timeout_s, ssl=broker_ssl(settings)) as conn:
        conn.ensure_connection(max_retries=1)
        for role, queue in roles.items():
            channel = conn.channel()  # a passive declare of a missing queue closes its channel
            try:
                ok = channel.queue_declare(queue=queue.name, passive=True)
                stats.append(QueueStats(role, queue.name, int(ok.message_count), int(ok.consumer_count)))
                channel.close()
            except NotFound:
                stats.append(QueueStats(role, queue.name, None, None))
    return stats


def worker_stats(
    settings: AtelierSettings, *, timeout_s: float = 1.0, every: bool = False
) -> list[WorkerStats]:
    """The workers that answer within ``timeout_s``: those consuming one of this deployment's
    queues, or every worker on the broker with ``every``."""
    app = Celery("atelier-ops", set_as_current=False)
    app.conf.update(celery_config(settings))
    try:
        inspect = app.control.inspect(timeout=timeout_s)
        pongs: dict[str, Any] = inspect.ping() or {}
        if not pongs:
            return []
        inspect = app.control.inspect(destination=list(pongs), timeout=timeout_s)
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
        stats = inspect.stats() or {}
    finally:
        app.close()
    ours = {q.name for q in build_topology(settings).task_queues}
    workers = []
    for name in sorted(pongs):
        consumed = [q["name"] for q in queues.get(name, [])]
        if not every and not ours & set(consumed):
            continue
        pool = stats.get(name, {}).get("pool", {})
        workers.append(
            WorkerStats(
                name=name,
                queues=consumed,
                active=[f"{t.get('name')}[{t.get('id')}]" for t in active.get(name, [])],
                concurrency=pool.get("max-concurrency"),
                pool=str(pool.get("implementation", "")).rsplit(":", 1)[-1],
            )
        )
    return workers
