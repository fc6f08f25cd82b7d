"""A private namespace on shared RabbitMQ and Redis: its own exchange, queues and key prefix.

Integration tests, the fault suite and the benchmarks each run real workers on the machine's
RabbitMQ and Redis (``embedded.stack.Stack`` gives each stack one); a namespace keeps their
queues and job records apart, and :func:`remove_namespace` leaves nothing behind.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis
from kombu import Connection

from core.settings import AtelierSettings
from core.topology import build_topology


def namespace(tag: str) -> dict[str, Any]:
    """Settings values for a private exchange, queues and Redis key prefix (``atelier-<tag>-<hex>``).

    The names never end in a real queue's name, so a worker's delayed-delivery bindings
    (``#.atelier.listing``) never match them.
    """
    name = f"atelier-{tag}-{uuid.uuid4().hex[:10]}"
    return {
        "exchange": name,
        "listing_queue": f"{name}.listing",
        "tryon_queue": f"{name}.tryon",
        "callback_queue": f"{name}.callbacks",
        "dead_letter_exchange": f"{name}.dlx",
        "dead_letter_queue": f"{name}.dead_letter",
        "redis_key_prefix": f"{name}:",
    }


def delete_topology(settings: AtelierSettings, *, broker_url: str | None = None) -> None:
    """Delete the namespace's queues and exchanges on ``broker_url`` (default: the settings')."""
    topology = build_topology(settings)
    with Connection(broker_url or settings.broker_url.get_secret_value(), connect_timeout=5) as connection:
        channel = connection.default_channel
        for queue in topology.all_queues:
            queue.bind(channel).delete()
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            exchange.bind(channel).delete()


def remove_namespace(settings: AtelierSettings, *, broker_url: str | None = None) -> None:
    """Delete a namespace's queues, exchanges and Redis keys.

    ``broker_url`` (default: the settings') is where the queues are deleted: settings pointed at
    a proxy or another broker for a test still leave their queues on the real one.
    """
    delete_topology(settings, broker_url=broker_url)
    delete_keys(settings)


def delete_keys(settings: AtelierSettings) -> None:
    """Delete every Redis key under the namespace's prefix."""
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
