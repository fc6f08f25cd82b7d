"""The ``atelier`` CLI parts that need no services: schemas, CSV rows, argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from typer.testing import CliRunner

from core.contracts import ListingImageRequest, parse_request
from core.contracts.bounds import EXCERPT_CHARS, MAX_MESSAGE_CHARS
from producer import cli
from producer.cli import SCHEMA_MODELS, app, csv_row_to_request, describe_errors
from tests.oversized import MAX_ERROR_CHARS, MEGABYTE, OVERSIZED, Oversized

REPO = Path(__file__).parents[2]


def test_schema_command_writes_one_schema_per_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--out", str(tmp_path / "schemas")])
    assert result.exit_code == 0, result.output
    for stem, model in SCHEMA_MODELS.items():
        written = json.loads((tmp_path / "schemas" / f"{stem}.json").read_text())
        assert written == model.model_json_schema()


def test_committed_schemas_are_generated_from_the_models() -> None:
    for stem, model in SCHEMA_MODELS.items():
        committed = json.loads((REPO / "docs" / "schemas" / f"{stem}.json").read_text())
        assert committed == model.model_json_schema(), f"run: atelier schema --out docs/schemas ({stem})"


def test_csv_row_nests_attributes_style_output_and_callback() -> None:
    row = {
        "requester": "shop-eu",
        "listing_id": "SKU-9",
        "category": "shirt",
        "colour": "#283c8c",
        "variants": "3",
        "seed": "",
        "format": "jpeg",
        "style.material": "cotton",
        "callback_url": "https://shop.example/h",
        "callback_events": "job.succeeded; job.failed",
    }
    request = ListingImageRequest.model_validate(csv_row_to_request(row))
    assert (request.listing_id, request.variants, request.seed, request.output.format) == (
        "SKU-9",
        3,
        None,
        "jpeg",
    )
    assert request.attributes.style == {"material": "cotton"}
    assert request.callback is not None and {e.value for e in request.callback.events} == {
        "job.succeeded",
        "job.failed",
    }


def test_unknown_csv_column_is_refused_by_name() -> None:
    row = {"requester": "s", "listing_id": "a", "category": "bag", "colour": "red", "colour_name": "red"}
    errors = describe_errors(_refusal(csv_row_to_request(row)), tagged=True)
    assert errors == ["(listing) colour_name: Extra inputs are not permitted [extra_forbidden]"]


def _refusal(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        parse_request(data)
    return refused.value


def test_submit_needs_exactly_one_of_json_or_file() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["submit", "listing"]).exit_code == 2
    both = runner.invoke(app, ["submit", "listing", "--json", "{}", "--file", "x.json"])
    assert both.exit_code == 2 and "exactly one" in both.stderr


def test_submit_refuses_unreadable_json_before_connecting() -> None:
    result = CliRunner().invoke(app, ["submit", "tryon", "--json", "{nope"])
    assert result.exit_code == 2 and "cannot read the request" in result.stderr


def test_submit_refuses_invalid_request_before_connecting() -> None:
    result = CliRunner().invoke(app, ["submit", "listing", "--json", json.dumps({"requester": "shop"})])
    assert result.exit_code == 2
    assert "listing_id: Field required [missing]" in result.stderr
    assert "attributes: Field required [missing]" in result.stderr


@pytest.mark.parametrize("case", OVERSIZED, ids=lambda c: f"{c.kind}:{c.name}")
def test_submit_refuses_a_megabyte_in_any_field_in_a_short_message_before_connecting(
    case: Oversized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_producer() -> None:
        raise AssertionError("an invalid request must not reach the producer")

    monkeypatch.setattr(cli, "_producer", no_producer)
    request = tmp_path / "request.json"
    request.write_text(json.dumps(case.data))
    result = CliRunner().invoke(app, ["submit", case.kind, "--file", str(request)])
    assert result.exit_code == 2, result.output[:500]
    path = ".".join(str(part) for part in case.loc) or "(request)"
    assert f"{path}: " in result.stderr and f"[{case.type}]" in result.stderr, result.stderr[:500]
    assert len(result.stderr) < MAX_ERROR_CHARS, result.stderr[:500]


def test_described_errors_cut_a_long_path_part_and_message_to_an_excerpt() -> None:
    detail: InitErrorDetails = {
        "type": PydanticCustomError("value_error", MEGABYTE),
        "loc": ("attributes", "style", MEGABYTE),
        "input": MEGABYTE,
    }
    (line,) = describe_errors(ValidationError.from_exception_data("ListingImageRequest", [detail]))
    assert line.startswith("attributes.style.xxxx") and line.endswith("[value_error]")
    assert len(line) < 4 * EXCERPT_CHARS + MAX_MESSAGE_CHARS
