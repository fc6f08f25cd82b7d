"""The benchmark report's arithmetic: the ceiling is the slower limit, targets are ratios within
one run, and the dynamic-batching-off repository drops only the batcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.perf.report import render, targets
from bench.perf.rig import without_dynamic_batching
from embedded.triton import DEFAULT_REPOSITORY


def point(processes: int, images_per_s: float, rss: float) -> dict[str, Any]:
    return {"processes": processes, "images_per_s": images_per_s, "worker_rss_mb": rss}


def results() -> dict[str, Any]:
    return {
        "ceiling": {"models": {"product_cgan": {"best": {"images_per_s": 500.0}}}},
        "result_path": {"best": {"images_per_s": 200.0}},
        "pipeline": {"points": [point(1, 90.0, 98.0), point(2, 170.0, 99.0)], "best": point(2, 170.0, 99.0)},
        "inprocess": {"points": [point(1, 100.0, 270.0), point(2, 150.0, 275.0)]},
        "backlog": {"p95_ratio_succeeded": 1.7},
    }


def test_targets_compare_against_the_slower_limit_and_the_same_process_count() -> None:
    found = targets(results())

    assert found["pipeline_vs_ceiling"] == {"ratio": 0.85, "goal": 0.8, "met": True}  # 170 / min(500, 200)
    assert found["pipeline_vs_inprocess"]["ratio_by_processes"] == {"1": 0.9, "2": 1.13}
    assert found["pipeline_vs_inprocess"]["met"] is False
    assert found["worker_rss"]["met"] is True
    assert found["tryon_p95_under_backlog"]["met"] is False


def test_report_names_each_target_with_its_verdict() -> None:
    data = {"benchmarks": {}, "targets": targets(results())}

    text = render(data)

    assert "| end-to-end listing throughput / ceiling | 0.85x | >= 0.8x | met |" in text
    assert "| try-on p95 under backlog / idle p95 | 1.7x | <= 1.5x | **missed** |" in text


def test_repository_without_dynamic_batching_keeps_everything_else(tmp_path: Path) -> None:
    copy = without_dynamic_batching(DEFAULT_REPOSITORY, tmp_path / "repo")

    for config in DEFAULT_REPOSITORY.glob("*/config.pbtxt"):
        original, changed = config.read_text(), (copy / config.parent.name / "config.pbtxt").read_text()
        assert "dynamic_batching" in original and "dynamic_batching" not in changed
        assert "instance_group" in changed and changed.count("parameters:") == original.count("parameters:")
