"""The catalog check: every bad row is reported by line and file before training, nothing is
dropped silently, and --skip-invalid writes what it skipped."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.catalog_fixture import BAD_ROWS, GOOD_ROWS, write_catalog
from training.catalog.images import load_training_image
from training.catalog.report import print_check, write_skipped
from training.catalog.validate import CatalogError, check_catalog
from training.cli import app


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    write_catalog(tmp_path / "catalog")
    return tmp_path / "catalog"


def test_each_kind_of_bad_row_is_reported_with_its_line_and_file(catalog: Path) -> None:
    check = check_catalog(catalog, Path("attributes.csv"), min_side=32)
    first_bad_line = GOOD_ROWS + 2  # header is line 1
    want = [(first_bad_line + i, row.split(",")[0], rule) for i, (rule, row) in enumerate(BAD_ROWS.items())]
    assert [(p.line, p.file, p.rule) for p in check.problems] == want
    assert [r.line for r in check.rows] == list(range(2, first_bad_line))
    assert "'hat' is not one of: scarf, tee, skirt" in check.problems[2].detail
    assert "16x16 px" in check.problems[3].detail and ">= 32" in check.problems[3].detail
    assert "already listed on line 3" in check.problems[4].detail


def test_the_report_is_a_table_naming_line_file_and_rule(catalog: Path) -> None:
    check = check_catalog(catalog, Path("attributes.csv"), min_side=32)
    console = Console(record=True, width=200)
    print_check(check, console)
    text = console.export_text()
    assert f"{GOOD_ROWS + len(BAD_ROWS)} rows, {GOOD_ROWS} valid, {len(BAD_ROWS)} invalid" in text
    for line, (rule, row) in enumerate(BAD_ROWS.items(), start=GOOD_ROWS + 2):
        assert any(str(line) in t and row.split(",")[0] in t and rule in t for t in text.splitlines())


def test_skipped_rows_file_keeps_each_row_with_its_problems(catalog: Path, tmp_path: Path) -> None:
    check = check_catalog(catalog, Path("attributes.csv"), min_side=32)
    with write_skipped(check, tmp_path / "skipped.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == [row.split(",")[0] for row in BAD_ROWS.values()]
    assert all(r["sku"] == "SKU-BAD" for r in rows)
    assert [r["problems"].split(":")[0] for r in rows] == list(BAD_ROWS)


def test_same_image_bytes_under_another_name_is_a_duplicate(catalog: Path) -> None:
    (catalog / "copy.png").write_bytes((catalog / "good_00.png").read_bytes())
    with (catalog / "attributes.csv").open("a") as handle:
        handle.write("copy.png,scarf,teal,SKU-COPY\n")
    problems = check_catalog(catalog, Path("attributes.csv"), min_side=32).problems
    assert (problems[-1].file, problems[-1].rule, problems[-1].detail) == (
        "copy.png",
        "duplicate row",
        "same image bytes as line 2",
    )


def test_a_file_outside_the_catalog_is_refused(catalog: Path) -> None:
    with (catalog / "attributes.csv").open("a") as handle:
        handle.write("../elsewhere.png,scarf,teal,X\n")
    assert check_catalog(catalog, Path("attributes.csv"), min_side=32).problems[-1].rule == (
        "file outside catalog"
    )


def test_missing_column_and_bad_conditions_refuse_the_whole_catalog(catalog: Path) -> None:
    (catalog / "no_colour.csv").write_text("file,category\ngood_00.png,scarf\n")
    with pytest.raises(CatalogError, match=r"missing column.*colour"):
        check_catalog(catalog, Path("no_colour.csv"), min_side=32)
    conditions = json.loads((catalog / "conditions.json").read_text())
    conditions["colours"][1]["index"] = 5
    (catalog / "conditions.json").write_text(json.dumps(conditions))
    with pytest.raises(
        CatalogError, match=r"(?s)conditions.json: not a valid.*colours\[1\] \(coral\) has index 5"
    ):
        check_catalog(catalog, Path("attributes.csv"), min_side=32)


def test_catalog_defines_patterns_and_the_csv_must_carry_them(catalog: Path) -> None:
    conditions = json.loads((catalog / "conditions.json").read_text())
    conditions["patterns"] = [{"index": 0, "name": "plain"}, {"index": 1, "name": "stripes"}]
    (catalog / "conditions.json").write_text(json.dumps(conditions))
    with pytest.raises(CatalogError, match=r"missing column.*pattern"):
        check_catalog(catalog, Path("attributes.csv"), min_side=32)
    (catalog / "patterned.csv").write_text(
        "file,category,colour,pattern\ngood_00.png,scarf,teal,stripes\ngood_01.png,tee,teal,tartan\n"
    )
    check = check_catalog(catalog, Path("patterned.csv"), min_side=32)
    assert check.rows[0].pattern == 1
    assert [(p.line, p.rule) for p in check.problems] == [(3, "unknown pattern")]


def test_training_image_is_squared_on_white_and_resized(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGBA", (60, 30), (200, 0, 0, 255)).save(tmp_path / "wide.png")
    pixels = load_training_image(tmp_path / "wide.png", 32)
    assert pixels.shape == (32, 32, 3)
    assert tuple(pixels[0, 16]) == (255, 255, 255) and tuple(pixels[16, 16]) == (200, 0, 0)


def test_cli_refuses_an_invalid_catalog_with_the_table_and_exit_2(catalog: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train-cgan", "--catalog", str(catalog), "--run-dir", str(tmp_path / "run"), "--epochs", "1"],
    )
    assert result.exit_code == 2
    assert "corrupt image" in result.output and "corrupt.png" in result.output
    assert "pass --skip-invalid" in result.output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_cli_refuses_an_unsupported_resolution_before_reading_the_catalog(
    catalog: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["train-cgan", "--catalog", str(catalog), "--resolution", "48", "--run-dir", str(tmp_path / "run")],
    )
    assert result.exit_code == 2 and "--resolution 48: choose one of 32, 64, 128" in result.output
