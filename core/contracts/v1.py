"""Schema version 1 of the two requests Atelier accepts.

Every constraint lives on the model, so an invalid request fails in ``model_validate`` with
the field's path and the rule it broke, before anything is published. Every string has a bound
(``MAX_*`` below, stated in the field's description and the JSON schema), and a refusal quotes
at most a short excerpt of the value it refuses (``core.contracts.bounds``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    UrlConstraints,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.contracts.bounds import bounded_errors, quoted
from core.contracts.jobs import JobEventType
from serving_contract.sizing import MEASUREMENTS, SIZE_CHART
from serving_contract.taxonomy import CATEGORIES

SCHEMA_VERSION: Final = "1"

#: longest identifier (requester, listing id, shopper reference, idempotency key)
MAX_IDENTIFIER_CHARS: Final = 128
#: longest colour: a palette name or ``#rrggbb``
MAX_COLOUR_CHARS: Final = 32
#: longest callback URL
MAX_URL_CHARS: Final = 2048
#: most ``style`` entries, and the longest key and value of one
MAX_STYLE_ENTRIES: Final = 32
MAX_STYLE_KEY_CHARS: Final = 64
MAX_STYLE_VALUE_CHARS: Final = 256
#: no field name is longer than this; a longer key is an unknown field
MAX_FIELD_NAME_CHARS: Final = 32
#: a job id: 32 lowercase hex digits
JOB_ID_CHARS: Final = 32

#: identifiers chosen by callers (SKUs, requester ids, idempotency keys): safe in object keys.
#: The pattern itself caps the length; ``maxLength`` states it in the JSON schema.
Identifier = Annotated[
    str,
    StringConstraints(pattern=rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_IDENTIFIER_CHARS - 1}}}$"),
    Field(json_schema_extra={"maxLength": MAX_IDENTIFIER_CHARS}),
]
#: how each identifier's description ends
_IDENTIFIER_RULE = (
    f"; 1-{MAX_IDENTIFIER_CHARS} characters: letters, digits and . _ : - (starting with a letter or digit)"
)
if TYPE_CHECKING:  # mypy cannot read a Literal built at run time
    SizeLabel = str
else:
    SizeLabel = Literal[tuple(s.label for s in SIZE_CHART)]

_RANGES = {m.name: m for m in MEASUREMENTS}
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
#: a category, colour or pattern name, as a manifest spells it (``serving_contract.manifest.Slug``)
SLUG_PATTERN: Final = r"^[a-z][a-z0-9_]{0,39}$"
_SLUG = re.compile(SLUG_PATTERN)
#: where each model version lists its own vocabularies
_VERSIONS_AT = "GET /v1/models/{model}/versions/{version}"

#: a category slug; which ones a version knows is checked against its manifest at submit
#: (``core.contracts.conditions``), not here: versions differ
CategorySlug = Annotated[
    str,
    StringConstraints(pattern=SLUG_PATTERN, max_length=40),
    Field(
        description="category slug of the model version the request runs on (the pinned model_version, "
        "else the default). The built-in version 1's: " + ", ".join(c.slug for c in CATEGORIES) + ". "
        f"Each version lists its own at {_VERSIONS_AT.format(model='product_cgan', version='{version}')}"
    ),
]
#: a pattern name; likewise checked against the version's manifest
PatternName = Annotated[
    str,
    StringConstraints(pattern=SLUG_PATTERN, max_length=40),
    Field(
        description="fabric pattern, one of the version's conditions.patterns (e.g. 'stripes'); "
        "left out: the version's first pattern. A version without patterns refuses one"
    ),
]


def colour_shape(value: str) -> str:
    """A colour name (lower-cased) or ``#rrggbb`` (lower-cased): the shape only; the version's
    manifest says which names it knows and maps ``#rrggbb`` to its nearest colour."""
    if value.startswith("#"):
        # int(..., 16) alone would also take signs, spaces and non-ASCII digits
        if not _HEX_COLOUR.fullmatch(value):
            raise ValueError(f"colour must be a colour name or #rrggbb (6 hex digits), got {quoted(value)}")
        return value.lower()
    name = value.lower()
    if not _SLUG.fullmatch(name):
        raise ValueError(f"colour must be a colour name (letters, digits, _) or #rrggbb, got {quoted(value)}")
    return name


PaletteColour = Annotated[
    str,
    StringConstraints(max_length=MAX_COLOUR_CHARS),
    AfterValidator(colour_shape),
    Field(
        description="colour name of the model version (e.g. 'navy') or '#rrggbb', mapped to that version's "
        f"nearest colour (and stored as its name); at most {MAX_COLOUR_CHARS} characters"
    ),
]
#: the callback URL: http or https, at most ``MAX_URL_CHARS`` characters
CallbackUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_CHARS)]
_INCH = 2.54
_POUND = 0.45359237


class Contract(BaseModel):
    """Strict base: unknown fields are refused instead of silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_long_field_names(cls, data: Any) -> Any:
        """Refuse a field name longer than any real one quoting an excerpt: as an unknown
        field, pydantic would put the whole name into the error's path."""
        if isinstance(data, Mapping):
            for name in data:
                if isinstance(name, str) and len(name) > MAX_FIELD_NAME_CHARS:
                    raise PydanticCustomError(
                        "extra_forbidden",
                        "unknown field {name}: extra fields are not permitted",
                        {"name": quoted(name)},
                    )
        return data


class CallbackSpec(Contract):
    url: CallbackUrl = Field(
        description=f"where signed status events are POSTed: http(s), at most {MAX_URL_CHARS} characters"
    )
    events: frozenset[JobEventType] = Field(
        default=frozenset(JobEventType),
        min_length=1,
        max_length=len(JobEventType),
        description="which events to deliver; all of them by default",
    )

    @field_serializer("events")
    def _events_in_order(self, events: frozenset[JobEventType]) -> list[str]:
        """Sorted, so the same request always serializes to the same JSON."""
        return sorted(event.value for event in events)


class OutputSpec(Contract):
    format: Literal["png", "webp", "jpeg"] = "png"
    size: int = Field(default=256, ge=32, le=1024, description="side of the stored square image in pixels")


class ListingAttributes(Contract):
    category: CategorySlug
    colour: PaletteColour
    pattern: PatternName | None = None
    style: dict[
        Annotated[str, StringConstraints(max_length=MAX_STYLE_KEY_CHARS)],
        Annotated[str, StringConstraints(max_length=MAX_STYLE_VALUE_CHARS)],
    ] = Field(
        default_factory=dict,
        max_length=MAX_STYLE_ENTRIES,
        description=f"stored with the images; the model ignores it. At most {MAX_STYLE_ENTRIES} entries, "
        f"keys up to {MAX_STYLE_KEY_CHARS} and values up to {MAX_STYLE_VALUE_CHARS} characters",
    )

    @field_validator("style", mode="before")
    @classmethod
    def _short_keys(cls, value: Any) -> Any:
        """Refuse an over-long key here, quoting an excerpt: checked per key, pydantic would
        put the whole key into the error's path."""
        if isinstance(value, Mapping):
            for key in value:
                if isinstance(key, str) and len(key) > MAX_STYLE_KEY_CHARS:
                    raise PydanticCustomError(
                        "string_too_long",
                        "style key {key} is over {max_length} characters",
                        {"key": quoted(key), "max_length": MAX_STYLE_KEY_CHARS},
                    )
        return value


class _Request(Contract):
    schema_version: Literal["1"] = SCHEMA_VERSION
    requester: Identifier = Field(
        description="the calling platform; selects the callback signing secret" + _IDENTIFIER_RULE
    )
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="fixes the images; random when absent")
    model_version: int | None = Field(
        default=None, ge=1, description="pin a model version; default if absent"
    )
    output: OutputSpec = Field(default_factory=OutputSpec)
    callback: CallbackSpec | None = None
    idempotency_key: Identifier | None = Field(
        default=None,
        description="resubmitting the same key returns the first job's id and does no new work"
        + _IDENTIFIER_RULE,
    )


class ListingImageRequest(_Request):
    kind: Literal["listing"] = "listing"
    listing_id: Identifier = Field(description="the catalog's listing or SKU id" + _IDENTIFIER_RULE)
    attributes: ListingAttributes
    variants: int = Field(default=4, ge=1, le=8, description="how many images to generate")


class BodyMeasurements(Contract):
    unit_system: Literal["metric", "imperial"] = Field(
        default="metric", description="metric: cm and kg; imperial: inches and pounds (converted on receipt)"
    )
    height: float
    weight: float
    chest: float
    waist: float
    hips: float

    @field_validator("height", "weight", "chest", "waist", "hips")
    @classmethod
    def _plausible(cls, value: float, info: ValidationInfo) -> float:
        limits = _RANGES[str(info.field_name)]
        imperial = info.data.get("unit_system") == "imperial"
        metric = value * (_POUND if limits.unit == "kg" else _INCH) if imperial else value
        if not limits.low <= metric <= limits.high:
            shown = f" ({value:g} {'lb' if limits.unit == 'kg' else 'in'})" if imperial else ""
            allowed = f"{limits.low:g}-{limits.high:g} {limits.unit}"
            raise ValueError(f"must be within {allowed}; got {metric:g} {limits.unit}{shown}")
        return value

    def metric(self) -> dict[str, float]:
        """Measurements in cm and kg, in the try-on model's order."""
        if self.unit_system == "metric":
            return {m.name: float(getattr(self, m.name)) for m in MEASUREMENTS}
        return {
            m.name: float(getattr(self, m.name)) * (_POUND if m.unit == "kg" else _INCH) for m in MEASUREMENTS
        }


def _tag_required(schema: dict[str, Any]) -> None:
    """On the wire the garment union needs its ``source`` tag (the default is for Python
    callers only): say so in the JSON schema, so clients do not send a garment without it."""
    schema["required"] = ["source", *[name for name in schema.get("required", []) if name != "source"]]


class GarmentFromListing(Contract):
    """A product image Atelier generated earlier: the listing job and which variant."""

    model_config = ConfigDict(json_schema_extra=_tag_required)

    source: Literal["listing"] = "listing"
    job_id: Annotated[
        str, StringConstraints(max_length=JOB_ID_CHARS, pattern=rf"^[0-9a-f]{{{JOB_ID_CHARS}}}$")
    ] = Field(description=f"the listing job's id: {JOB_ID_CHARS} lowercase hex digits")
    variant: int = Field(default=0, ge=0, le=7)


class GarmentByAttributes(Contract):
    """A garment described by attributes; the product model generates it first."""

    model_config = ConfigDict(json_schema_extra=_tag_required)

    source: Literal["attributes"] = "attributes"
    category: CategorySlug = Field(
        description="a wearable category of the try-on model version, which the product model version "
        "also knows (each lists its own at GET /v1/models/{model}/versions/{version})"
    )
    colour: PaletteColour


#: the garment ``source`` tags, in the order the union lists them
GARMENT_SOURCES: Final = ("listing", "attributes")


class TryOnRequest(_Request):
    kind: Literal["tryon"] = "tryon"
    shopper_ref: Identifier = Field(
        description="opaque reference chosen by the caller; no personal data" + _IDENTIFIER_RULE
    )
    measurements: BodyMeasurements
    garment: Annotated[GarmentFromListing | GarmentByAttributes, Field(discriminator="source")]
    size: SizeLabel = Field(description="garment size from the size chart")

    @field_validator("garment", mode="before")
    @classmethod
    def _known_source(cls, value: Any) -> Any:
        """Refuse an unknown ``source`` quoting an excerpt: pydantic's own message repeats the
        tag, however long it is."""
        source = value.get("source") if isinstance(value, Mapping) else None
        if isinstance(source, str) and source not in GARMENT_SOURCES:
            raise PydanticCustomError(
                "union_tag_invalid",
                "garment source {tag} is not one of {expected}",
                {"tag": quoted(source), "expected": ", ".join(map(repr, GARMENT_SOURCES))},
            )
        return value


def _request_kind(data: Any) -> str | None:
    """The ``kind`` tag, or a guess from the fields when a dict leaves it out."""
    if isinstance(data, BaseModel):
        return getattr(data, "kind", None)
    if not isinstance(data, Mapping):
        return None
    kind = data.get("kind")
    if kind is not None:
        return kind if isinstance(kind, str) else None
    return "tryon" if "shopper_ref" in data else "listing"


#: either request, told apart by ``kind`` (or, without it, by ``shopper_ref`` meaning try-on)
JobRequest = Annotated[
    Annotated[ListingImageRequest, Tag("listing")] | Annotated[TryOnRequest, Tag("tryon")],
    Discriminator(
        _request_kind,
        custom_error_type="unknown_kind",
        custom_error_message="kind must be 'listing' or 'tryon'",
    ),
]

_JOB_REQUEST: TypeAdapter[ListingImageRequest | TryOnRequest] = TypeAdapter(JobRequest)
R = TypeVar("R", ListingImageRequest, TryOnRequest)


def parse_request(data: Any) -> ListingImageRequest | TryOnRequest:
    """Validate a listing or try-on request from a dict or JSON string; raises a bounded
    ``ValidationError`` (``core.contracts.bounds``)."""
    with bounded_errors():
        if isinstance(data, str | bytes):
            return _JOB_REQUEST.validate_json(data)
        return _JOB_REQUEST.validate_python(data)


def validate_request(model: type[R], data: Any) -> R:
    """``data`` as ``model`` (either request); raises a bounded ``ValidationError``."""
    with bounded_errors():
        return model.model_validate(data)
