"""Repeated rounds: each point of the API benchmark is measured several times, and its figures
are the medians over the rounds.

The machine is shared (other work comes and goes for seconds at a time), so one long run per
point lets a burst of it land on one mode and not the other. Instead every round measures every
point for a few seconds, both modes back to back at each concurrency (which mode goes first
alternates from round to round), and a point's p50, p99, throughput and CPU are the medians of
its rounds: a burst spoils a round or two of one point, not its median.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench.api.load import Mode

#: the per-round figures a point keeps, and whose medians it reports
ROUND_FIGURES = ("submits_per_s", "p50", "p99", "mean")


def order(round_index: int, modes: Sequence[Mode]) -> list[Mode]:
    """The modes in the order round ``round_index`` runs them: reversed every other round, so
    neither mode always runs on a machine the other just warmed (or loaded)."""
    return list(modes) if round_index % 2 == 0 else list(reversed(modes))


def round_summary(point: dict[str, Any]) -> dict[str, Any]:
    """One round of a point (``bench.api.load.Point.as_dict``), as its figures."""
    latency = point["latency_ms"]
    return {
        "submits": point["submits"],
        "errors": point["errors"],
        "submits_per_s": point["submits_per_s"],
        "p50": latency["p50"],
        "p99": latency["p99"],
        "mean": latency["mean"],
        "max": latency["max"],
        "cpu_ms_per_submit": point["cpu_ms_per_submit"],
    }


def combined(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A point over all its rounds (``bench.api.load.Point.as_dict`` each): the medians of its
    rounds' figures, the sums of submits and errors, the largest latency, and every round."""
    first = rounds[0]
    summaries = [round_summary(point) for point in rounds]

    def median(figure: str) -> float:
        return round(statistics.median(summary[figure] for summary in summaries), 3)

    def median_cpu(side: str) -> float | None:
        values = [s["cpu_ms_per_submit"][side] for s in summaries if s["cpu_ms_per_submit"][side] is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "mode": first["mode"],
        "concurrency": first["concurrency"],
        "duration_s": round(sum(point["duration_s"] for point in rounds), 3),
        "rounds": len(rounds),
        "submits": sum(point["submits"] for point in rounds),
        "errors": sum(point["errors"] for point in rounds),
        "first_error": next((point["first_error"] for point in rounds if point["first_error"]), None),
        "submits_per_s": median("submits_per_s"),
        "latency_ms": {
            "p50": median("p50"),
            "p99": median("p99"),
            "mean": median("mean"),
            "max": max(summary["max"] for summary in summaries),
        },
        "cpu_ms_per_submit": {"client": median_cpu("client"), "server": median_cpu("server")},
        "by_round": summaries,
    }
