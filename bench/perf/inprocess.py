"""Benchmark 3, the alternative a user would pick: Celery workers running the same TorchScript
model in-process (``bench.perf.inprocess_app``), no Triton, on the same machine and the same jobs
as the pipeline benchmark: throughput, latency (window) and RSS per worker process.

Torch in each in-process worker runs with the intra-op threads each Triton instance runs with
(``intra_op_threads`` in the committed ``config.pbtxt``, ``bench.perf.intra_op``; also the
processes' ``OMP_NUM_THREADS``), so the model runs with the same threads on both sides and only
where it runs differs. (Each process used to be given ``cores // processes`` threads, which the
backends' ``initialize`` then reset to the config's value while loading: the two now agree.)
"""

from __future__ import annotations

from typing import Any

from bench.perf import rounds
from bench.perf.intra_op import intra_op_threads
from bench.perf.pipeline import run_jobs
from bench.perf.rig import INPROCESS_APP, Environment
from bench.perf.sizes import Size


def point(env: Environment, size: Size, processes: int, *, round_: int = 0) -> dict[str, Any]:
    """One point of round ``round_``: ``size``'s listing jobs through ``processes`` in-process
    worker processes."""
    found = run_jobs(
        env,
        tag=f"inproc{processes}-r{round_}",
        jobs=size.listing_jobs,
        processes=processes,
        app=INPROCESS_APP,
        threads=intra_op_threads(),
        pool="prefork",  # the model in each process: one job per process, as a user runs it
    )
    return {**found, "round": round_}


def summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The result of every round's points (``bench.perf.rounds.summary``)."""
    return {"torch_threads": intra_op_threads(), **rounds.summary(points)}


def run(env: Environment, size: Size) -> dict[str, Any]:
    """One round: the alternative at each process count of ``size``."""
    return summary([point(env, size, p) for p in size.processes])
