"""The pipeline benchmark's worker layout: one prefork worker of N processes (one job each), or N
threaded workers of several jobs each; every worker writes its stage CPU to a folder of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.perf.pipeline import ACCOUNTED_APP, CALLBACK_IN_FLIGHT, default_pool, worker_pools
from core.worker_settings import WorkerSettings


def test_prefork_is_one_listing_worker_of_n_processes(tmp_path: Path) -> None:
    pools = worker_pools(2, ACCOUNTED_APP, "prefork", {"OMP_NUM_THREADS": "1"}, tmp_path)

    assert [(p.role, p.concurrency) for p in pools] == [("listing", 2), ("callbacks", 1)]
    assert all("ATELIER_WORKER_POOL" not in p.env for p in pools)


def test_threads_is_n_listing_workers_on_one_queue_each_with_its_own_stage_folder(tmp_path: Path) -> None:
    pools = worker_pools(2, ACCOUNTED_APP, "threads", {"OMP_NUM_THREADS": "1"}, tmp_path)

    in_flight = getattr(WorkerSettings(_env_file=None), "worker_concurrency", 1)  # type: ignore[call-arg]
    assert [(p.role, p.queues, p.concurrency) for p in pools] == [
        ("listing", ("listing",), in_flight),
        ("listing-2", ("listing",), in_flight),
        ("callbacks", (), CALLBACK_IN_FLIGHT),
    ]
    folders = [p.env["PROMETHEUS_MULTIPROC_DIR"] for p in pools]
    assert len(set(folders)) == 3 and all(Path(f).is_dir() for f in folders)
    assert {p.env["ATELIER_WORKER_POOL"] for p in pools} == {"threads"}


def test_the_bench_pool_variable_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_BENCH_POOL", "prefork")

    assert default_pool() == "prefork"
