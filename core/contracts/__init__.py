"""Versioned request, job and event contracts (pydantic v2).

``v1`` is the current schema version; a breaking change adds ``v2`` beside it and workers
accept both for a deprecation window. JSON Schemas in ``docs/schemas/`` are generated.
"""

from core.contracts.jobs import (
    JobError,
    JobEvent,
    JobEventType,
    JobKind,
    JobRecord,
    JobState,
    StoredImage,
)
from core.contracts.v1 import (
    BodyMeasurements,
    CallbackSpec,
    GarmentByAttributes,
    GarmentFromListing,
    JobRequest,
    ListingAttributes,
    ListingImageRequest,
    OutputSpec,
    TryOnRequest,
    parse_request,
)

__all__ = [
    "BodyMeasurements",
    "CallbackSpec",
    "GarmentByAttributes",
    "GarmentFromListing",
    "JobError",
    "JobEvent",
    "JobEventType",
    "JobKind",
    "JobRecord",
    "JobRequest",
    "JobState",
    "ListingAttributes",
    "ListingImageRequest",
    "OutputSpec",
    "StoredImage",
    "TryOnRequest",
    "parse_request",
]
