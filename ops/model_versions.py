"""What Triton has loaded, and the default version operators set (``atelier ops models``,
``set-default-version``, ``clear-default-version``).

Triton is asked over HTTP (``POST /v2/repository/index``, as the health checks are), so the
operator commands need no Triton client library. A default is refused unless Triton has that
version loaded and ``READY``. Triton loads the versions its ``version_policy`` names
(``config.pbtxt``; the default policy is the latest one only), so a new default usually needs
``version_policy: { all {} }`` or ``{ specific { versions: [...] } }`` first. Workers read the
defaults through a short cache (``worker.model_versions``).

A default must also have a registered manifest (``core.model_registry``), version 1 excepted
(the built-in one): :func:`register_versions` (``atelier ops register-versions``) registers every
``<model>/<n>/manifest.json`` of a model repository, so the submit and the workers know what that
version's conditions are.
"""

from __future__ import annotations

import json
import logging
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from core.errors import ErrorCode, RetryableError, VersionRefused
from core.model_registry import ModelRegistry, Registered, register_repository
from core.model_versions import MODELS, DefaultVersions, parse_version
from core.settings import AtelierSettings, ServiceSettings
from ops.checks import triton_http_base, triton_opener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelState:
    """One row of Triton's repository index."""

    name: str
    version: str
    state: str
    reason: str = ""


def repository_index(settings: ServiceSettings) -> list[ModelState]:
    """Every model version Triton knows, with its state (``READY``, ``UNAVAILABLE``, ...).

    Raises ``RetryableError(inference_unavailable)`` when Triton does not answer.
    """
    base = triton_http_base(settings)
    try:
        with triton_opener(settings).open(
            f"{base}/v2/repository/index", data=b"{}", timeout=settings.triton_timeout_s
        ) as response:
            index = json.loads(response.read())
    except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts, a non-JSON answer
        detail = f"HTTP {error.code}" if isinstance(error, urllib.error.HTTPError) else str(error)
        raise RetryableError(ErrorCode.INFERENCE_UNAVAILABLE, f"{base}: {detail}") from error
    rows = [
        ModelState(m["name"], str(m.get("version", "")), m.get("state", ""), m.get("reason", ""))
        for m in index
    ]
    return sorted(rows, key=lambda r: (r.name, len(r.version), r.version))


def set_default_version(settings: ServiceSettings, model: str, version: int | str) -> int:
    """Make ``version`` the default of ``model`` after checking Triton has it ``READY`` and, for
    a version other than 1, that its manifest is registered."""
    _check_model(model)
    number = _version(version)
    ready = {r.version for r in repository_index(settings) if r.name == model and r.state == "READY"}
    if str(number) not in ready:
        loaded = ", ".join(sorted(ready, key=int)) or "none"
        raise VersionRefused(
            f"{model} version {number} is not loaded and ready in Triton (ready: {loaded}); "
            "its version_policy in config.pbtxt decides which versions Triton loads"
        )
    _check_registered(settings, model, number)
    defaults = DefaultVersions(settings)
    try:
        defaults.set(model, number)
    finally:
        defaults.close()
    log.info("default version of %s set to %s", model, number, extra={"model": model, "version": number})
    return number


def default_versions(settings: ServiceSettings) -> dict[str, int | None]:
    """The default set for each model (``None``: none set)."""
    defaults = DefaultVersions(settings)
    try:
        return {model: defaults.get(model) for model in MODELS}
    finally:
        defaults.close()


def clear_default_version(settings: ServiceSettings, model: str) -> bool:
    """Remove ``model``'s default; ``True`` if one was set."""
    _check_model(model)
    defaults = DefaultVersions(settings)
    try:
        return defaults.clear(model)
    finally:
        defaults.close()


def register_versions(
    settings: AtelierSettings, repository: Path, *, replace: bool = False
) -> list[Registered]:
    """Register every ``<model>/<n>/manifest.json`` under ``repository`` (a Triton model
    repository; ``core.model_registry.register_repository``) in the model registry of
    ``settings``' Redis. Raises ``VersionRefused`` for an invalid manifest or one that differs from
    its version's registered one (unless ``replace``)."""
    registry = ModelRegistry.from_settings(settings)
    try:
        return register_repository(registry, repository, replace=replace)
    finally:
        registry.close()


def _check_registered(settings: AtelierSettings, model: str, version: int) -> None:
    """A default other than 1 needs a registered manifest: requests are checked against it."""
    if version == 1:
        return
    registry = ModelRegistry.from_settings(settings)
    try:
        known = registry.get(model, version) is not None
        versions = registry.versions(model)
    finally:
        registry.close()
    if not known:
        listed = ", ".join(map(str, versions))
        raise VersionRefused(
            f"{model} version {version} has no registered manifest (registered: {listed}); register it "
            "first: atelier ops register-versions --repository triton_models"
        )


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise VersionRefused(f"unknown model {model!r}; the models are {', '.join(MODELS)}")


def _version(value: int | str) -> int:
    try:
        return parse_version(value)
    except ValueError as error:
        raise VersionRefused(str(error)) from None
