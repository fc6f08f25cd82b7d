"""The v1 request contracts: every rule refuses with its field path and rule; nothing else crashes."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from core.contracts import (
    BodyMeasurements,
    JobEvent,
    JobRecord,
    ListingImageRequest,
    TryOnRequest,
    parse_request,
)
from serving_contract.palette import PALETTE
from serving_contract.sizing import MEASUREMENTS
from tests.examples import (
    LISTING_EXAMPLE,
    LISTING_RULES,
    TRYON_EXAMPLE,
    TRYON_RULES,
    RuleCase,
    apply_patch,
)


def _refusal(model: type[BaseModel], data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def _assert_names_field_and_rule(error: ValidationError, case: RuleCase) -> None:
    reported = [(tuple(e["loc"]), e["type"]) for e in error.errors()]
    assert (case.loc, case.type) in reported, reported
    # the rendered message (what a CLI user reads) names the dotted path and the rule
    assert ".".join(str(part) for part in case.loc) in str(error)
    assert case.type in str(error)


def test_valid_examples_validate() -> None:
    listing = ListingImageRequest.model_validate(LISTING_EXAMPLE)
    tryon = TryOnRequest.model_validate(TRYON_EXAMPLE)
    assert (listing.kind, listing.schema_version, listing.variants) == ("listing", "1", 2)
    assert (tryon.kind, tryon.garment.source, tryon.size) == ("tryon", "attributes", "M")


def test_minimal_listing_takes_defaults() -> None:
    request = ListingImageRequest.model_validate(
        {"requester": "shop", "listing_id": "sku-1", "attributes": {"category": "coat", "colour": "red"}}
    )
    assert (request.variants, request.seed, request.output.format, request.output.size) == (
        4,
        None,
        "png",
        256,
    )
    assert request.callback is None and request.idempotency_key is None


@pytest.mark.parametrize("case", LISTING_RULES, ids=lambda c: c.name)
def test_listing_rule_is_refused_naming_field_and_rule(case: RuleCase) -> None:
    _assert_names_field_and_rule(
        _refusal(ListingImageRequest, apply_patch(LISTING_EXAMPLE, case.patch)), case
    )


@pytest.mark.parametrize("case", TRYON_RULES, ids=lambda c: c.name)
def test_tryon_rule_is_refused_naming_field_and_rule(case: RuleCase) -> None:
    _assert_names_field_and_rule(_refusal(TryOnRequest, apply_patch(TRYON_EXAMPLE, case.patch)), case)


def test_measurement_range_errors_state_the_allowed_range() -> None:
    error = _refusal(TryOnRequest, apply_patch(TRYON_EXAMPLE, {"measurements.height": 120}))
    assert "145-205 cm" in str(error) and "got 120 cm" in str(error)


def test_imperial_measurements_are_converted_to_metric() -> None:
    body = BodyMeasurements(unit_system="imperial", height=70, weight=154, chest=38, waist=32, hips=40)
    metric = body.metric()
    assert list(metric) == [m.name for m in MEASUREMENTS]
    assert metric["height"] == pytest.approx(177.8)
    assert metric["weight"] == pytest.approx(69.853, abs=1e-3)
    assert metric["chest"] == pytest.approx(96.52)
    assert metric["waist"] == pytest.approx(81.28)
    assert metric["hips"] == pytest.approx(101.6)


def test_imperial_error_shows_both_units() -> None:
    measurements = {
        "unit_system": "imperial",
        "height": 100,
        "weight": 150,
        "chest": 38,
        "waist": 32,
        "hips": 40,
    }
    error = _refusal(BodyMeasurements, measurements)
    assert "254 cm" in str(error) and "(100 in)" in str(error)


def test_metric_measurements_pass_through() -> None:
    body = BodyMeasurements.model_validate(TRYON_EXAMPLE["measurements"])
    assert body.metric() == {"height": 172.0, "weight": 68.0, "chest": 94.0, "waist": 78.0, "hips": 98.0}


@pytest.mark.parametrize("colour", PALETTE, ids=lambda c: c.name)
def test_palette_hex_maps_to_its_own_colour(colour: Any) -> None:
    attributes = {"category": "dress", "colour": colour.hex.upper()}
    request = ListingImageRequest.model_validate(apply_patch(LISTING_EXAMPLE, {"attributes": attributes}))
    assert request.attributes.colour == colour.name
    assert request.attributes.colour_index == colour.index


def test_hex_maps_to_the_nearest_palette_colour_and_names_are_case_insensitive() -> None:
    def colour_of(value: str) -> str:
        data = apply_patch(LISTING_EXAMPLE, {"attributes.colour": value})
        return ListingImageRequest.model_validate(data).attributes.colour

    assert colour_of("#c01a2c") == "red"
    assert colour_of("#1a2260") == "navy"
    assert colour_of("#fafafa") == "white"
    assert colour_of("  NAVY ") == "navy"


def test_garment_by_attributes_hex_is_mapped_too() -> None:
    request = TryOnRequest.model_validate(TRYON_EXAMPLE)
    assert request.garment.colour == "red"  # type: ignore[union-attr]


def test_parse_request_picks_the_model_by_kind_or_fields() -> None:
    assert isinstance(parse_request(LISTING_EXAMPLE), ListingImageRequest)
    assert isinstance(parse_request(TRYON_EXAMPLE), TryOnRequest)
    assert isinstance(parse_request({**TRYON_EXAMPLE, "kind": "tryon"}), TryOnRequest)
    with pytest.raises(ValidationError, match="kind must be 'listing' or 'tryon'"):
        parse_request({**LISTING_EXAMPLE, "kind": "video"})


def test_request_json_is_stable() -> None:
    request = ListingImageRequest.model_validate(LISTING_EXAMPLE)
    body = request.model_dump(mode="json")
    assert body["callback"]["events"] == ["job.failed", "job.succeeded"]
    assert ListingImageRequest.model_validate(body) == request


@pytest.mark.parametrize("model", [ListingImageRequest, TryOnRequest, JobRecord, JobEvent])
def test_json_schema_is_generated(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    assert schema["title"] == model.__name__ and schema["type"] == "object"


# --- property: arbitrary JSON never crashes validation with anything but ValidationError ---

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["#", "#zzzzzz", "#ffffff", "navy", "dress", "listing", "M", "metric", "imperial", "1"])
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _shaped_like(example: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with the example's keys (nested too), each value either kept or arbitrary JSON."""

    def field(value: Any) -> st.SearchStrategy[Any]:
        nested = _shaped_like(value) if isinstance(value, dict) else st.just(value)
        return nested | _json

    return st.fixed_dictionaries({}, optional={key: field(value) for key, value in example.items()})


def _never_crashes(validate: Any, data: Any) -> None:
    with contextlib.suppress(ValidationError):
        validate(data)


_property = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_property
@given(_json | _shaped_like(LISTING_EXAMPLE))
def test_arbitrary_listing_input_raises_only_validation_error(data: Any) -> None:
    _never_crashes(ListingImageRequest.model_validate, data)


@_property
@given(_json | _shaped_like(TRYON_EXAMPLE))
def test_arbitrary_tryon_input_raises_only_validation_error(data: Any) -> None:
    _never_crashes(TryOnRequest.model_validate, data)


@_property
@given(_json | _shaped_like(LISTING_EXAMPLE) | _shaped_like(TRYON_EXAMPLE))
def test_arbitrary_input_to_parse_request_raises_only_validation_error(data: Any) -> None:
    _never_crashes(parse_request, data)
