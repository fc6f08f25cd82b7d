"""``GET /v1/models`` and ``GET /v1/models/{model}/versions/{version}``: what each model version
knows, so a caller builds its requests from the version they run on (issue 16).

Any valid key may read them (a publishable key too: the try-on page lists the wearable
categories). They read the model registry (``core.model_registry``) through the producer's,
cached per process like the submit's checks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from api.auth import authenticated
from api.keys.model import ApiKey
from api.problems import ProblemError, problem_responses
from api.routes.deps import producer
from core.model_registry import REGISTRY_MODELS
from producer.client import Producer
from serving_contract.manifest import ModelManifest

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelVersions(BaseModel):
    """One model: its versions and the one a request that pins none runs on."""

    model: str
    versions: list[int] = Field(description="versions with a manifest (1 is always there: the built-in one)")
    default: int | None = Field(description="the default operators set; none: the highest version")
    resolved: int = Field(description="the version a request without model_version runs on now")


class ModelList(BaseModel):
    models: list[ModelVersions]


ModelName = Annotated[str, Path(max_length=40, description="product_cgan, tryon_cvae or quality_judge")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="a version number")]


@router.get("", response_model=ModelList, responses=problem_responses(401, 503))
def list_models(
    key: ApiKey = Depends(authenticated),  # noqa: B008
    submitter: Producer = Depends(producer),  # noqa: B008
) -> ModelList:
    """Each model's versions and default; the version a request pinning none runs on."""
    registry = submitter.registry
    models = []
    for model in REGISTRY_MODELS:
        version, _ = registry.version_for(model, None)
        versions = list(registry.versions(model))
        models.append(
            ModelVersions(model=model, versions=versions, default=registry.default(model), resolved=version)
        )
    return ModelList(models=models)


@router.get(
    "/{model}/versions/{version}",
    response_model=ModelManifest,
    responses=problem_responses(401, 404, 422, 503),
)
def read_manifest(
    model: ModelName,
    version: Version,
    key: ApiKey = Depends(authenticated),  # noqa: B008
    submitter: Producer = Depends(producer),  # noqa: B008
) -> ModelManifest:
    """The manifest of one version: its categories, colours, patterns, sizes, image size, tensors."""
    manifest = submitter.registry.get(model, version) if model in REGISTRY_MODELS else None
    if manifest is None:
        raise ProblemError(
            404, "Not Found", f"{model[:40]} has no version {version}", kind="model-version-not-found"
        )
    return manifest
