"""Which model version a job runs at when its request pins none.

- **Workers** (:func:`with_default_version`): a job request without ``model_version`` gets its
  model's default from Redis (``core.model_versions``), read at most once per
  ``default_version_cache_s`` per process; none set: the request is left as it is, and the
  worker's ``*_MODEL_VERSION`` setting or Triton's latest applies (``worker.inference``).
Setting a default (``atelier ops set-default-version``) is the operators' side, in
``ops.model_versions``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from core.jobs import StoreUnavailable
from core.model_versions import DefaultVersions
from core.topology import LISTING_TASK, TRYON_TASK
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR
from worker.context import WorkerContext

log = logging.getLogger(__name__)

#: the model each job task runs
MODEL_FOR_TASK = {LISTING_TASK: PRODUCT_GENERATOR.name, TRYON_TASK: TRYON_GENERATOR.name}


class DefaultVersionCache:
    """``read(model)`` remembered for ``ttl_s`` seconds per model (one per worker process).

    Parameters: ``read`` (the stored default, ``None`` when unset); keyword-only ``ttl_s`` and
    ``clock`` (default ``time.monotonic``). A failed read is not remembered.
    """

    def __init__(
        self, read: Callable[[str], int | None], *, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._read = read
        self.ttl_s = ttl_s
        self._clock = clock
        self._cached: dict[str, tuple[int | None, float]] = {}

    def get(self, model: str) -> int | None:
        now = self._clock()
        hit = self._cached.get(model)
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        version = self._read(model)
        self._cached[model] = (version, now)
        return version


_cache: tuple[int, DefaultVersionCache] | None = None


def _process_cache(ctx: WorkerContext) -> DefaultVersionCache:
    """This process's cache, with its own Redis client (made again after a fork)."""
    global _cache
    if _cache is None or _cache[0] != os.getpid():
        defaults = DefaultVersions(ctx.settings)
        _cache = (os.getpid(), DefaultVersionCache(defaults.get, ttl_s=ctx.settings.default_version_cache_s))
    return _cache[1]


def with_default_version(task_name: str, request: Mapping[str, Any], ctx: WorkerContext) -> Mapping[str, Any]:
    """``request`` with its model's default version when it pins none and a default is set.

    Redis unreachable: the request unchanged (the job then meets Redis itself and retries).
    """
    model = MODEL_FOR_TASK.get(task_name)
    if model is None or request.get("model_version") is not None:
        return request
    try:
        version = _process_cache(ctx).get(model)
    except (StoreUnavailable, ValueError) as error:
        log.warning("default version of %s not read: %s", model, error, extra={"model": model})
        return request
    if version is None:
        return request
    return {**request, "model_version": version}
