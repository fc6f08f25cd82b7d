"""The performance benchmarks (``python -m bench.perf``) at their tiny size, end to end on the real
services: each runs and its results have the expected fields with sane, non-zero values. No
timing is asserted (the machine is shared; the figures are for BENCHMARKS.md, not for CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.perf import report
from bench.perf.__main__ import main
from tests.integration.services import require_services

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_every_benchmark_runs_tiny_and_reports_positive_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_services()
    json_path, md_path = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    plots = tmp_path / "plots"
    # the committed BENCHMARKS.md, results.json and plots stay as they are
    monkeypatch.setattr(
        "bench.perf.__main__.save",
        lambda results, **kw: report.save(results, json_path=json_path, md_path=md_path, plots=plots, **kw),
    )

    assert main(["--tiny", "--workdir", str(tmp_path / "work")]) == 0

    data = json.loads(json_path.read_text())
    bench = data["benchmarks"]
    assert set(bench) == {"ceiling", "result_path", "pipeline", "inprocess", "backlog", "scaling"}
    for model in ("product_cgan", "tryon_cvae"):
        assert bench["ceiling"]["models"][model]["best"]["images_per_s"] > 0
    assert bench["result_path"]["best"]["images_per_s"] > 0
    assert bench["result_path"]["encode_ms_per_image"] > 0
    for key in ("pipeline", "inprocess"):
        for point in bench[key]["points"]:
            assert point["succeeded"] == point["jobs"] and point["callbacks_received"] == point["jobs"]
            assert point["images_per_s"] > 0 and point["worker_rss_mb"] > 0
    # every process is found and read (a process's CPU counts in 10 ms ticks: at this size a
    # row may read 0, so the figures are checked for adding up, not for being positive)
    best = bench["pipeline"]["best"]
    kinds = set(best["process_kinds"].values())
    assert {"worker", "triton", "model", "s3", "broker", "redis", "receiver", "producer"} <= kinds
    assert best["processes_missing"] == []
    assert sum(best["cpu_by_stage"].values()) == pytest.approx(best["cpu_total_ms_per_image"], abs=0.05)
    assert best["worker_stage_ms_per_image"]["encode"] > 0
    assert best["formed_batches"]["product_cgan"]["executions"] > 0
    assert bench["pipeline"]["triton_at_formed_batches"]["images_per_s"] > 0
    backlog = bench["backlog"]
    for phase in ("idle", "backlog"):
        assert backlog[phase]["succeeded"] == backlog[phase]["jobs"] > 0
        assert 0 < backlog[phase]["to_succeeded_ms"]["p50"] <= backlog[phase]["to_callback_ms"]["p99"]
    scaling = bench["scaling"]
    assert {p["dynamic_batching"] for p in scaling["points"]} == {True, False}
    assert all(p["images_per_s"] > 0 for p in scaling["points"])
    assert scaling["stages"]["ms_per_image"]["encode (Pillow)"] > 0
    assert set(data["targets"]) == {
        "pipeline_vs_shared_bound",
        "orchestration_cpu",
        "pipeline_vs_ceiling",
        "pipeline_vs_inprocess",
        "worker_rss",
        "tryon_p95_under_backlog",
    }
    assert "## Targets" in md_path.read_text()
    assert {p.name for p in plots.iterdir()} == {
        "ceiling.png",
        "pipeline.png",
        "cpu.png",
        "backlog.png",
        "scaling.png",
    }


def test_the_isolated_stages_benchmark_runs_tiny(tmp_path: Path) -> None:
    """``python -m bench.perf.isolated_stages --before HEAD`` at a tiny size: every job of every
    set succeeds with its callback, and each set, both pipeline points, Celery's figure and the
    floor against REF's pipeline are there."""
    from bench.perf import isolated_stages

    require_services()
    output, plot = tmp_path / "isolated.json", tmp_path / "isolated.png"

    args = ["--jobs", "4", "--rounds", "1", "--messages", "20", "--before", "HEAD"]
    assert isolated_stages.main([*args, "--output", str(output), "--plot", str(plot)]) == 0

    data = json.loads(output.read_text())
    assert {p["threads"] for p in data["points"]} == {1, 8}
    for point in [*data["points"], *data["pipeline_rounds"], *data["before_rounds"]]:
        assert point["succeeded"] == point["jobs"] == point["callbacks_received"] == 4
    versus = data["against_before"]["1"]
    assert versus["rounds"] == 1 and versus["floor_ms_per_image"] > 0
    assert data["by_threads"]["8"]["ms_per_image"]["encode"] > 0
    assert data["pipeline_1_process"]["encode"] > 0
    assert data["celery_ms_per_message"] is not None
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_the_paired_benchmark_runs_tiny(tmp_path: Path) -> None:
    """``python -m bench.perf.paired`` at a tiny size against HEAD (the same models: one Triton),
    with a variable for this checkout's workers: both sides' jobs all succeed with their
    callback, and the round's ratios are there."""
    from bench.perf import paired

    require_services()
    output = tmp_path / "paired.json"

    args = ["--ref", "HEAD", "--rounds", "1", "--jobs", "4", "--env", "OMP_NUM_THREADS=1"]
    assert paired.main([*args, "--output", str(output)]) == 0

    data = json.loads(output.read_text())
    assert data["before"]["own_triton"] is False
    assert data["env"] == {"OMP_NUM_THREADS": "1"}
    for side in ("before", "after"):
        (point,) = data["points"][side]
        assert point["succeeded"] == point["jobs"] == point["callbacks_received"] == 4
    assert len(data["orchestration_ms_per_image"]["ratios_by_round"]["1"]) == 1
