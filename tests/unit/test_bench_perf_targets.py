"""Issue 15's targets in the report: the pipeline against the shared-cores bound at the batches
Triton formed, orchestration CPU against the baseline's, and the older baseline kept readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.perf.report import _before_after, cpu_bars, grouped, load, render, targets


def point(processes: int, images_per_s: float, orchestration: float) -> dict[str, Any]:
    return {
        "app": "worker.app",
        "processes": processes,
        "images_per_s": images_per_s,
        "worker_rss_mb": 98.0,
        "orchestration_ms_per_image": orchestration,
        "cpu_total_ms_per_image": orchestration + 10.0,
        "cpu_by_process": {"listing worker: pool processes": 8.0, "Redis": 1.0},
        "process_kinds": {"listing worker: pool processes": "worker", "Redis": "redis"},
        "cpu_by_stage": {"encoding (worker)": 4.0, "Redis": 1.0},
        "formed_batches": {"product_cgan": {"mean_batch": 6.0, "executions": 10, "images": 60}},
    }


def bench(one: float, two: float, *, triton: float = 400.0) -> dict[str, Any]:
    points = [point(1, 60.0, one), point(2, 90.0, two)]
    return {
        "result_path": {"best": {"images_per_s": 200.0}},
        "pipeline": {
            "points": points,
            "best": points[1],
            "triton_at_formed_batches": {"images_per_s": triton, "points": [], "best_by_formed_batch": {}},
        },
    }


def test_pipeline_is_compared_with_the_bound_of_triton_at_its_formed_batches_and_the_result_path() -> None:
    found = targets(bench(10.0, 12.0))["pipeline_vs_shared_bound"]

    assert found["bound"] == pytest.approx(133.3, abs=0.1)  # 1 / (1/400 + 1/200)
    assert found["ratio"] == round(90.0 / 133.3, 2)
    assert found["met"] is False
    assert found["mean_formed_batch"] == 6.0


def test_orchestration_is_compared_with_the_baseline_at_the_same_process_count() -> None:
    found = targets(bench(5.0, 7.0), before=bench(10.0, 12.0))["orchestration_cpu"]

    assert found["ms_per_image_by_processes"] == {"1": 5.0, "2": 7.0}
    assert found["before_ms_per_image_by_processes"] == {"1": 10.0, "2": 12.0}
    assert found["ratio"] == 0.58  # the worse of 0.5 and 0.58
    assert found["met"] is False


def test_orchestration_without_a_baseline_has_no_verdict() -> None:
    found = targets(bench(5.0, 7.0))["orchestration_cpu"]

    assert found["ratio"] is None and found["met"] is False
    assert "no baseline" in render({"benchmarks": {}, "targets": {"orchestration_cpu": found}})


def test_the_legacy_baseline_becomes_the_first_of_the_baselines(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    old = {"pipeline": {"best": {"images_per_s": 41.7}}}
    path.write_text(json.dumps({"benchmarks": {}, "baseline": old, "baseline_targets": {}}))

    data = load(path)

    assert data["baselines"] == {"issue-5": old}
    assert "baseline" not in data and "baseline_targets" not in data


def test_before_and_after_shows_every_baseline_and_now_with_gaps_for_what_a_run_did_not_measure() -> None:
    old = {"pipeline": {"best": {"images_per_s": 41.7}, "points": []}}
    data = {"baselines": {"issue-5": old, "issue-15": bench(10.0, 12.0)}, "benchmarks": bench(5.0, 7.0)}

    text = "\n".join(_before_after(data))

    assert "| figure | before issue-5 | before issue-15 | now |" in text
    assert "| pipeline images/s (best) | 41.7 | 90.0 | 90.0 |" in text
    assert "| orchestration CPU ms/image, 2 proc | - | 12.0 | 7.0 |" in text


def test_cpu_bars_put_each_baseline_before_now() -> None:
    bars = cpu_bars(bench(5.0, 7.0), {"issue-15": bench(10.0, 12.0)})

    assert [name for name, _ in bars] == [
        "before issue-15\npipe 1p",
        "before issue-15\npipe 2p",
        "now\npipe 1p",
        "now\npipe 2p",
    ]


def test_the_process_bars_sum_each_queues_workers_and_leave_the_harness_out() -> None:
    p = {
        "cpu_by_process": {
            "listing worker: main process": 3.0,
            "listing-2 worker: main process": 2.0,
            "callbacks worker: main process": 1.0,
            "Redis": 0.5,
            "benchmark harness": 9.0,
        },
        "process_kinds": {
            "listing worker: main process": "worker",
            "listing-2 worker: main process": "worker",
            "callbacks worker: main process": "worker",
            "Redis": "redis",
            "benchmark harness": "harness",
        },
    }

    assert grouped(p, "cpu_by_process") == {
        "listing worker(s)": 5.0,
        "callbacks worker(s)": 1.0,
        "Redis": 0.5,
    }


def test_the_bound_with_the_judge_in_t_also_gives_the_product_model_alone() -> None:
    with_judge = bench(10.0, 12.0, triton=300.0)
    with_judge["pipeline"]["triton_at_formed_batches"]["product_only_images_per_s"] = 400.0

    found = targets(with_judge)["pipeline_vs_shared_bound"]

    assert found["bound"] == pytest.approx(120.0, abs=0.1)  # 1 / (1/300 + 1/200)
    assert found["ratio"] == 0.75
    assert found["product_only_bound"] == pytest.approx(133.3, abs=0.1)
    assert found["product_only_ratio"] == round(90.0 / 133.3, 2)
