"""Example requests: one valid of each kind, and one broken example per validation rule.

The valid ones are what the docs and the demo submit. Each :class:`RuleCase` breaks exactly one
rule of a valid example and names the error pydantic reports (``loc`` and ``type``), so tests on
both sides of the broker can check "refused, with the field and the rule, nothing enqueued".
"""

from __future__ import annotations

import copy
from typing import Any, Final, NamedTuple

#: a complete, valid listing request
LISTING_EXAMPLE: Final[dict[str, Any]] = {
    "requester": "shop-eu",
    "listing_id": "SKU-1001",
    "attributes": {"category": "dress", "colour": "navy", "style": {"material": "linen", "fit": "relaxed"}},
    "variants": 2,
    "seed": 7,
    "output": {"format": "webp", "size": 256},
    "callback": {"url": "https://shop.example/hooks/atelier", "events": ["job.succeeded", "job.failed"]},
    "idempotency_key": "sku-1001-images-v1",
}

#: a complete, valid try-on request (a garment described by attributes, metric measurements)
TRYON_EXAMPLE: Final[dict[str, Any]] = {
    "requester": "shop-eu",
    "shopper_ref": "anon-42",
    "measurements": {
        "unit_system": "metric",
        "height": 172,
        "weight": 68,
        "chest": 94,
        "waist": 78,
        "hips": 98,
    },
    "garment": {"source": "attributes", "category": "t_shirt", "colour": "#c81e28"},
    "size": "M",
}

#: marks a field that a :class:`RuleCase` removes
DELETE: Final = object()


class RuleCase(NamedTuple):
    """One rule broken: ``patch`` (dotted path -> value, or ``DELETE``) applied to an example."""

    name: str
    patch: dict[str, Any]
    loc: tuple[str | int, ...]
    type: str


def apply_patch(example: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``example`` with each dotted path set (or removed, for ``DELETE``)."""
    data = copy.deepcopy(example)
    for path, value in patch.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return data


_IMPERIAL_OK = {"unit_system": "imperial", "height": 68, "weight": 150, "chest": 38, "waist": 32, "hips": 40}

LISTING_RULES: Final[tuple[RuleCase, ...]] = (
    RuleCase("requester is required", {"requester": DELETE}, ("requester",), "missing"),
    RuleCase(
        "requester is an identifier", {"requester": "shop eu"}, ("requester",), "string_pattern_mismatch"
    ),
    RuleCase("listing_id is required", {"listing_id": DELETE}, ("listing_id",), "missing"),
    RuleCase(
        "listing_id is at most 128 chars",
        {"listing_id": "x" * 129},
        ("listing_id",),
        "string_pattern_mismatch",
    ),
    RuleCase(
        "category is a slug",
        {"attributes.category": "Hat!"},
        ("attributes", "category"),
        "string_pattern_mismatch",
    ),
    RuleCase(
        "colour is a name or #rrggbb",
        {"attributes.colour": "bei ge"},
        ("attributes", "colour"),
        "value_error",
    ),
    RuleCase(
        "pattern is a slug",
        {"attributes.pattern": "Pin-Stripe"},
        ("attributes", "pattern"),
        "string_pattern_mismatch",
    ),
    RuleCase(
        "colour hex is #rrggbb", {"attributes.colour": "#12345"}, ("attributes", "colour"), "value_error"
    ),
    RuleCase(
        "colour hex is ASCII hex", {"attributes.colour": "#+1+2+3"}, ("attributes", "colour"), "value_error"
    ),
    RuleCase(
        "style has at most 32 fields",
        {"attributes.style": {f"k{i}": "v" for i in range(33)}},
        ("attributes", "style"),
        "too_long",
    ),
    RuleCase(
        "style values are at most 256 chars",
        {"attributes.style": {"k": "v" * 257}},
        ("attributes", "style", "k"),
        "string_too_long",
    ),
    RuleCase("variants >= 1", {"variants": 0}, ("variants",), "greater_than_equal"),
    RuleCase("variants <= 8", {"variants": 9}, ("variants",), "less_than_equal"),
    RuleCase("seed >= 0", {"seed": -1}, ("seed",), "greater_than_equal"),
    RuleCase("seed < 2**63", {"seed": 2**63}, ("seed",), "less_than"),
    RuleCase("model_version >= 1", {"model_version": 0}, ("model_version",), "greater_than_equal"),
    RuleCase("format is png, webp or jpeg", {"output.format": "gif"}, ("output", "format"), "literal_error"),
    RuleCase("size >= 32", {"output.size": 16}, ("output", "size"), "greater_than_equal"),
    RuleCase("size <= 1024", {"output.size": 2048}, ("output", "size"), "less_than_equal"),
    RuleCase(
        "callback url is http(s)", {"callback.url": "ftp://shop.example/x"}, ("callback", "url"), "url_scheme"
    ),
    RuleCase(
        "callback subscribes to something", {"callback.events": []}, ("callback", "events"), "too_short"
    ),
    RuleCase(
        "callback events exist", {"callback.events": ["job.exploded"]}, ("callback", "events", 0), "enum"
    ),
    RuleCase(
        "idempotency_key is an identifier",
        {"idempotency_key": "key with spaces"},
        ("idempotency_key",),
        "string_pattern_mismatch",
    ),
    RuleCase("schema_version is 1", {"schema_version": "2"}, ("schema_version",), "literal_error"),
    RuleCase("kind matches the model", {"kind": "tryon"}, ("kind",), "literal_error"),
    RuleCase("unknown fields are refused", {"colour": "red"}, ("colour",), "extra_forbidden"),
)

TRYON_RULES: Final[tuple[RuleCase, ...]] = (
    RuleCase("shopper_ref is required", {"shopper_ref": DELETE}, ("shopper_ref",), "missing"),
    RuleCase(
        "shopper_ref is an identifier",
        {"shopper_ref": "jane@doe"},
        ("shopper_ref",),
        "string_pattern_mismatch",
    ),
    RuleCase("height 145-205 cm", {"measurements.height": 120}, ("measurements", "height"), "value_error"),
    RuleCase("weight 40-140 kg", {"measurements.weight": 200}, ("measurements", "weight"), "value_error"),
    RuleCase("chest 75-140 cm", {"measurements.chest": 50}, ("measurements", "chest"), "value_error"),
    RuleCase("waist 55-135 cm", {"measurements.waist": 150}, ("measurements", "waist"), "value_error"),
    RuleCase("hips 80-145 cm", {"measurements.hips": 60}, ("measurements", "hips"), "value_error"),
    RuleCase(
        "imperial ranges are checked after conversion",
        {"measurements": {**_IMPERIAL_OK, "height": 100}},
        ("measurements", "height"),
        "value_error",
    ),
    RuleCase(
        "unit system is metric or imperial",
        {"measurements.unit_system": "stone"},
        ("measurements", "unit_system"),
        "literal_error",
    ),
    RuleCase(
        "measurements are numbers",
        {"measurements.height": "tall"},
        ("measurements", "height"),
        "float_parsing",
    ),
    RuleCase(
        "measurements are all required", {"measurements.hips": DELETE}, ("measurements", "hips"), "missing"
    ),
    RuleCase(
        "garment source is listing or attributes",
        {"garment": {"source": "catalog", "category": "dress", "colour": "red"}},
        ("garment",),
        "union_tag_invalid",
    ),
    RuleCase(
        "garment job id is 32 hex digits",
        {"garment": {"source": "listing", "job_id": "not-a-job"}},
        ("garment", "listing", "job_id"),
        "string_pattern_mismatch",
    ),
    RuleCase(
        "garment variant 0-7",
        {"garment": {"source": "listing", "job_id": "0" * 32, "variant": 8}},
        ("garment", "listing", "variant"),
        "less_than_equal",
    ),
    RuleCase("size is on the size chart", {"size": "XXL"}, ("size",), "literal_error"),
    RuleCase("requester is required", {"requester": DELETE}, ("requester",), "missing"),
    RuleCase("unknown fields are refused", {"email": "jane@example.com"}, ("email",), "extra_forbidden"),
)


class ConditionCase(NamedTuple):
    """A request whose shape is valid but whose condition the built-in version 1 does not know:
    refused at submit (``core.contracts.conditions``), with this path, type and exact message."""

    name: str
    patch: dict[str, Any]
    loc: tuple[str, ...]
    type: str
    msg: str


_V1_CATEGORIES = "t_shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle_boot"
_V1_COLOURS = "black, white, grey, red, orange, yellow, green, blue, navy, purple, pink, brown"
_V1_WEARABLE = "t_shirt, trouser, pullover, dress, coat, shirt"

LISTING_CONDITION_RULES: Final[tuple[ConditionCase, ...]] = (
    ConditionCase(
        "category is one of the version's",
        {"attributes.category": "hat"},
        ("attributes", "category"),
        "unknown_category",
        f"'hat' is not a category of product_cgan v1; allowed: {_V1_CATEGORIES}",
    ),
    ConditionCase(
        "colour is one of the version's",
        {"attributes.colour": "beige"},
        ("attributes", "colour"),
        "unknown_colour",
        f"'beige' is not a colour of product_cgan v1; allowed: {_V1_COLOURS} or #rrggbb",
    ),
    ConditionCase(
        "a version without patterns refuses one",
        {"attributes.pattern": "stripes"},
        ("attributes", "pattern"),
        "no_patterns",
        "product_cgan v1 has no patterns",
    ),
    ConditionCase(
        "a pinned version must exist",
        {"model_version": 99},
        ("model_version",),
        "unknown_model_version",
        "product_cgan has no version 99; its versions: 1",
    ),
)

TRYON_CONDITION_RULES: Final[tuple[ConditionCase, ...]] = (
    ConditionCase(
        "garment category is wearable",
        {"garment.category": "sandal"},
        ("garment", "category"),
        "not_wearable",
        f"'sandal' cannot be tried on by tryon_cvae v1; wearable categories: {_V1_WEARABLE}",
    ),
    ConditionCase(
        "garment category is the try-on version's",
        {"garment.category": "skirt"},
        ("garment", "category"),
        "not_wearable",
        f"'skirt' is not a category of tryon_cvae v1; wearable categories: {_V1_WEARABLE}",
    ),
    ConditionCase(
        "garment colour is the product version's",
        {"garment.colour": "teal"},
        ("garment", "colour"),
        "unknown_colour",
        f"'teal' is not a colour of product_cgan v1; allowed: {_V1_COLOURS} or #rrggbb",
    ),
)
