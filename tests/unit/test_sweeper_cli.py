"""``python -m worker.sweeper``: the typer command deploy/ starts (its manifests' options are
checked in test_deploy_manifests.py), with the sweeper and the metrics server faked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

import worker.sweeper as sweeper_module

runner = CliRunner()


class FakeSweeper:
    instances: ClassVar[list[FakeSweeper]] = []

    def __init__(self, settings: Any) -> None:
        self.runs: list[bool] = []
        self.closed = False
        FakeSweeper.instances.append(self)

    def run(self, *, once: bool) -> None:
        self.runs.append(once)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ports the CLI served /metrics on (nothing is really served)."""
    ports: list[int] = []
    FakeSweeper.instances.clear()
    monkeypatch.setattr(sweeper_module, "Sweeper", FakeSweeper)
    monkeypatch.setattr(sweeper_module, "use_json_format", lambda logger: None)
    monkeypatch.setattr("prometheus_client.start_http_server", lambda port, addr: ports.append(port))
    monkeypatch.setenv("ATELIER_METRICS_PORT", "9911")
    return ports


def test_once_sweeps_one_pass_without_serving_metrics(served: list[int]) -> None:
    result = runner.invoke(sweeper_module.cli, ["--once"])
    assert result.exit_code == 0, result.output
    [sweeper] = FakeSweeper.instances
    assert sweeper.runs == [True] and sweeper.closed and served == []


def test_without_options_it_sweeps_on_and_serves_metrics(served: list[int]) -> None:
    result = runner.invoke(sweeper_module.cli, [])
    assert result.exit_code == 0, result.output
    [sweeper] = FakeSweeper.instances
    assert sweeper.runs == [False] and sweeper.closed and served == [9911]


def test_an_unknown_option_exits_2_before_anything_starts(served: list[int]) -> None:
    result = runner.invoke(sweeper_module.cli, ["--interval", "5"])
    assert result.exit_code == 2 and FakeSweeper.instances == []


def test_the_module_runs_as_a_program() -> None:
    """The command deploy/ uses, ``python -m worker.sweeper``, parses its options."""
    done = subprocess.run(
        [sys.executable, "-m", "worker.sweeper", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=True,
    )
    assert "python -m worker.sweeper [OPTIONS]" in done.stdout and "--once" in done.stdout
