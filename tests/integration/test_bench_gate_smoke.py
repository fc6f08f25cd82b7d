"""``python -m bench.gate --quick`` end to end on the real Triton server: every design answers the
same bytes, and the results have their fields with sane values. No timing and no recall target is
asserted here (the figures are for docs/benchmarks/gate.md, from the full run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.gate.__main__ import main
from bench.gate.plants import DEFECTS

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_the_gate_benchmark_runs_quick_and_reports_every_figure(tmp_path: Path) -> None:
    results_file = tmp_path / "results.json"
    main(quick=True, results_file=results_file)  # another file: the committed report stays

    results = json.loads(results_file.read_text())
    assert results["designs_agree"] is True
    assert results["images"]["test"]["clean"] >= 480 and results["images"]["test"]["planted"] >= 480
    assert set(results["test"]["recall"]) == {*DEFECTS, "all"}
    assert 0 < results["test"]["recall"]["all"]["recall"] <= 1
    assert 0 <= results["test"]["false_flags"]["rate"] < 1
    assert set(results["thresholds"]["calibrated"]) == {
        "min_category_probability",
        "max_colour_delta_e",
        "min_duplicate_hamming",
    }
    assert results["test"]["checks_cpu_ms_per_image"] > 0
    assert all(ms > 0 for ms in results["triton_compute_ms_per_image"].values())
    designs = {p["design"] for p in results["designs"]}
    assert {
        "generate only (no judge)",
        "a: two requests",
        "b: ensemble",
        "b: BLS",
        "a + gate checks",
    } == designs
    assert all(p["images_per_s_best"] > 0 and p["latency_min_ms"] > 0 for p in results["designs"])
