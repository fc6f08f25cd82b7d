"""The broker topology Atelier's producer and workers share: exchanges, queues, routes.

Both sides build their Celery configuration from :func:`celery_config`, so a queue is always
declared with the same arguments (RabbitMQ refuses a re-declaration with different ones with
``PRECONDITION_FAILED``). Layout:

- one topic exchange (``settings.exchange``, default ``atelier``); each queue binds to it with
  its own name as routing key. Topic, not direct: Celery 5.7's native delayed delivery
  (countdown retries on quorum queues) does not support direct exchanges.
- ``atelier.listing`` (bulk backfill), ``atelier.tryon`` (interactive) and
  ``atelier.callbacks`` (webhook delivery, so a slow receiver never holds an inference worker):
  durable quorum queues with ``x-delivery-limit``; a message delivered more often than that
  (a worker killed mid-job each time) is dead-lettered instead of looping forever.
- ``atelier.dlx`` (topic) routes everything dead-lettered to ``atelier.dead_letter`` (durable
  quorum queue) with its original routing key, so the source queue stays visible.

A message published to a queue nobody declared is dropped silently, and so is a message
dead-lettered to an undeclared exchange: call :func:`declare` (the producer does, before its
first publish) or let the worker declare on start; both are idempotent.
"""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Queue

from core.contracts.jobs import JobKind
from core.settings import AtelierSettings

#: Celery task that generates a listing's product images
LISTING_TASK = "atelier.listing.generate"
#: Celery task that renders a try-on image
TRYON_TASK = "atelier.tryon.generate"
#: Celery task that delivers one signed webhook; kwargs ``callback_kwargs(job_id, event)``
CALLBACK_TASK = "atelier.callbacks.deliver"
#: Celery task that makes one listing image again after a reviewer rejected it (issue 14);
#: kwargs ``regenerate_kwargs(job_id, variant, regeneration)``; on the listing queue
REGENERATE_TASK = "atelier.listing.regenerate"

#: the task a job of each kind is published as
TASK_FOR_KIND = {JobKind.LISTING: LISTING_TASK, JobKind.TRYON: TRYON_TASK}


def callback_kwargs(job_id: str, event: str) -> dict[str, str]:
    """The keyword arguments of a ``CALLBACK_TASK`` message: deliver ``event`` of ``job_id``."""
    return {"job_id": job_id, "event": str(event)}


def callback_task_id(job_id: str, event: str) -> str:
    """``<job id>.<event>``, e.g. ``3f2a....job.succeeded``: the task id of a callback delivery."""
    return f"{job_id}.{event}"


def regenerate_kwargs(job_id: str, variant: int, regeneration: int) -> dict[str, str | int]:
    """The keyword arguments of a ``REGENERATE_TASK`` message: remake number ``regeneration``
    (from 1) of ``variant`` of ``job_id``."""
    return {"job_id": job_id, "variant": variant, "regeneration": regeneration}


def regenerate_task_id(job_id: str, variant: int, regeneration: int) -> str:
    """``<job id>.regenerate.<variant>.<regeneration>``: the task id of one remake."""
    return f"{job_id}.regenerate.{variant}.{regeneration}"


@dataclass(frozen=True)
class Topology:
    """Every exchange and queue Atelier uses, built from one settings object."""

    exchange: Exchange
    listing: Queue
    tryon: Queue
    callbacks: Queue
    dead_letter_exchange: Exchange
    dead_letter: Queue

    @property
    def task_queues(self) -> tuple[Queue, ...]:
        """The queues workers consume (the dead-letter queue is for people, not workers)."""
        return (self.listing, self.tryon, self.callbacks)

    @property
    def all_queues(self) -> tuple[Queue, ...]:
        return (*self.task_queues, self.dead_letter)

    @property
    def task_routes(self) -> dict[str, dict[str, str]]:
        """Celery ``task_routes``: task name -> queue name."""
        return {
            LISTING_TASK: {"queue": self.listing.name},
            TRYON_TASK: {"queue": self.tryon.name},
            CALLBACK_TASK: {"queue": self.callbacks.name},
            REGENERATE_TASK: {"queue": self.listing.name},
        }

    def queue_for(self, task_name: str) -> Queue:
        """The queue a task is routed to; ``KeyError`` for a task Atelier does not define."""
        name = self.task_routes[task_name]["queue"]
        return next(q for q in self.task_queues if q.name == name)


def quorum_arguments(settings: AtelierSettings) -> dict[str, Any]:
    """Arguments of every work queue; changing one needs the queues deleted and re-declared."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.delivery_limit,
        "x-dead-letter-exchange": settings.dead_letter_exchange,
        # at-least-once dead-lettering (RabbitMQ >= 3.10) requires reject-publish overflow;
        # without a max-length the overflow setting never triggers
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def build_topology(settings: AtelierSettings) -> Topology:
    exchange = Exchange(settings.exchange, type="topic", durable=True)
    arguments = quorum_arguments(settings)

    def work_queue(name: str) -> Queue:
        return Queue(name, exchange, routing_key=name, durable=True, queue_arguments=dict(arguments))

    dlx = Exchange(settings.dead_letter_exchange, type="topic", durable=True)
    dead_letter = Queue(
        settings.dead_letter_queue,
        dlx,
        routing_key="#",
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )
    return Topology(
        exchange=exchange,
        listing=work_queue(settings.listing_queue),
        tryon=work_queue(settings.tryon_queue),
        callbacks=work_queue(settings.callback_queue),
        dead_letter_exchange=dlx,
        dead_letter=dead_letter,
    )


def is_filesystem_broker(settings: AtelierSettings) -> bool:
    return settings.broker_url.get_secret_value().startswith("filesystem://")


def broker_transport_options(settings: AtelierSettings) -> dict[str, Any]:
    """``broker_transport_options``: publisher confirms on RabbitMQ, folders for filesystem://.

    The filesystem folders are created here, since kombu writes into them without creating them.
    """
    if is_filesystem_broker(settings):
        root = settings.broker_data_dir
        folders = {"queue": root / "queue", "processed": root / "processed", "control": root / "control"}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    # merged into py-amqp's Connection: every channel waits for basic.ack / basic.nack
    return {"confirm_publish": True}


def broker_ssl(settings: AtelierSettings) -> dict[str, Any] | bool:
    """kombu's ``ssl`` for the broker: ``False`` unless ``broker_url`` is ``amqps://``; then the
    server's certificate and host name are always checked (``broker_ca_cert``, default: the system
    store), and ``broker_client_cert`` / ``broker_client_key`` are presented for mutual TLS."""
    url = urllib.parse.urlsplit(settings.broker_url.get_secret_value())
    if url.scheme != "amqps":
        return False
    options: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": url.hostname}
    if settings.broker_ca_cert is not None:
        options["ca_certs"] = str(settings.broker_ca_cert)
    if settings.broker_client_cert is not None:
        options["certfile"] = str(settings.broker_client_cert)
    if settings.broker_client_key is not None:
        options["keyfile"] = str(settings.broker_client_key)
    return options


def celery_config(settings: AtelierSettings) -> dict[str, Any]:
    """The Celery settings producer and worker share; the worker adds its own on top."""
    topology = build_topology(settings)
    return {
        "broker_url": settings.broker_url.get_secret_value(),
        "broker_transport_options": broker_transport_options(settings),
        "broker_connection_timeout": settings.broker_connect_timeout_s,
        "broker_use_ssl": broker_ssl(settings),
        "task_queues": topology.task_queues,
        "task_routes": topology.task_routes,
        "task_default_exchange": settings.exchange,
        "task_default_exchange_type": "topic",
        "task_create_missing_queues": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
    }


def declare(connection: Connection, settings: AtelierSettings) -> Topology:
    """Declare every exchange, queue and binding on ``connection``; idempotent."""
    topology = build_topology(settings)
    channel = connection.channel()
    # the dead-letter side first: a work queue may dead-letter as soon as it exists
    for queue in (topology.dead_letter, *topology.task_queues):
        queue.bind(channel).declare()
    # closed only on success: after a failure the caller drops the connection, and a close
    # handshake with a broker that stopped answering would only wait for nothing
    channel.close()
    return topology
