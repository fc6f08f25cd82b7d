"""Which model version a job runs at, and that version's manifest.

- **Default** (:func:`with_default_version`): a job request without ``model_version`` gets its
  model's default from Redis (``core.model_versions``), read at most once per
  ``default_version_cache_s`` per process; none set: the request is left as it is.
- **Version and manifest** (:func:`job_manifest`): the request's version (pinned, or the default
  above), else the worker's ``*_MODEL_VERSION`` setting, else the highest registered version
  (``core.model_registry``), else 1. The worker maps the request's slugs to that manifest's
  indexes and sends that concrete version to Triton, so Triton's "latest" never answers with a
  version whose indexes the worker did not use.
Setting a default (``atelier ops set-default-version``) and registering versions (``atelier ops
register-versions``) are the operators' side, in ``ops.model_versions``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from core.jobs import StoreUnavailable
from core.model_registry import ModelRegistry
from core.model_versions import DefaultVersionCache, DefaultVersions
from core.topology import LISTING_TASK, TRYON_TASK
from serving_contract.manifest import ModelManifest
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR
from worker.context import WorkerContext

log = logging.getLogger(__name__)

__all__ = ["MODEL_FOR_TASK", "DefaultVersionCache", "job_manifest", "registry", "with_default_version"]

#: the model each job task runs
MODEL_FOR_TASK = {LISTING_TASK: PRODUCT_GENERATOR.name, TRYON_TASK: TRYON_GENERATOR.name}


#: the store a process's caches read: its pid (made again after a fork), Redis and key prefix
_StoreKey = tuple[int, str, str]
_caches: dict[_StoreKey, DefaultVersionCache[int | None]] = {}
_registries: dict[_StoreKey, ModelRegistry] = {}


def _store_key(ctx: WorkerContext) -> _StoreKey:
    """Which store ``ctx`` reads: a process that serves two settings (an embedded stack, the
    tests) must not read one's versions from the other's Redis."""
    return (os.getpid(), ctx.settings.redis_url.get_secret_value(), ctx.settings.redis_key_prefix)


def _process_cache(ctx: WorkerContext) -> DefaultVersionCache:
    """This process's cache of ``ctx``'s store, with its own Redis client (made again after a fork)."""
    key = _store_key(ctx)
    found = _caches.get(key)
    if found is None:
        if any(k[0] != key[0] for k in _caches):  # forked: the parent's clients are not ours
            _caches.clear()
        defaults = DefaultVersions(ctx.settings)
        found = _caches[key] = DefaultVersionCache(defaults.get, ttl_s=ctx.settings.default_version_cache_s)
    return found


def registry(ctx: WorkerContext) -> ModelRegistry:
    """The context's model registry, else this process's own on ``ctx``'s status store (made
    again after a fork), caching manifests for good and versions for ``default_version_cache_s``."""
    if ctx.models is not None:
        return ctx.models
    key = _store_key(ctx)
    found = _registries.get(key)
    if found is None:
        if any(k[0] != key[0] for k in _registries):  # forked
            _registries.clear()
        found = _registries[key] = ModelRegistry.from_settings(ctx.settings)
    return found


def job_manifest(ctx: WorkerContext, model: str, version: int | None, setting: str) -> ModelManifest:
    """The manifest of the version a job of ``model`` runs at: ``version`` (the request's pin or
    default), else ``setting`` (the worker's ``*_MODEL_VERSION``, "" for none), else the highest
    registered. Raises ``core.model_registry.UnknownVersion`` (permanent, ``model_version_not_found``)
    when that version has no manifest."""
    fallback = int(setting) if setting.strip().isdigit() else None
    return registry(ctx).resolve(model, version, fallback=fallback)


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
