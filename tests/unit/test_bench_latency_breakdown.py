"""bench.perf.latency_breakdown: per-model Triton means and per-stage worker means over a phase,
from two scrapes of Prometheus text."""

from __future__ import annotations

from bench.perf.latency_breakdown import breakdown, delta, parse

#: Triton's counters, in the order :func:`triton` takes them
COUNTERS = (
    "nv_inference_request_success",
    "nv_inference_exec_count",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
)


def triton(**models: tuple[int, int, int, int]) -> str:
    """Triton's scrape: ``model=(requests, executions, queue_us, compute_us)``, version 1 each."""
    lines = []
    for i, name in enumerate(COUNTERS):
        lines.append(f"# TYPE {name} counter")
        lines += [f'{name}{{model="{model}",version="1"}} {values[i]}' for model, values in models.items()]
    return "\n".join(lines) + "\n"


TRITON_BEFORE = triton(product_cgan=(10, 10, 10_000, 50_000), tryon_cvae=(5, 5, 5_000, 100_000))
#: 20 more product requests in 10 executions (queue 4 ms, compute 15 ms each); no try-on
TRITON_AFTER = triton(product_cgan=(30, 20, 90_000, 350_000), tryon_cvae=(5, 5, 5_000, 100_000))


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
