"""RELIABILITY.md is generated from the results JSON: one entry per scenario and size, a
summary table linking to each entry, and a rerun replaces only its own entries."""

from __future__ import annotations

import json
from pathlib import Path

from bench.faults.checks import ScenarioResult
from bench.faults.report import save


def result(scenario: str, size: str, *, lost: int = 0) -> ScenarioResult:
    return ScenarioResult(
        scenario,
        size,
        jobs=10,
        faults_injected=2,
        succeeded=10 - lost,
        lost=lost,
        faults={"SIGKILL": 2},
        checks={"every job succeeded": lost == 0},
        figures={"jobs retried": 3},
    )


def test_entries_are_kept_per_scenario_and_size_and_a_rerun_replaces_only_its_own(tmp_path: Path) -> None:
    json_path, md_path = tmp_path / "results.json", tmp_path / "RELIABILITY.md"
    save(
        [result("worker_sigkill", "short"), result("s3_restart", "short")],
        command="a",
        json_path=json_path,
        md_path=md_path,
    )
    save([result("worker_sigkill", "long", lost=1)], command="b", json_path=json_path, md_path=md_path)

    entries = json.loads(json_path.read_text())["scenarios"]
    assert sorted(entries) == ["s3_restart (short)", "worker_sigkill (long)", "worker_sigkill (short)"]
    assert entries["worker_sigkill (long)"]["passed"] is False
    assert entries["worker_sigkill (short)"]["command"] == "a"

    report = md_path.read_text()
    assert "| [worker_sigkill (long)](#worker_sigkill-long-failed) | 10 | 2 | 9 | 0 | 1 | 0 | n/a |" in report
    assert "## worker_sigkill (long): FAILED" in report
    assert "## s3_restart (short): passed" in report
    assert "- ❌ every job succeeded" in report and "- jobs retried: 3" in report
    # short runs are listed before long ones
    assert report.index("(#s3_restart-short-passed)") < report.index("(#worker_sigkill-long-failed)")
