"""The isolated-stages benchmark's arithmetic: each set's rows add up to its job threads' CPU,
the medians are taken per thread count over rounds, the pipeline's rows are read from the
committed results by the same stage names, and the floor against REF's pipeline adds up the job
code's stages but encoding, Celery per image and the other processes' rows, round by round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.perf.isolated_stages import (
    OTHER_PROCESS_ROWS,
    STAGES,
    VARIANTS,
    against_before,
    floor_ms,
    per_image,
    pipeline_stages,
    plot,
    summary,
)


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


def pipeline_point(
    round_: int, processes: int, orchestration: float, other_ms: float = 0.1
) -> dict[str, Any]:
    table = {row: other_ms for row in OTHER_PROCESS_ROWS}
    table |= {"model compute (Triton python stubs)": 9.0, "S3 server (weed)": 9.0, "encoding (worker)": 9.0}
    return {
        "round": round_,
        "processes": processes,
        "orchestration_ms_per_image": orchestration,
        "cpu_by_stage": table,
    }


def test_the_floor_is_the_job_codes_stages_but_encoding_celery_per_image_and_the_other_processes() -> None:
    job_code = dict.fromkeys(STAGES, 0.5) | {"encode": 3.0}

    floor = floor_ms(job_code, celery_ms_per_message=2.0, pipeline_point=pipeline_point(0, 1, 5.0))

    # 6 stages of 0.5 (encoding left out), 2.0 / 4 images of Celery, 5 other processes at 0.1;
    # the model, the S3 server and encoding rows of the pipeline point are not orchestration
    assert len(OTHER_PROCESS_ROWS) == 5
    assert floor == pytest.approx(3.0 + 0.5 + 0.5)


def test_against_before_takes_each_rounds_ratios_then_their_medians_per_process_count() -> None:
    points = [point(1, r, upload=1.0) for r in range(3)] + [point(8, 0, upload=9.0)]
    celery = [{"round": r, "ms_per_message": 4.0} for r in range(3)]
    piped = [pipeline_point(r, p, 5.0 + r) for r in range(3) for p in (1, 2)]
    befores = [
        {"round": r, "processes": p, "orchestration_ms_per_image": was}
        for r, was in enumerate((10.0, 12.0, 8.0))
        for p in (1, 2)
    ]

    found = against_before(points, celery, piped, befores)

    floor = 6 * 1.0 + 4.0 / VARIANTS + 5 * 0.1  # the 8-thread set does not count
    one = found["1"]
    assert one["rounds"] == 3 and set(found) == {"1", "2"}
    assert one["floor_ms_per_image"] == pytest.approx(floor)
    assert one["pipeline_ratio_by_round"] == [0.5, 0.5, 0.875]  # 5/10, 6/12, 7/8
    assert one["pipeline_ratio"] == 0.5 and one["before_ms_per_image"] == 10.0
    assert one["floor_ratio_by_round"] == [round(floor / was, 3) for was in (10.0, 12.0, 8.0)]
    assert one["floor_ratio"] == round(floor / 10.0, 3)


def test_a_round_missing_a_part_is_left_out_of_the_comparison() -> None:
    points = [point(1, 0, upload=1.0), point(1, 1, upload=1.0)]
    celery = [{"round": 0, "ms_per_message": 4.0}]  # round 1 has no Celery figure
    piped = [pipeline_point(0, 1, 5.0), pipeline_point(1, 1, 5.0)]
    befores = [{"round": r, "processes": 1, "orchestration_ms_per_image": 10.0} for r in (0, 1)]

    assert against_before(points, celery, piped, befores)["1"]["rounds"] == 1
    assert against_before(points, celery, [], befores) == {}


def test_the_plot_with_refs_points_has_its_second_panel(tmp_path: Path) -> None:
    found = summary([point(1, 0, 1.0), point(8, 0, 2.0)], [{"ms_per_message": 1.0}])
    found["before"] = {"ref": "db5119c"}
    found["against_before"] = {
        "1": {"before_ms_per_image": 9.0, "pipeline_ms_per_image": 5.0, "floor_ms_per_image": 4.6},
        "2": {"before_ms_per_image": 9.5, "pipeline_ms_per_image": 4.9, "floor_ms_per_image": 4.5},
    }
    path = tmp_path / "isolated-stages.png"

    plot(found, path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
