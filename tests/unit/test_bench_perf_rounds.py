"""The pipeline, the in-process alternative and an earlier commit's pipeline measured round by
round: the order they run in, the point each table shows, and the targets as medians of the
ratios within each round (so the host's drift between rounds cancels out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.perf.before import checkout
from bench.perf.pipeline import ACCOUNTED_APP, default_pool, worker_pools
from bench.perf.report import render, save, targets
from bench.perf.rounds import BEFORE, Step, median_points, ratios_by_round, schedule, summary
from core.worker_settings import WorkerSettings
from embedded.process import ROOT
from embedded.workers import CeleryWorker


def point(
    processes: int, round_: int, images_per_s: float, orchestration: float | None = 5.0
) -> dict[str, Any]:
    return {
        "processes": processes,
        "round": round_,
        "images_per_s": images_per_s,
        "worker_rss_mb": 100.0 + round_,
        "orchestration_ms_per_image": orchestration,
        "images_stored_per_s": images_per_s,
        "window_s": 5.0,
        "cpu_ms_per_image": {"listing": 8.0, "callbacks": 1.0, "triton": 3.0, "s3": 2.0},
    }


def result(points: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {**summary(points), **more}


def drifting() -> dict[str, Any]:
    """Three rounds on a host whose speed falls by a fifth, then rises: the pipeline's ratio to
    the in-process alternative within each round is 1.2, 0.9 and 1.05 (median 1.05), where the
    ratio of the two sides' medians would be 120 / 100 = 1.2."""
    speed, ratio = (1.0, 0.8, 1.2), (1.2, 0.9, 1.05)
    pipeline = [point(1, r, round(100.0 * s * ratio[r], 1), 5.0 * (r + 1)) for r, s in enumerate(speed)]
    inprocess = [{**point(1, r, 100.0 * s, None), "worker_rss_mb": 270.0 - r} for r, s in enumerate(speed)]
    before = [point(1, r, 50.0 * s, 10.0 * (r + 1)) for r, s in enumerate(speed)]
    return {
        "pipeline": result(pipeline),
        "inprocess": result(inprocess),
        BEFORE: result(before, ref="db5119c", commit="db5119c4572fc0af1f30dfbf7c3ed2dea367e2ef"),
    }


def test_each_round_runs_before_pipeline_and_inprocess_at_each_process_count_in_place_of_the_pipeline() -> (
    None
):
    """In order in even rounds, in reverse in odd ones."""
    names = ["ceiling", "result_path", BEFORE, "pipeline", "inprocess", "backlog"]

    steps = schedule(names, rounds=2, processes=(1, 2))

    assert steps[:2] == [Step("ceiling"), Step("result_path")]
    assert [(s.round, s.processes, s.benchmark) for s in steps[2:-1]] == [
        (0, 1, BEFORE), (0, 1, "pipeline"), (0, 1, "inprocess"),
        (0, 2, BEFORE), (0, 2, "pipeline"), (0, 2, "inprocess"),
        (1, 1, "inprocess"), (1, 1, "pipeline"), (1, 1, BEFORE),
        (1, 2, "inprocess"), (1, 2, "pipeline"), (1, 2, BEFORE),
    ]  # fmt: skip
    assert steps[-1] == Step("backlog")


def test_benchmarks_not_measured_in_rounds_run_once_each_in_their_order() -> None:
    assert schedule(["scaling", "ceiling"], rounds=3, processes=(1, 2)) == [Step("scaling"), Step("ceiling")]
    assert schedule(["inprocess"], rounds=2, processes=(1,)) == [
        Step("inprocess", 0, 1),
        Step("inprocess", 1, 1),
    ]


def test_tables_show_the_median_round_and_of_an_even_count_the_slower_middle_one() -> None:
    three = [point(1, 0, 90.0), point(1, 1, 120.0), point(1, 2, 100.0), point(2, 0, 150.0)]
    four = [point(1, r, v) for r, v in enumerate((90.0, 120.0, 100.0, 110.0))]

    assert [(p["processes"], p["round"]) for p in median_points(three)] == [(1, 2), (2, 0)]
    assert median_points(four)[0]["round"] == 2  # 100, of the middle pair 100 and 110


def test_ratios_pair_points_of_the_same_round_and_skip_a_round_one_side_lacks() -> None:
    pipeline = [point(1, 0, 100.0), point(1, 1, 90.0), point(1, 2, 80.0)]
    inprocess = [point(1, 0, 50.0), point(1, 2, 100.0)]

    assert ratios_by_round(pipeline, inprocess, lambda p: p["images_per_s"]) == {"1": [2.0, 0.8]}


def test_pipeline_over_inprocess_is_the_median_of_the_ratios_within_each_round() -> None:
    found = targets(drifting())["pipeline_vs_inprocess"]

    assert found["ratios_by_round"] == {"1": [1.2, 0.9, 1.05]}
    assert found["ratio_by_processes"] == {"1": 1.05}
    assert found["met"] is True


def test_worker_rss_takes_every_round_the_pipelines_highest_and_the_alternatives_lowest() -> None:
    found = targets(drifting())["worker_rss"]

    assert found["triton_worker_mb"] == 102.0 and found["inprocess_worker_mb"] == 268.0


def test_orchestration_against_the_same_runs_before_ignores_the_stored_baseline() -> None:
    stored = {"pipeline": result([point(1, 0, 50.0, 100.0)])}

    found = targets(drifting(), before=stored)["orchestration_cpu"]

    assert found["compared_with"] == "same run"
    assert found["before"]["ref"] == "db5119c"
    assert found["ratios_by_round"] == {"1": [0.5, 0.5, 0.5]}
    assert found["ratio"] == 0.5 and found["met"] is True
    assert found["ms_per_image_by_processes"] == {"1": 10.0}  # medians over the rounds
    assert found["before_ms_per_image_by_processes"] == {"1": 20.0}


def test_orchestration_without_before_compares_the_medians_over_rounds_with_the_baseline() -> None:
    bench = drifting()
    del bench[BEFORE]
    stored = {"pipeline": {"points": [point(1, 0, 50.0, 16.0)]}}  # recorded before rounds existed

    found = targets(bench, before=stored)["orchestration_cpu"]

    assert found["compared_with"] == "baseline issue-15"
    assert found["ratio_by_processes"] == {"1": 0.62}  # median 10.0 of 5, 10, 15 over 16
    assert "ratios_by_round" not in found


def test_report_names_the_same_run_before_and_shows_each_rounds_ratios() -> None:
    text = render({"benchmarks": drifting(), "targets": targets(drifting())})

    assert "`db5119c` in the same run: 20.0 ms; 0.5x" in text
    assert "Each row is its process count's median round of 3 by images/s (to the" in text
    assert "| Triton pipeline, worker of `db5119c` | 1 | 50.0 |" in text
    assert "commit `db5119c` (db5119c4572fc0af1f30dfbf7c3ed2dea367e2ef)\nmeasured in the same run" in text
    assert "| ratio | processes | round 1 | round 2 | round 3 | median |" in text
    assert "| pipeline / in-process | 1 | 1.2 | 0.9 | 1.05 | 1.05 |" in text
    assert "| orchestration / before | 1 | 0.5 | 0.5 | 0.5 | 0.5 |" in text


def test_report_of_results_without_rounds_names_the_baseline_and_has_no_round_table() -> None:
    bench = {
        "pipeline": {"points": [point(1, 0, 60.0, 5.0)]},
        "inprocess": {"points": [point(1, 0, 50.0, None)]},
    }
    stored = {"pipeline": {"points": [point(1, 0, 50.0, 10.0)]}}

    text = render({"benchmarks": {}, "targets": targets(bench, before=stored)})

    assert "the `issue-15` baseline, another run: 10.0 ms; 0.5x" in text
    assert "| ratio | processes |" not in text


def test_a_pipeline_run_without_before_drops_the_previous_runs_before(tmp_path: Path) -> None:
    json_path = tmp_path / "results.json"

    def run(results: dict[str, Any], command: str) -> dict[str, Any]:
        save(
            results,
            command=command,
            size="tiny",
            gpu=False,
            json_path=json_path,
            md_path=tmp_path / "B.md",
            plots=None,
        )
        return dict(json.loads(json_path.read_text()))

    run(drifting(), "python -m bench.perf --before db5119c")
    assert (
        BEFORE
        in run({"inprocess": drifting()["inprocess"]}, "python -m bench.perf --only inprocess")["benchmarks"]
    )

    data = run({"pipeline": drifting()["pipeline"]}, "python -m bench.perf --only pipeline")
    assert BEFORE not in data["benchmarks"]
    assert data["targets"]["orchestration_cpu"]["compared_with"] is None  # no stored baseline here


def test_the_before_tree_is_the_commit_with_this_bench_and_goes_away(tmp_path: Path) -> None:
    with checkout("HEAD", tmp_path) as before:
        assert len(before.commit) == 40
        assert (before.tree / "worker" / "tasks.py").is_file()
        assert (before.tree / "bench" / "perf" / "rounds.py").read_text() == (
            ROOT / "bench" / "perf" / "rounds.py"
        ).read_text()
        assert before.pool == default_pool()
    assert not before.tree.exists()


def test_a_ref_that_names_no_commit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a commit"), checkout("no-such-ref-anywhere", tmp_path):
        pass


def test_every_worker_of_a_before_point_runs_from_its_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    pools = worker_pools(2, ACCOUNTED_APP, "prefork", {}, tmp_path / "stages", source=tree)
    worker = CeleryWorker(
        settings=WorkerSettings(_env_file=None),  # type: ignore[call-arg]
        queues=["q"],
        name="n",
        log_path=tmp_path / "w.log",
        source=tree,
    )

    assert {p.source for p in pools} == {tree}
    assert worker._cwd == tree
    assert worker.environment()["PYTHONPATH"].split(":")[0] == str(tree)
