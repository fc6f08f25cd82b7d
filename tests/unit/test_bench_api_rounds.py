"""How the API benchmark folds its repeated rounds into one point (``bench.api.rounds``): each
figure is the median over the rounds, so one round spoiled by other work on the machine does not
move it; submits and errors add up; the rounds are kept; the modes alternate from round to round."""

from __future__ import annotations

from typing import Any

from bench.api.report import ratios
from bench.api.rounds import combined, order


def point(mode: str, p50: float, p99: float, *, rate: float = 100.0, errors: int = 0) -> dict[str, Any]:
    return {
        "mode": mode,
        "concurrency": 8,
        "duration_s": 5.0,
        "submits": 500,
        "errors": errors,
        "first_error": "RuntimeError: 503" if errors else None,
        "submits_per_s": rate,
        "latency_ms": {"p50": p50, "p99": p99, "mean": p50, "max": p99 * 2},
        "cpu_ms_per_submit": {"client": 0.2, "server": 1.0 if mode == "api" else None},
    }


def test_a_point_is_the_median_of_its_rounds_and_one_bad_round_does_not_move_it() -> None:
    rounds = [point("api", 2.0, 4.0), point("api", 2.2, 40.0, rate=10.0, errors=1), point("api", 2.1, 5.0)]

    found = combined(rounds)

    assert found["latency_ms"] == {"p50": 2.1, "p99": 5.0, "mean": 2.1, "max": 80.0}
    assert found["submits_per_s"] == 100.0 and found["rounds"] == 3
    assert found["submits"] == 1500 and found["errors"] == 1 and found["first_error"] == "RuntimeError: 503"
    assert found["cpu_ms_per_submit"] == {"client": 0.2, "server": 1.0}
    assert [r["p99"] for r in found["by_round"]] == [4.0, 40.0, 5.0]


def test_direct_has_no_server_cpu_and_the_ratios_pair_the_rounds() -> None:
    direct = combined([point("direct", 1.0, 2.0), point("direct", 1.0, 4.0)])
    api = combined([point("api", 1.5, 3.0), point("api", 1.5, 4.0)])

    assert direct["cpu_ms_per_submit"]["server"] is None
    (row,) = ratios([direct, api])
    assert row["p99_ratio"] == round(3.5 / 3.0, 2) and row["p99_ratio_by_round"] == [1.5, 1.0]
    assert row["meets_target"]


def test_the_modes_alternate_from_round_to_round() -> None:
    assert [order(i, ("direct", "api")) for i in range(3)] == [
        ["direct", "api"],
        ["api", "direct"],
        ["direct", "api"],
    ]
