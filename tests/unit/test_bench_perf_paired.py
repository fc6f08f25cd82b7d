"""The paired benchmark's bookkeeping: the side that goes first alternates, ``--env`` is parsed
with a clear error, and each round's after / before ratio is taken within the round."""

from __future__ import annotations

from typing import Any

import pytest

from bench.perf.paired import parse_env, sides, summary


def test_the_side_that_goes_first_alternates() -> None:
    assert [sides(r) for r in range(3)] == [("before", "after"), ("after", "before"), ("before", "after")]


def test_env_pairs_are_parsed_and_a_bad_one_is_named() -> None:
    assert parse_env(["ATELIER_X=20", "EMPTY=", "A=b=c"]) == {"ATELIER_X": "20", "EMPTY": "", "A": "b=c"}
    with pytest.raises(ValueError, match=r"'ATELIER_X'.*NAME=VALUE"):
        parse_env(["ATELIER_X"])
    with pytest.raises(ValueError, match="'=1'"):
        parse_env(["=1"])


def point(round_: int, orchestration: float, images_per_s: float, processes: int = 1) -> dict[str, Any]:
    return {
        "processes": processes,
        "round": round_,
        "orchestration_ms_per_image": orchestration,
        "cpu_total_ms_per_image": 2 * orchestration,
        "images_per_s": images_per_s,
    }


def test_ratios_are_within_each_round_and_their_median_is_reported() -> None:
    before = [point(0, 10.0, 100.0), point(1, 5.0, 200.0), point(2, 8.0, 100.0)]
    after = [point(0, 9.0, 110.0), point(1, 6.0, 190.0), point(2, 4.0, 150.0)]

    found = summary({"before": before, "after": after})

    orchestration = found["orchestration_ms_per_image"]
    assert orchestration["ratios_by_round"] == {"1": [0.9, 1.2, 0.5]}
    assert orchestration["median_ratio"] == {"1": 0.9}
    assert orchestration["before_median"] == {"1": 8.0} and orchestration["after_median"] == {"1": 6.0}
    assert found["images_per_s"]["ratios_by_round"] == {"1": [1.1, 0.95, 1.5]}
    assert found["cpu_total_ms_per_image"]["median_ratio"] == {"1": 0.9}


def test_each_process_count_is_paired_with_its_own() -> None:
    before = [point(0, 10.0, 100.0, processes=1), point(0, 20.0, 100.0, processes=2)]
    after = [point(0, 5.0, 100.0, processes=1), point(0, 5.0, 100.0, processes=2)]

    found = summary({"before": before, "after": after})

    assert found["orchestration_ms_per_image"]["ratios_by_round"] == {"1": [0.5], "2": [0.25]}
