"""Both train commands end a refused catalog run with its message and exit 2, before training:
an invalid catalog, an unasked resume of a checkpoint, a malformed --fits-like."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.catalog_fixture import write_catalog
from training.cli import app


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    write_catalog(tmp_path / "catalog")
    return tmp_path / "catalog"


@pytest.mark.parametrize("command", ["train-cgan", "train-cvae"])
def test_invalid_catalog_is_refused_with_exit_2_and_nothing_trained(
    command: str, catalog: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, [command, "--catalog", str(catalog), "--run-dir", str(run_dir)])
    assert result.exit_code == 2, result.output
    assert "pass --skip-invalid" in result.output
    assert not (run_dir / "checkpoint.pt").exists()


@pytest.mark.parametrize("command", ["train-cgan", "train-cvae"])
def test_existing_checkpoint_without_resume_is_refused_with_exit_2(
    command: str, catalog: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"an earlier run")
    result = CliRunner().invoke(
        app, [command, "--catalog", str(catalog), "--run-dir", str(run_dir), "--skip-invalid"]
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "pass --resume" in result.output
    assert (run_dir / "checkpoint.pt").read_bytes() == b"an earlier run"


def test_malformed_fits_like_is_refused_with_exit_2(catalog: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train-cvae", "--catalog", str(catalog), "--run-dir", str(tmp_path / "run"), "--fits-like", "tee"],
    )
    assert result.exit_code == 2
    assert "error: --fits-like takes SLUG=TEMPLATE, got ['tee']" in result.output
