"""The v1 request contracts: every rule refuses with its field path and rule; nothing else crashes."""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from core.contracts import (
    BodyMeasurements,
    JobError,
    JobEvent,
    JobEventType,
    JobRecord,
    ListingImageRequest,
    TryOnRequest,
    parse_request,
    v1,
)
from core.contracts.bounds import EXCERPT_CHARS, MAX_MESSAGE_CHARS, bounded
from core.contracts.codes import ErrorCode
from core.contracts.v1 import MAX_FIELD_NAME_CHARS, validate_request
from core.dead_letters import MAX_REASON_CHARS, as_json, dead_letter_headers, describe, reason_code
from core.errors import AtelierError, PermanentError
from core.topology import LISTING_TASK
from serving_contract.sizing import MEASUREMENTS
from tests.examples import (
    LISTING_EXAMPLE,
    LISTING_RULES,
    TRYON_EXAMPLE,
    TRYON_RULES,
    RuleCase,
    apply_patch,
)
from tests.oversized import MAX_ERROR_CHARS, OVERSIZED, Oversized
from worker.gate import inspect_message


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


def test_the_contract_checks_a_colour_s_shape_and_leaves_its_meaning_to_the_version() -> None:
    """Which names a colour may have, and which colour ``#rrggbb`` is, depend on the model version
    (``core.contracts.conditions``, tested in test_conditions.py); the contract lower-cases both."""

    def colour_of(value: str) -> str:
        data = apply_patch(LISTING_EXAMPLE, {"attributes.colour": value})
        return ListingImageRequest.model_validate(data).attributes.colour

    assert colour_of("#C01A2C") == "#c01a2c"
    assert colour_of("  NAVY ") == "navy"
    assert colour_of("coral") == "coral"  # a catalog version's colour: its manifest decides
    assert TryOnRequest.model_validate(TRYON_EXAMPLE).garment.colour == "#c81e28"  # type: ignore[union-attr]


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


# --- bounds: a megabyte anywhere is refused with a short error that names the field and rule ---

_MODELS: dict[str, type[ListingImageRequest] | type[TryOnRequest]] = {
    "listing": ListingImageRequest,
    "tryon": TryOnRequest,
}


def _assert_short_and_named(error: ValidationError, case: Oversized, *, kind_prefix: bool = False) -> None:
    loc = ((case.kind,) if kind_prefix else ()) + case.loc
    reported = [(tuple(e["loc"]), e["type"]) for e in error.errors()]
    assert (loc, case.type) in reported, (case.name, reported)
    assert len(str(error)) < MAX_ERROR_CHARS, (case.name, str(error)[:300])
    for item in error.errors():
        assert all(len(str(part)) <= EXCERPT_CHARS + 1 for part in item["loc"]), case.name
        assert len(item["msg"]) <= MAX_MESSAGE_CHARS + 1, case.name


@pytest.mark.parametrize("case", OVERSIZED, ids=lambda c: f"{c.kind}:{c.name}")
def test_a_megabyte_in_any_request_field_is_refused_with_a_short_error_naming_field_and_rule(
    case: Oversized,
) -> None:
    model = _MODELS[case.kind]
    with pytest.raises(ValidationError) as direct:
        model.model_validate(case.data)
    _assert_short_and_named(direct.value, case)
    with pytest.raises(ValidationError) as validated:
        validate_request(model, case.data)
    _assert_short_and_named(validated.value, case)
    with pytest.raises(ValidationError) as parsed:
        parse_request({**case.data, "kind": case.kind})
    _assert_short_and_named(parsed.value, case, kind_prefix=True)


def test_every_string_field_of_a_request_has_a_max_length_in_the_published_schema() -> None:
    def strings(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            found = [(path, node)] if node.get("type") == "string" and "const" not in node else []
            for key, value in node.items():
                found += strings(value, f"{path}.{key}")
            return found
        if isinstance(node, list):
            return [item for i, value in enumerate(node) for item in strings(value, f"{path}[{i}]")]
        return []

    for model in (ListingImageRequest, TryOnRequest):
        for path, schema in strings(model.model_json_schema(), model.__name__):
            assert "maxLength" in schema or "enum" in schema, path


def test_bounded_keeps_a_short_error_as_it_is_and_cuts_a_long_one() -> None:
    with pytest.raises(ValidationError) as short:
        ListingImageRequest.model_validate(apply_patch(LISTING_EXAMPLE, {"variants": 0}))
    assert bounded(short.value) is short.value
    error = ValidationError.from_exception_data(
        "X",
        [{"type": "string_too_long", "loc": ("a" * 100, 3), "input": "b" * 100, "ctx": {"max_length": 5}}],
    )
    (item,) = bounded(error).errors()
    assert item["loc"] == ("a" * EXCERPT_CHARS + "…", 3)
    assert item["input"] == "b" * EXCERPT_CHARS + "…"
    assert item["type"] == "string_too_long" and "at most 5" in item["msg"]


# --- error codes: one enum, never a stray string ---

_SOURCE_PACKAGES = ("core", "producer", "ops", "worker")
_REPO = Path(__file__).resolve().parents[2]


def test_no_error_code_is_written_as_a_plain_string_outside_the_enum() -> None:
    codes = {code.value for code in ErrorCode}
    stray = []
    for package in _SOURCE_PACKAGES:
        for path in sorted((_REPO / package).rglob("*.py")):
            if path == _REPO / "core" / "contracts" / "codes.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and node.value in codes:
                    stray.append(f"{path.relative_to(_REPO)}:{node.lineno}: {node.value!r}")
    assert not stray, "use ErrorCode members:\n" + "\n".join(stray)


#: exceptions that are no failure of their own: ``RetryLater`` carries an ``AtelierError`` to the task
_SIGNALS = {"worker.pipeline.RetryLater"}


def test_every_error_class_in_our_packages_derives_from_atelier_error() -> None:
    untyped = []
    for package in _SOURCE_PACKAGES:
        for path in sorted((_REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(_REPO).with_suffix("").parts).removesuffix(".__init__")
            module = importlib.import_module(name)
            for value in vars(module).values():
                if not (isinstance(value, type) and issubclass(value, BaseException)):
                    continue
                qualified = f"{value.__module__}.{value.__qualname__}"
                if value.__module__ != name or qualified in _SIGNALS:
                    continue
                if not issubclass(value, AtelierError):
                    untyped.append(qualified)
    assert not untyped, untyped


def test_job_records_and_errors_refuse_a_code_outside_the_enum() -> None:
    with pytest.raises(ValidationError):
        JobError.model_validate({"code": "something_else", "message": "m", "retryable": False})
    with pytest.raises(ValueError):
        PermanentError("something_else", "m")  # type: ignore[arg-type]


def test_a_receiver_accepts_a_callback_with_a_code_newer_than_its_own_enum() -> None:
    """Codes are added in minor versions: a receiver on an older release must still read the event."""
    failed = {"job_id": "j", "error": {"code": "a_code_added_later", "message": "m", "retryable": False}}
    event = JobEvent(type=JobEventType.FAILED, timestamp=datetime.now(UTC), data=failed)
    assert event.data["error"]["code"] == "a_code_added_later"


def test_the_published_record_and_callback_schemas_list_every_error_code() -> None:
    for model in (JobRecord, JobEvent):
        assert model.model_json_schema()["$defs"]["ErrorCode"]["enum"] == [code.value for code in ErrorCode]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_a_dead_letter_reason_reads_back_its_error_code(code: ErrorCode) -> None:
    headers = dead_letter_headers({}, code=code, detail="x" * 1000, queue="q", job_id=None)
    letter = describe(b"{}", headers, {})
    assert letter.code is code and len(letter.reason) <= MAX_REASON_CHARS
    assert as_json(letter)["code"] == code.value
    assert reason_code("delivery_limit (by RabbitMQ)") is None


def test_every_refusal_of_the_gate_carries_an_error_code() -> None:
    bodies: list[tuple[bytes, dict[str, Any], str]] = [
        (b"x" * 100, {"task": LISTING_TASK}, "application/json"),
        (b"{}", {}, "application/json"),
        (b"{}", {"task": "atelier.no.such"}, "application/json"),
        (b"{}", {"task": LISTING_TASK}, "text/plain"),
        (b"{not json", {"task": LISTING_TASK}, "application/json"),
        (b"[[], {}, {}]", {"task": LISTING_TASK}, "application/json"),
        (
            json.dumps([[], {"job_id": "j", "request": {"schema_version": "2"}}, {}]).encode(),
            {"task": LISTING_TASK},
            "application/json",
        ),
    ]
    seen = set()
    for body, headers, content_type in bodies:
        poison = inspect_message(body, headers, content_type, known_tasks={LISTING_TASK}, max_bytes=90)
        assert poison is not None and isinstance(poison.code, ErrorCode)
        seen.add(poison.code)
    assert len(seen) == len(bodies)


def test_no_request_field_name_is_longer_than_the_unknown_field_cutoff() -> None:
    models = (ListingImageRequest, TryOnRequest, *(m for m in vars(v1).values() if _is_contract(m)))
    assert all(len(name) <= MAX_FIELD_NAME_CHARS for model in models for name in model.model_fields)


def _is_contract(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, v1.Contract)
