"""A megabyte in each request field: every case must be refused quickly, with a short error.

Each :class:`Oversized` puts :data:`MEGABYTE` into one place of a valid example (a field, a
``style`` key or value, an unknown field's name) and names where pydantic reports it (``loc``)
and the rule (``type``), so tests on the contracts, the producer and the CLI check the same
list: refused, naming the field and the rule, in an error far shorter than the input.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from tests.examples import LISTING_EXAMPLE, TRYON_EXAMPLE, apply_patch

#: a string of one million characters
MEGABYTE: Final = "x" * 1_000_000
#: the longest error text (``str(error)`` or one CLI line) a refusal may produce
MAX_ERROR_CHARS: Final = 500

_PATTERN = "string_pattern_mismatch"
_TOO_LONG = "string_too_long"


class Oversized(NamedTuple):
    kind: str  #: "listing" or "tryon"
    name: str
    data: dict[str, Any]
    loc: tuple[str | int, ...]
    type: str


def _listing(path: str, loc: tuple[str | int, ...], type_: str) -> Oversized:
    return Oversized("listing", path, apply_patch(LISTING_EXAMPLE, {path: MEGABYTE}), loc, type_)


def _tryon(path: str, loc: tuple[str | int, ...], type_: str) -> Oversized:
    return Oversized("tryon", path, apply_patch(TRYON_EXAMPLE, {path: MEGABYTE}), loc, type_)


OVERSIZED: Final[tuple[Oversized, ...]] = (
    _listing("requester", ("requester",), _PATTERN),
    _listing("listing_id", ("listing_id",), _PATTERN),
    _listing("idempotency_key", ("idempotency_key",), _PATTERN),
    _listing("schema_version", ("schema_version",), "literal_error"),
    _listing("attributes.category", ("attributes", "category"), "string_too_long"),
    _listing("attributes.colour", ("attributes", "colour"), _TOO_LONG),
    _listing("attributes.pattern", ("attributes", "pattern"), _TOO_LONG),
    _listing("attributes.style", ("attributes", "style"), "dict_type"),
    _listing("attributes.style.material", ("attributes", "style", "material"), _TOO_LONG),
    Oversized(
        "listing",
        "a style key",
        apply_patch(LISTING_EXAMPLE, {"attributes.style": {MEGABYTE: "linen"}}),
        ("attributes", "style"),
        _TOO_LONG,
    ),
    _listing("variants", ("variants",), "int_parsing"),
    _listing("seed", ("seed",), "int_parsing"),
    _listing("model_version", ("model_version",), "int_parsing"),
    _listing("output.format", ("output", "format"), "literal_error"),
    _listing("output.size", ("output", "size"), "int_parsing"),
    _listing("callback.url", ("callback", "url"), "url_too_long"),
    Oversized(
        "listing",
        "an http callback.url",
        apply_patch(LISTING_EXAMPLE, {"callback.url": "https://shop.example/" + MEGABYTE}),
        ("callback", "url"),
        "url_too_long",
    ),
    _listing("callback.events", ("callback", "events"), "frozen_set_type"),
    Oversized(
        "listing",
        "a callback event",
        apply_patch(LISTING_EXAMPLE, {"callback.events": [MEGABYTE]}),
        ("callback", "events", 0),
        "enum",
    ),
    Oversized("listing", "an unknown field name", {**LISTING_EXAMPLE, MEGABYTE: 1}, (), "extra_forbidden"),
    _tryon("requester", ("requester",), _PATTERN),
    _tryon("shopper_ref", ("shopper_ref",), _PATTERN),
    _tryon("size", ("size",), "literal_error"),
    _tryon("measurements.unit_system", ("measurements", "unit_system"), "literal_error"),
    _tryon("measurements.height", ("measurements", "height"), "float_parsing"),
    _tryon("measurements.hips", ("measurements", "hips"), "float_parsing"),
    _tryon("garment.source", ("garment",), "union_tag_invalid"),
    _tryon("garment.category", ("garment", "attributes", "category"), "string_too_long"),
    _tryon("garment.colour", ("garment", "attributes", "colour"), _TOO_LONG),
    Oversized(
        "tryon",
        "garment.job_id",
        {**TRYON_EXAMPLE, "garment": {"source": "listing", "job_id": MEGABYTE}},
        ("garment", "listing", "job_id"),
        _TOO_LONG,
    ),
    Oversized(
        "tryon",
        "a measurements field name",
        apply_patch(TRYON_EXAMPLE, {f"measurements.{MEGABYTE}": 1}),
        ("measurements",),
        "extra_forbidden",
    ),
)
