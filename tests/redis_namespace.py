"""A private key prefix on the real Redis for one test, deleted afterwards.

Tests of the status store share the machine's Redis (``scripts/services.sh`` starts it); each
takes its own prefix so they never see each other's keys, and fail, never skip, when Redis is down.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from core.settings import AtelierSettings


@contextmanager
def private_namespace() -> Iterator[tuple[AtelierSettings, redis.Redis]]:
    """Settings with a fresh ``redis_key_prefix`` and a client on that Redis; the prefix's keys
    are deleted on exit."""
    settings = AtelierSettings(redis_key_prefix=f"atelier-test:{uuid.uuid4().hex[:8]}:")
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), decode_responses=True, socket_timeout=2
    )
    try:
        client.ping()
    except redis.RedisError as error:  # fail, never skip: scripts/services.sh starts Redis
        pytest.fail(f"Redis not reachable (ATELIER_REDIS_URL): {error}; start it with scripts/services.sh")
    try:
        yield settings, client
    finally:
        keys = list(client.scan_iter(match=f"{settings.redis_key_prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
