"""The shared-cores bound's arithmetic: Triton's statistics give the batches it formed, raw
Triton is interpolated at those sizes, and the bound adds both halves' time per image."""

from __future__ import annotations

from typing import Any

import pytest

from bench.perf.triton_batches import (
    formed_between,
    grid_needed,
    histogram_of,
    models_together,
    raw_at_formed,
    seconds_per_image,
    shared_bound,
    summary,
    throughput_at,
)

STATS = {  # tritonclient's get_inference_statistics(as_json=True): 64-bit counts as strings
    "model_stats": [
        {
            "name": "product_cgan",
            "version": "1",
            "batch_stats": [
                {"batch_size": "4", "compute_infer": {"count": "10", "ns": "123"}},
                {"batch_size": "8", "compute_infer": {"count": "5", "ns": "456"}},
            ],
        }
    ]
}


def test_the_histogram_is_read_from_the_statistics_and_differenced_over_the_run() -> None:
    after = histogram_of(STATS)

    formed = formed_between({4: 6}, after)

    assert after == {4: 10, 8: 5}
    assert formed == {4: 4, 8: 5}
    assert summary(formed) == {
        "executions": 9,
        "images": 56,
        "mean_batch": round(56 / 9, 2),
        "histogram": {"4": 4, "8": 5},
    }


def test_grid_sizes_bracket_each_formed_size() -> None:
    assert grid_needed({4: 1}) == [4]
    assert grid_needed({12: 1, 40: 2}) == [8, 16, 32, 64]
    assert grid_needed({100: 1}) == [64]


def test_time_per_image_is_log_linear_between_measured_sizes_and_flat_beyond() -> None:
    measured: dict[float, float] = {4: 100.0, 16: 400.0}

    assert seconds_per_image(8, measured) == pytest.approx(0.5 / 100 + 0.5 / 400)
    assert seconds_per_image(2, measured) == pytest.approx(1 / 100)
    assert seconds_per_image(64, measured) == pytest.approx(1 / 400)


def test_throughput_weights_each_formed_size_by_its_images() -> None:
    # 40 images at 100/s (0.4 s) and 160 at 400/s (0.4 s): 200 images in 0.8 s
    assert throughput_at({4: 10, 16: 10}, {4: 100.0, 16: 400.0}) == pytest.approx(250.0)


def test_the_bound_adds_both_halves_cpu_per_image() -> None:
    assert shared_bound(1028, 221) == pytest.approx(181.9, abs=0.1)  # the figure


def test_raw_points_are_keyed_by_the_batch_triton_formed_not_the_one_sent() -> None:
    executed: dict[int, int] = {}

    def measure(batch: int, concurrency: int) -> dict[str, Any]:
        formed = batch * concurrency  # two clients of 4 are merged into batches of 8
        executed[formed] = executed.get(formed, 0) + 3
        return {"batch": batch, "concurrency": concurrency, "images_per_s": 100.0 * formed}

    found = raw_at_formed({4: 10}, measure, lambda: dict(executed))

    assert found["best_by_formed_batch"] == {"4.0": 400.0, "8.0": 800.0}
    assert found["images_per_s"] == 400.0  # the pipeline formed 4s: interpolated at 4


def test_every_model_the_pipeline_calls_adds_its_seconds_per_generated_image() -> None:
    # 400 generated images at 500/s, and the judge saw 420 (regenerations) at 1,400/s
    together = models_together(
        {"product_cgan": 500.0, "quality_judge": 1400.0},
        {"product_cgan": 400, "quality_judge": 420},
        per="product_cgan",
    )

    assert together == pytest.approx(1 / (1 / 500 + 1.05 / 1400))
    assert models_together({"product_cgan": 500.0}, {"product_cgan": 400}, per="product_cgan") == 500.0
    assert models_together({"product_cgan": 500.0}, {"product_cgan": 0}, per="product_cgan") == 0.0
