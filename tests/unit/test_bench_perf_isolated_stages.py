"""The isolated-stages benchmark's arithmetic: each set's rows add up to its job threads' CPU,
the medians are taken per thread count over rounds, and the pipeline's rows are read from
the committed results by the same stage names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.perf.isolated_stages import STAGES, VARIANTS, per_image, pipeline_stages, plot, summary


def test_the_rows_add_up_to_the_job_threads_cpu() -> None:
    stages = {"encode": 0.8, "upload": 0.3, "status": 0.1}
    table = per_image(1.5, stages, images=100)

    assert list(table) == STAGES
    assert table["encode"] == 8.0 and table["upload"] == 3.0 and table["gate"] == 0.0
    assert table["rest"] == pytest.approx(3.0)  # 1.5 s of threads, 1.2 s of them timed
    assert sum(table.values()) == pytest.approx(15.0)


def test_a_remainder_below_zero_is_kept_so_the_rows_still_add_up() -> None:
    table = per_image(0.99, {"encode": 1.0}, images=10)

    assert table["rest"] == pytest.approx(-1.0)
    assert sum(table.values()) == pytest.approx(99.0)


def point(threads: int, round_: int, upload: float) -> dict[str, Any]:
    table = dict.fromkeys(STAGES, 1.0) | {"upload": upload}
    return {
        "threads": threads,
        "round": round_,
        "ms_per_image": table,
        "total_ms_per_image": sum(table.values()),
        "images_per_s": 100.0 + round_,
    }


def test_medians_are_per_thread_count_and_celery_counts_per_image() -> None:
    points = [point(1, 0, 1.0), point(1, 1, 3.0), point(1, 2, 2.0), point(8, 0, 5.0), point(8, 1, 7.0)]
    celery = [{"ms_per_message": 1.2}, {"ms_per_message": 0.8}, {"ms_per_message": 1.0}]

    found = summary(points, celery)

    assert found["by_threads"]["1"]["ms_per_image"]["upload"] == 2.0
    assert found["by_threads"]["1"]["rounds"] == 3
    assert found["by_threads"]["8"]["ms_per_image"]["upload"] == 6.0
    assert found["by_threads"]["8"]["images_per_s"] == 100.5
    assert found["celery_ms_per_message"] == 1.0
    assert found["celery_ms_per_image"] == pytest.approx(1.0 / VARIANTS)


def test_the_pipeline_rows_are_its_stage_tables_rows_by_the_same_names() -> None:
    found = {"cpu_by_stage": {"encoding (worker)": 4.5, "S3 put, client side (worker)": 1.6, "Redis": 0.3}}

    stages = pipeline_stages(found)

    assert stages["encode"] == 4.5 and stages["upload"] == 1.6 and stages["gate"] == 0.0
    assert set(stages) == set(STAGES)


def test_the_pipeline_points_median_beside_the_job_codes() -> None:
    rows = "S3 put, client side (worker)"
    piped = [{"cpu_by_stage": {rows: v}, "images_per_s": v * 10} for v in (1.0, 3.0, 2.0)]

    found = summary([point(8, 0, 1.0)], [], piped)

    assert found["pipeline_1_process"]["upload"] == 2.0
    assert found["pipeline_images_per_s"] == 20.0
    assert summary([point(8, 0, 1.0)], [])["pipeline_1_process"] == {}


def test_the_plot_is_written(tmp_path: Path) -> None:
    piped = [{"cpu_by_stage": {"encoding (worker)": 4.0}, "images_per_s": 90.0}]
    found = summary([point(1, 0, 1.0), point(8, 0, 2.0)], [{"ms_per_message": 1.0}], piped)
    path = tmp_path / "plots" / "isolated-stages.png"

    plot(found, path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
