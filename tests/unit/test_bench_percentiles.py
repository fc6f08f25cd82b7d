"""The benchmark's latency percentiles (numpy's, linear interpolation between ranks)."""

from __future__ import annotations

from bench.perf.backlog import latency_summary


def test_percentiles_interpolate_between_ranks_and_round_to_a_tenth() -> None:
    assert latency_summary([10.0, 20.0, 30.0, 40.0, 50.0]) == {"p50": 30.0, "p95": 48.0, "p99": 49.6}
    assert latency_summary([10.0, 20.0]) == {"p50": 15.0, "p95": 19.5, "p99": 19.9}


def test_no_values_summarise_to_zero() -> None:
    assert latency_summary([]) == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
