"""The Redis client of the status store, and the one place its failures become typed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files

import redis
from redis.exceptions import RedisError

from core.jobs.errors import StoreUnavailable
from core.settings import AtelierSettings


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis failures into :class:`StoreUnavailable` (retryable)."""
    try:
        yield
    except RedisError as error:
        raise StoreUnavailable(f"status store: {error!r}") from error


def redis_client(settings: AtelierSettings) -> redis.Redis:
    """A client of the status store (``redis_url``) that decodes replies, with its timeouts."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )


def lua_script(name: str) -> str:
    """The text of ``core/jobs/scripts/{name}.lua`` (package data, shipped with the wheel)."""
    return files("core.jobs").joinpath("scripts", f"{name}.lua").read_text(encoding="utf-8")
