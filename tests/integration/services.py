"""The shared services the integration tests run against (RabbitMQ, Redis), and test namespaces.

A missing service fails the test with how to start it: these tests exist to run against the
real services, so a skip would hide that they did not run. ``scripts/services.sh`` starts both.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from kombu import Connection

from producer.settings import AtelierSettings
from producer.topology import build_topology

#: settings the isolated ones start from (``ATELIER_BROKER_URL`` / ``ATELIER_REDIS_URL`` respected)
BASE = AtelierSettings()
AMQP_URL = BASE.broker_url.get_secret_value()
REDIS_URL = BASE.redis_url.get_secret_value()
HOW_TO_START = "start them with scripts/services.sh (or point ATELIER_BROKER_URL / ATELIER_REDIS_URL at them)"


def require_rabbitmq() -> None:
    """Fail unless RabbitMQ answers at ``ATELIER_BROKER_URL``."""
    if not AMQP_URL.startswith("amqp"):
        pytest.fail(f"these tests need RabbitMQ, but ATELIER_BROKER_URL is {AMQP_URL.split(':')[0]}://")
    try:
        with Connection(AMQP_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        pytest.fail(f"RabbitMQ does not answer at {_public(AMQP_URL)}: {error!r}; {HOW_TO_START}")


def require_redis() -> None:
    """Fail unless Redis answers ``PING`` at ``ATELIER_REDIS_URL``."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis does not answer at {_public(REDIS_URL)}: {error!r}; {HOW_TO_START}")
    finally:
        client.close()


def require_services() -> None:
    require_rabbitmq()
    require_redis()


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


def remove_namespace(settings: AtelierSettings, *, broker_url: str | None = None) -> None:
    """Delete a namespace's queues, exchanges and Redis keys.

    ``broker_url`` (default: the settings') is where the queues are deleted: settings pointed at
    a proxy or another broker for a test still leave their queues on the real one.
    """
    topology = build_topology(settings)
    with Connection(broker_url or settings.broker_url.get_secret_value()) as connection:
        channel = connection.default_channel
        for queue in topology.all_queues:
            queue.bind(channel).delete()
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            exchange.bind(channel).delete()
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def worker_values(
    tag: str, *, triton_grpc_url: str, s3: Any, s3_secret_key: str, broker_url: Any = None, **overrides: Any
) -> dict[str, Any]:
    """Worker settings for a test rig: a private namespace, the real services, the rig's S3."""
    return {
        **namespace(tag),
        "broker_url": BASE.broker_url if broker_url is None else broker_url,
        "redis_url": BASE.redis_url,
        "triton_grpc_url": triton_grpc_url,
        "triton_timeout_s": 60,
        "s3_endpoint": s3.endpoint,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3_secret_key,
        "s3_bucket": f"atelier-{tag}",
        **overrides,
    }


def queue_depth(settings: AtelierSettings, queue_name: str) -> int:
    """Messages ready in ``queue_name`` (0 if it was never declared)."""
    with Connection(settings.broker_url.get_secret_value()) as connection:
        try:
            return int(connection.default_channel.queue_declare(queue=queue_name, passive=True).message_count)
        except Exception:  # not declared: nothing was ever published to it
            return 0


def _public(url: str) -> str:
    """``url`` without its password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
