"""Which model version a job runs at when its request pins none, and what Triton has loaded.

- **Workers** (:func:`with_default_version`): a job request without ``model_version`` gets its
  model's default from Redis (``producer.model_versions``), read at most once per
  ``default_version_cache_s`` per process; none set: the request is left as it is, and the
  worker's ``*_MODEL_VERSION`` setting or Triton's latest applies (``worker.inference``).
- **Operators** (:func:`repository_index`, :func:`set_default_version`): Triton's repository
  index, and setting a default, refused unless Triton has that version loaded and ``READY``.
  Triton loads the versions its ``version_policy`` names (``config.pbtxt``; the default policy
  is the latest one only), so a new default usually needs ``version_policy: { all {} }`` or
  ``{ specific { versions: [...] } }`` first.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from producer.jobs_store import StoreUnavailable
from producer.model_versions import DefaultVersions, parse_version
from producer.topology import LISTING_TASK, TRYON_TASK
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR
from worker.context import WorkerContext
from worker.inference import InferenceClient, classify
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

#: the model each job task runs
MODEL_FOR_TASK = {LISTING_TASK: PRODUCT_GENERATOR.name, TRYON_TASK: TRYON_GENERATOR.name}
#: the models a default can be set for
MODELS = tuple(MODEL_FOR_TASK.values())


class VersionRefused(ValueError):
    """The version is not one Triton has loaded and ready (or the model is not ours)."""


# --- workers ---


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
    """This process's cache, over its context's Redis client (made again after a fork)."""
    global _cache
    if _cache is None or _cache[0] != os.getpid():
        defaults = DefaultVersions(ctx.settings, client=ctx.store.redis)
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


# --- operators ---


@dataclass(frozen=True)
class ModelState:
    """One row of Triton's repository index."""

    name: str
    version: str
    state: str
    reason: str = ""


def repository_index(settings: WorkerSettings) -> list[ModelState]:
    """Every model version Triton knows, with its state (``READY``, ``UNAVAILABLE``, ...).

    Raises the ``worker.errors`` type of a failed call (``inference_unavailable`` when Triton
    does not answer).
    """
    with InferenceClient(settings) as triton:
        try:
            index = triton.client.get_model_repository_index(
                as_json=True, client_timeout=settings.triton_timeout_s
            )
        except Exception as error:
            raise classify(error) from error
    rows = [
        ModelState(m["name"], str(m.get("version", "")), m.get("state", ""), m.get("reason", ""))
        for m in index.get("models", [])
    ]
    return sorted(rows, key=lambda r: (r.name, len(r.version), r.version))


def set_default_version(settings: WorkerSettings, model: str, version: int | str) -> int:
    """Make ``version`` the default of ``model`` after checking Triton has it ``READY``."""
    if model not in MODELS:
        raise VersionRefused(f"unknown model {model!r}; the models are {', '.join(MODELS)}")
    number = _version(version)
    ready = {r.version for r in repository_index(settings) if r.name == model and r.state == "READY"}
    if str(number) not in ready:
        loaded = ", ".join(sorted(ready, key=int)) or "none"
        raise VersionRefused(
            f"{model} version {number} is not loaded and ready in Triton (ready: {loaded}); "
            "its version_policy in config.pbtxt decides which versions Triton loads"
        )
    defaults = DefaultVersions(settings)
    try:
        defaults.set(model, number)
    finally:
        defaults.close()
    log.info("default version of %s set to %s", model, number, extra={"model": model, "version": number})
    return number


def default_versions(settings: WorkerSettings) -> dict[str, int | None]:
    """The default set for each model (``None``: none set)."""
    defaults = DefaultVersions(settings)
    try:
        return {model: defaults.get(model) for model in MODELS}
    finally:
        defaults.close()


def clear_default_version(settings: WorkerSettings, model: str) -> bool:
    if model not in MODELS:
        raise VersionRefused(f"unknown model {model!r}; the models are {', '.join(MODELS)}")
    defaults = DefaultVersions(settings)
    try:
        return defaults.clear(model)
    finally:
        defaults.close()


def _version(value: int | str) -> int:
    try:
        return parse_version(value)
    except ValueError as error:
        raise VersionRefused(str(error)) from None
