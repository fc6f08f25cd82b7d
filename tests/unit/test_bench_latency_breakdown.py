"""bench.perf.latency_breakdown: per-model Triton means and per-stage worker means over a phase,
from two scrapes of Prometheus text."""

from __future__ import annotations

from bench.perf.latency_breakdown import breakdown, delta, parse

TRITON_BEFORE = """
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="product_cgan",version="1"} 10
nv_inference_request_success{model="tryon_cvae",version="1"} 5
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="product_cgan",version="1"} 10
nv_inference_exec_count{model="tryon_cvae",version="1"} 5
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="product_cgan",version="1"} 10000
nv_inference_queue_duration_us{model="tryon_cvae",version="1"} 5000
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="product_cgan",version="1"} 50000
nv_inference_compute_infer_duration_us{model="tryon_cvae",version="1"} 100000
"""
#: 20 more product requests in 10 executions (queue 4 ms, compute 15 ms each); no try-on
TRITON_AFTER = """
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="product_cgan",version="1"} 30
nv_inference_request_success{model="tryon_cvae",version="1"} 5
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="product_cgan",version="1"} 20
nv_inference_exec_count{model="tryon_cvae",version="1"} 5
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="product_cgan",version="1"} 90000
nv_inference_queue_duration_us{model="tryon_cvae",version="1"} 5000
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="product_cgan",version="1"} 350000
nv_inference_compute_infer_duration_us{model="tryon_cvae",version="1"} 100000
"""


def stages(**totals: tuple[float, int]) -> str:
    """The inference stage's histogram sum and count per job kind: ``kind=(seconds, jobs)``."""
    lines = ["# TYPE atelier_job_stage_seconds histogram"]
    for kind, (total_s, count) in totals.items():
        lines.append(f'atelier_job_stage_seconds_sum{{kind="{kind}",stage="inference"}} {total_s}')
        lines.append(f'atelier_job_stage_seconds_count{{kind="{kind}",stage="inference"}} {count}')
    return "\n".join(lines) + "\n"


def test_triton_means_cover_only_the_requests_of_the_phase() -> None:
    found = breakdown((parse(TRITON_BEFORE), parse(TRITON_AFTER)), ({}, {}), kind="tryon")
    assert found["triton"] == {
        "product_cgan": {"requests": 20, "queue_ms": 4.0, "compute_ms": 15.0, "requests_per_execution": 2.0}
    }


def test_worker_stage_means_of_one_kind() -> None:
    before = parse(stages(tryon=(1.0, 10), listing=(9.0, 3)))
    after = parse(stages(tryon=(2.5, 20), listing=(99.0, 30)))
    found = breakdown(({}, {}), (before, after), kind="tryon")
    assert found["worker_stage_ms"] == {"inference": 150.0}


def test_a_counter_new_in_the_second_scrape_counts_whole() -> None:
    assert (
        delta({}, parse(TRITON_BEFORE))[
            ("nv_inference_request_success", (("model", "tryon_cvae"), ("version", "1")))
        ]
        == 5.0
    )
