"""The default model versions operators set (``atelier ops set-default-version``), kept in Redis.

A request without ``model_version`` runs at its model's default: the version stored here under
``{redis_key_prefix}default_version:{model}``, else the worker's ``ATELIER_PRODUCT_MODEL_VERSION``
/ ``ATELIER_TRYON_MODEL_VERSION``, else Triton's latest. Workers, the producer and the API read it
through :class:`DefaultVersionCache` (one per process), so a change reaches them within
``default_version_cache_s``.
Versions are Triton's: whole numbers of at least 1 (a request's ``model_version``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis

from core.jobs import redis_client, redis_errors
from core.settings import AtelierSettings
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR

#: the models a default can be set for
MODELS = (PRODUCT_GENERATOR.name, TRYON_GENERATOR.name)


def parse_version(value: str | int) -> int:
    """``value`` as a Triton model version (an integer >= 1), else ``ValueError``."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"a model version is a whole number of at least 1, not {value!r}")
    return int(text)


class DefaultVersions:
    """Read and write the default version of each model.

    Parameters: ``settings`` (``redis_url``, ``redis_key_prefix``, ``redis_timeout_s``);
    keyword-only ``client`` (a ``redis.Redis`` that decodes responses; default one from settings).
    Redis failures raise ``core.jobs.StoreUnavailable``.
    """

    def __init__(self, settings: AtelierSettings, *, client: redis.Redis | None = None) -> None:
        self.prefix = settings.redis_key_prefix
        self._owned = client is None
        self.redis = client or redis_client(settings)

    def key(self, model: str) -> str:
        return f"{self.prefix}default_version:{model}"

    def get(self, model: str) -> int | None:
        """``model``'s default version, or ``None`` when none is set."""
        with redis_errors():
            value = self.redis.get(self.key(model))
        return None if value is None else parse_version(str(value))

    def set(self, model: str, version: int) -> None:
        with redis_errors():
            self.redis.set(self.key(model), str(parse_version(version)))

    def clear(self, model: str) -> bool:
        """Remove ``model``'s default; ``True`` if one was set."""
        with redis_errors():
            return bool(self.redis.delete(self.key(model)))

    def close(self) -> None:
        if self._owned:
            self.redis.close()


T = TypeVar("T")


class DefaultVersionCache(Generic[T]):
    """``read(model)`` remembered for ``ttl_s`` seconds per model (one per process): the default
    version (``DefaultVersions.get``), or another per-model value that may change, such as the
    registered versions (``core.model_registry``).

    Parameters: ``read`` (the stored value, e.g. ``None`` when no default is set); keyword-only
    ``ttl_s`` and ``clock`` (default ``time.monotonic``). A failed read is not remembered.
    """

    def __init__(
        self, read: Callable[[str], T], *, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._read = read
        self.ttl_s = ttl_s
        self._clock = clock
        self._cached: dict[str, tuple[T, float]] = {}

    def get(self, model: str) -> T:
        now = self._clock()
        hit = self._cached.get(model)
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        version = self._read(model)
        self._cached[model] = (version, now)
        return version

    def forget(self, model: str) -> None:
        """Read ``model`` again on the next ``get`` (after this process changed it)."""
        self._cached.pop(model, None)
