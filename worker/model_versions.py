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


_cache: tuple[int, DefaultVersionCache[int | None]] | None = None
_registry: tuple[int, ModelRegistry] | None = None


def _process_cache(ctx: WorkerContext) -> DefaultVersionCache:
    """This process's cache, with its own Redis client (made again after a fork)."""
    global _cache
    if _cache is None or _cache[0] != os.getpid():
        defaults = DefaultVersions(ctx.settings)
        _cache = (os.getpid(), DefaultVersionCache(defaults.get, ttl_s=ctx.settings.default_version_cache_s))
    return _cache[1]


def registry(ctx: WorkerContext) -> ModelRegistry:
    """The context's model registry, else this process's own on the status store's Redis (made
    again after a fork), caching manifests for good and versions for ``default_version_cache_s``."""
    if ctx.models is not None:
        return ctx.models
    global _registry
    if _registry is None or _registry[0] != os.getpid():
        _registry = (os.getpid(), ModelRegistry.from_settings(ctx.settings))
    return _registry[1]


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
