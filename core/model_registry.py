"""The manifests of the exported model versions, in Redis: what each version knows.

Why: a version trained on another catalog has other categories at other indexes, so the submit
and the worker must read the vocabulary of the version a request runs on, not constants.
``atelier ops register-versions`` stores each ``triton_models/<model>/<n>/manifest.json`` under
``{redis_key_prefix}manifest:{model}:{n}`` (and the version in the set
``{redis_key_prefix}manifest_versions:{model}``). A version is immutable: registering another
manifest for it is refused unless ``replace=True``.

:class:`ModelRegistry` caches per process: a manifest once read is kept for good (versions do
not change), while the default version (``core.model_versions``) and the list of registered
versions are read again after ``default_version_cache_s``. A submit therefore costs a dict lookup.

The version a request runs on (:meth:`ModelRegistry.resolve`): its pinned ``model_version``, else
the model's default in Redis, else (for a worker) its ``*_MODEL_VERSION`` setting, else the highest
registered version, else 1. Version 1 without a registered manifest is the built-in default
(``serving_contract.manifest.default_manifest``), so a deployment that registered nothing works
as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from core.errors import ErrorCode, PermanentError, VersionRefused
from core.jobs import redis_client, redis_errors
from core.model_versions import DefaultVersionCache, DefaultVersions
from core.settings import AtelierSettings
from serving_contract.manifest import MANIFEST_NAME, ModelManifest, default_manifest, read_manifest
from serving_contract.tensors import MODELS

log = logging.getLogger(__name__)

#: every model a manifest can be registered for
REGISTRY_MODELS = tuple(spec.name for spec in MODELS)


class ManifestConflict(VersionRefused):
    """Another manifest is registered for this version already (versions are immutable)."""


class UnknownVersion(PermanentError):
    """The version a request would run on has no manifest: it was never exported or registered.

    ``pinned``: the request named it (else it is the model's default)."""

    def __init__(self, model: str, version: int, *, pinned: bool, known: tuple[int, ...]) -> None:
        listed = ", ".join(map(str, known)) or "none"
        if pinned:
            message = f"{model} has no version {version}; its versions: {listed}"
        else:
            message = (
                f"{model}'s default version {version} has no registered manifest (its versions: {listed}); "
                "an operator registers it with `atelier ops register-versions`"
            )
        super().__init__(ErrorCode.MODEL_NOT_FOUND, message)
        self.model, self.version, self.pinned = model, version, pinned


class ManifestStore(Protocol):
    """Where manifests are kept: :class:`RedisManifests`, or :class:`MemoryManifests` in tests."""

    def read(self, model: str, version: int) -> str | None: ...

    def write(self, model: str, version: int, text: str, *, replace: bool) -> str | None:
        """Store ``text`` unless a manifest is there and ``replace`` is false; returns the one
        that was there (``None`` if none)."""
        ...

    def versions(self, model: str) -> tuple[int, ...]: ...

    def default(self, model: str) -> int | None: ...

    def close(self) -> None: ...


class RedisManifests:
    """Manifests in the status store's Redis. Parameters: ``settings`` (``redis_url``,
    ``redis_key_prefix``, ``redis_timeout_s``); keyword-only ``client`` (decoding responses; default
    one from settings). Failures raise ``core.jobs.StoreUnavailable`` (retryable)."""

    def __init__(self, settings: AtelierSettings, *, client: redis.Redis | None = None) -> None:
        self.prefix = settings.redis_key_prefix
        self._owned = client is None
        self.redis = client if client is not None else redis_client(settings)
        self.defaults = DefaultVersions(settings, client=self.redis)

    def key(self, model: str, version: int) -> str:
        return f"{self.prefix}manifest:{model}:{version}"

    def versions_key(self, model: str) -> str:
        return f"{self.prefix}manifest_versions:{model}"

    def read(self, model: str, version: int) -> str | None:
        with redis_errors():
            value = self.redis.get(self.key(model, version))
        return None if value is None else str(value)

    def write(self, model: str, version: int, text: str, *, replace: bool) -> str | None:
        key = self.key(model, version)
        with redis_errors():
            if replace:
                before = self.redis.set(key, text, get=True)
            else:
                before = None if self.redis.set(key, text, nx=True) else self.redis.get(key)
            self.redis.sadd(self.versions_key(model), str(version))
        return None if before is None else str(before)

    def versions(self, model: str) -> tuple[int, ...]:
        with redis_errors():
            members = self.redis.smembers(self.versions_key(model))
        return tuple(sorted(int(v) for v in members))

    def default(self, model: str) -> int | None:
        return self.defaults.get(model)

    def close(self) -> None:
        if self._owned:
            self.redis.close()


class MemoryManifests:
    """Manifests and defaults in a dict, for unit tests and in-process benchmarks."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, int], str] = {}
        self.defaults: dict[str, int] = {}

    def read(self, model: str, version: int) -> str | None:
        return self.manifests.get((model, version))

    def write(self, model: str, version: int, text: str, *, replace: bool) -> str | None:
        before = self.manifests.get((model, version))
        if before is None or replace:
            self.manifests[(model, version)] = text
        return before

    def versions(self, model: str) -> tuple[int, ...]:
        return tuple(sorted(v for m, v in self.manifests if m == model))

    def default(self, model: str) -> int | None:
        return self.defaults.get(model)

    def close(self) -> None:
        pass


class ModelRegistry:
    """Register, read and resolve model versions' manifests, cached per process (see the module).

    Parameters: ``store`` (a :class:`ManifestStore`); keyword-only ``ttl_s`` (how long the default
    and the registered versions are kept: ``default_version_cache_s``) and ``clock``.
    """

    def __init__(
        self, store: ManifestStore, *, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self._manifests: dict[tuple[str, int], ModelManifest] = {}
        self._defaults = DefaultVersionCache(store.default, ttl_s=ttl_s, clock=clock)
        self._versions = DefaultVersionCache(store.versions, ttl_s=ttl_s, clock=clock)
        self._builtin: dict[str, ModelManifest] = {}

    @classmethod
    def from_settings(cls, settings: AtelierSettings, *, client: redis.Redis | None = None) -> ModelRegistry:
        """A registry on the status store's Redis, caching for ``default_version_cache_s``."""
        return cls(RedisManifests(settings, client=client), ttl_s=settings.default_version_cache_s)

    def register(self, manifest: ModelManifest, *, replace: bool = False) -> bool:
        """Store ``manifest`` as its version's; ``True`` if stored, ``False`` if that very manifest
        was there already. Another one there raises :class:`ManifestConflict` unless ``replace``."""
        text = manifest.model_dump_json()
        before = self.store.write(manifest.model, manifest.version, text, replace=replace)
        if before is not None and not replace and ModelManifest.model_validate_json(before) != manifest:
            raise ManifestConflict(
                f"{manifest.model} version {manifest.version} is registered with another manifest; versions "
                "are immutable: export the new model as a new version (or replace it on purpose)"
            )
        self._manifests[(manifest.model, manifest.version)] = manifest
        self._versions.forget(manifest.model)
        return before is None or (replace and before != text)

    def get(self, model: str, version: int) -> ModelManifest | None:
        """``model``'s manifest of ``version``; version 1 unregistered is the built-in default;
        ``None`` when there is none. A version not among the registered ones (as cached) is not
        looked up: an unknown pinned version costs no Redis call."""
        key = (model, version)
        cached = self._manifests.get(key)
        if cached is not None:
            return cached
        text = self.store.read(model, version) if version in self._versions.get(model) else None
        if text is not None:
            manifest = self._manifests[key] = ModelManifest.model_validate_json(text)
            return manifest
        if version == 1 and model in REGISTRY_MODELS:
            if model not in self._builtin:
                self._builtin[model] = default_manifest(model)
            return self._builtin[model]
        return None

    def versions(self, model: str) -> tuple[int, ...]:
        """``model``'s registered versions, ascending, with 1 (the built-in default) always in."""
        registered = self._versions.get(model)
        return registered if 1 in registered else (1, *registered)

    def default(self, model: str) -> int | None:
        """The default version operators set (``atelier ops set-default-version``), if any."""
        return self._defaults.get(model)

    def version_for(self, model: str, pinned: int | None, *, fallback: int | None = None) -> tuple[int, bool]:
        """The version a request runs on and whether it was pinned: ``pinned``, else the default,
        else ``fallback`` (a worker's ``*_MODEL_VERSION``), else the highest registered, else 1."""
        if pinned is not None:
            return pinned, True
        version = self.default(model) or fallback
        return (version if version is not None else self.versions(model)[-1]), False

    def resolve(self, model: str, pinned: int | None, *, fallback: int | None = None) -> ModelManifest:
        """The manifest of the version a request runs on (:meth:`version_for`); raises
        :class:`UnknownVersion` when that version has none."""
        version, was_pinned = self.version_for(model, pinned, fallback=fallback)
        manifest = self.get(model, version)
        if manifest is None:
            raise UnknownVersion(model, version, pinned=was_pinned, known=self.versions(model))
        return manifest

    def close(self) -> None:
        self.store.close()


@dataclass(frozen=True)
class Registered:
    """One version :func:`register_repository` found: ``stored`` False when it was registered already."""

    model: str
    version: int
    stored: bool
    path: Path


def register_repository(
    registry: ModelRegistry, repository: Path, *, replace: bool = False
) -> list[Registered]:
    """Register every ``<model>/<n>/manifest.json`` under ``repository`` (a Triton model
    repository) with ``registry``; folders of other models are skipped. Raises ``VersionRefused``
    for an invalid manifest (naming its file and field) or one filed under another model or version,
    and :class:`ManifestConflict` for a version registered with another manifest (unless ``replace``)."""
    found = sorted(
        (path for path in repository.glob(f"*/*/{MANIFEST_NAME}") if path.parent.name.isdigit()),
        key=lambda p: (p.parent.parent.name, int(p.parent.name)),
    )
    done: list[Registered] = []
    for path in found:
        if path.parent.parent.name not in REGISTRY_MODELS:
            continue
        try:
            manifest = read_manifest(path.parent)
        except ValueError as error:  # pydantic's ValidationError, naming the field
            raise VersionRefused(f"{path}: not a valid manifest: {error}") from None
        if (manifest.model, str(manifest.version)) != (path.parent.parent.name, path.parent.name):
            raise VersionRefused(f"{path} describes {manifest.model} version {manifest.version}")
        stored = registry.register(manifest, replace=replace)
        done.append(Registered(manifest.model, manifest.version, stored, path))
        log.info("registered %s version %s", manifest.model, manifest.version)
    return done
