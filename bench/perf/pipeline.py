"""Benchmark 2, the pipeline at saturation: producer -> RabbitMQ -> listing workers -> Triton ->
S3 -> ``succeeded`` -> callback worker -> the receiver, in images per second.

The workers start first, idle on an empty queue; then the jobs are published as fast as the
producer goes (the queue fills far faster than the workers drain it: saturation). The window
runs from the first job's ``started_at`` to the last job's ``finished_at`` (stored) and to the
last ``job.succeeded`` callback received (end to end). The benchmark waits on the receiver
(every job's terminal callback), not by polling Redis, so its own waiting costs little.

Every process's CPU is counted (``bench.perf.processes``, ``bench.perf.cpu_accounting``) from
the first publish to the last callback, so worker start-up is left out and no job runs outside
the window; the real worker runs as ``bench.perf.accounted_app``, which times its stages'
thread CPU, so the total splits into a stage table. Triton's statistics give the batch sizes it
formed; the best point's are measured raw afterwards for the shared-cores bound
(``bench.perf.triton_batches``).

A run measures the pipeline round by round, each process count's point beside the in-process
alternative's and, with ``--before REF``, beside REF's worker's (:func:`point`, then
:func:`summary`; ``bench.perf.rounds``, ``bench.perf.before``).

:func:`run_jobs` is shared with the in-process alternative and the scaling sweep (same jobs,
same layout; only the app, the process count or Triton's settings differ).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.perf import ceiling, rounds, stage_cpu, triton_batches
from bench.perf.before import Before, send_fields_ref_knows
from bench.perf.cpu_accounting import ThreadCpu, orchestration_ms, stage_table, total_ms
from bench.perf.processes import HARNESS, PRODUCER, SHARED, pipeline_ledger, worker_rows
from bench.perf.rig import TRITON_APP, Environment, PipelineRig
from bench.perf.sizes import Size
from core.contracts.jobs import JobState
from core.worker_settings import WorkerSettings
from embedded.stack import Pool
from serving_contract.tensors import PRODUCT_GENERATOR, QUALITY_JUDGE, ModelSpec

#: callback worker processes in every pipeline run (cheap HTTP work, its own queue)
CALLBACK_PROCESSES = 1
#: callbacks in flight in the callback worker's threads, as ``deploy/k8s/worker-callbacks.yaml``
CALLBACK_IN_FLIGHT = 16
#: the real worker with per-stage CPU timers (``bench.perf.stage_cpu``)
ACCOUNTED_APP = "bench.perf.accounted_app"
#: the models whose formed batches are recorded
BATCHED_MODELS = ("product_cgan", "quality_judge")
#: seconds the shared servers are watched before the run, for their background CPU rate
BACKGROUND_S = 2.0
#: the events that end a benchmark job
TERMINAL_EVENTS = ("job.succeeded", "job.failed")


def wait_callbacks(rig: PipelineRig, job_ids: list[str], timeout_s: float) -> bool:
    """Wait until every job's terminal callback arrived (the receiver wakes the wait)."""
    wanted = set(job_ids)

    def all_ended(received: list[Any]) -> bool:
        ended = {
            r.event.data.get("job_id")
            for r in received
            if r.event is not None and r.event.type.value in TERMINAL_EVENTS
        }
        return wanted <= ended

    return rig.env.receiver.wait_for(all_ended, timeout_s=timeout_s)


def default_pool() -> str:
    """The pool the code under test deploys: ``threads`` where the worker has that setting (several
    jobs in flight per process), else ``prefork`` (one job per process); ``ATELIER_BENCH_POOL``
    overrides it."""
    if os.environ.get("ATELIER_BENCH_POOL"):
        return os.environ["ATELIER_BENCH_POOL"]
    return "threads" if "worker_pool" in WorkerSettings.model_fields else "prefork"


def worker_pools(
    processes: int,
    app: str,
    pool: str,
    env: dict[str, str],
    root: Path,
    *,
    in_flight: int | None = None,
    source: Path | None = None,
) -> list[Pool]:
    """The listing worker(s) and the callback worker: with ``prefork``, one worker of
    ``processes`` pool processes (one job each); with ``threads``, ``processes`` workers of
    ``in_flight`` jobs each (default the worker's ``worker_concurrency``). Each worker writes its
    stage CPU to its own folder under ``root`` (a worker clears its folder's files when it
    starts). ``source``: the source tree the workers run from (default this checkout)."""
    if pool == "prefork":
        listing = [
            Pool(
                "listing",
                concurrency=processes,
                app=app,
                env={**env, **_metrics(root, "listing")},
                source=source,
            )
        ]
        callbacks_in_flight = CALLBACK_PROCESSES
    else:
        in_flight = in_flight or int(getattr(WorkerSettings(), "worker_concurrency", 1))
        threaded = {**env, "ATELIER_WORKER_POOL": pool}
        listing = [
            Pool(
                role,
                queues=("listing",),
                concurrency=in_flight,
                app=app,
                env={**threaded, **_metrics(root, role)},
                source=source,
            )
            for role in [f"listing-{k + 1}" if k else "listing" for k in range(processes)]
        ]
        callbacks_in_flight = CALLBACK_IN_FLIGHT
        env = threaded
    callbacks = Pool(
        "callbacks",
        concurrency=callbacks_in_flight,
        app=ACCOUNTED_APP,
        env={**env, **_metrics(root, "callbacks")},
        source=source,
    )
    return [*listing, callbacks]


def _metrics(root: Path, role: str) -> dict[str, str]:
    (root / role).mkdir(parents=True, exist_ok=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(root / role)}


def histograms(grpc_url: str) -> dict[str, dict[int, int]]:
    """Each of ``BATCHED_MODELS``' executions per batch size so far (none for a model not served)."""
    from tritonclient.utils import InferenceServerException

    found: dict[str, dict[int, int]] = {}
    for model in BATCHED_MODELS:
        try:
            found[model] = triton_batches.batch_histogram(grpc_url, model)
        except InferenceServerException:
            found[model] = {}
    return found


def run_jobs(
    env: Environment,
    *,
    tag: str,
    jobs: int,
    processes: int,
    app: str = TRITON_APP,
    threads: int = 1,
    grpc_url: str | None = None,
    triton_pid: int | None = None,
    pool: str | None = None,
    before: Before | None = None,
    worker_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Publish ``jobs`` listing jobs, start ``processes`` listing worker processes of ``app`` and
    one callback worker (``pool``: see :func:`worker_pools`; default :func:`default_pool`), and
    measure until every job's callback arrived. ``before``: the workers run REF's code, in the
    pool REF deploys (``bench.perf.before``). ``worker_env``: more variables for every worker
    (a setting tried without a code change, ``bench.perf.paired``)."""
    pool = pool or (before.pool if before else default_pool())
    triton_pid = triton_pid if grpc_url else env.triton_pid
    url = grpc_url or env.grpc_url
    # the real worker runs with its stage timers; the in-process alternative as it is
    worker_app = ACCOUNTED_APP if app == TRITON_APP else app
    with PipelineRig(env, tag, grpc_url=grpc_url) as rig:
        stage_root = rig.stack.workdir / "stage-cpu"
        producer = ThreadCpu()
        ledger = pipeline_ledger(
            triton_pid=triton_pid,
            s3_pid=env.s3.pid,
            broker_url=rig.settings.broker_url.get_secret_value(),
            redis_url=rig.settings.redis_url.get_secret_value(),
            receiver=env.receiver,
            producer=producer,
        )
        if before is not None:
            send_fields_ref_knows(rig.producer)
        requests = [rig.listing(i) for i in range(jobs)]
        images = sum(r["variants"] for r in requests)
        shared = [r.label for r in ledger.rows if SHARED in r.note]
        background = ledger.rates(shared, BACKGROUND_S) if shared else {}

        # the workers start on an empty queue, so every CPU second of a job falls in the window
        # (a worker that started on a full queue would run jobs before the others were ready)
        rss_samples: list[float] = []
        sampling = threading.Event()
        rig.stack.start_workers(
            *worker_pools(
                processes,
                worker_app,
                pool,
                {"OMP_NUM_THREADS": str(threads), **(worker_env or {})},
                stage_root,
                in_flight=before.in_flight if before else None,
                source=before.tree if before else None,
            )
        )
        folders = {role: stage_root / role for role in rig.stack.workers}
        ledger.rows[:0] = worker_rows({role: w.pid for role, w in rig.stack.workers.items()})
        listing_roles = [role for role in rig.stack.workers if role.startswith("listing")]

        def listing_rss() -> list[float]:
            return [mb for role in listing_roles for mb in rig.stats(role).rss_mb]

        def sample() -> None:
            while not sampling.wait(0.5):
                rss_samples.extend(listing_rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stages_before = {role: stage_cpu.read(folder) for role, folder in folders.items()}
        batches_before = histograms(url)
        t0 = time.perf_counter()
        with ledger.window():
            job_ids = producer.wrap(rig.submit_all)(requests)
            publish_s = time.perf_counter() - t0
            wait_callbacks(rig, job_ids, timeout_s=120 + jobs * 2.0)
        measured_s = time.perf_counter() - t0
        batches_after = histograms(url)
        stages = {
            role: stage_cpu.difference(stage_cpu.read(folder), stages_before[role])
            for role, folder in folders.items()
        }
        records = rig.wait_terminal(job_ids, timeout_s=30)
        sampling.set()
        sampler.join()
        rss_samples.extend(listing_rss())

    succeeded = [r for r in records.values() if r.state is JobState.SUCCEEDED]
    if not succeeded:
        raise RuntimeError(f"{tag}: no job succeeded (the workers' logs: {rig.stack.logs})")
    first = min(r.started_at.timestamp() for r in succeeded if r.started_at)
    last = max(r.finished_at.timestamp() for r in succeeded if r.finished_at)
    callbacks = rig.callbacks_at(job_ids)
    last_callback = max(callbacks.values()) if callbacks else last
    done_images = sum(len(r.results) for r in succeeded)
    by_process = ledger.ms_per_image(done_images)
    kinds = ledger.kinds()
    worker_stages: dict[str, float] = {}
    for per_role in stages.values():
        for name, seconds in per_role.items():
            worker_stages[name] = worker_stages.get(name, 0.0) + seconds
    worker_stage_ms = {k: round(1000 * v / max(done_images, 1), 3) for k, v in worker_stages.items()}
    # the in-process alternative's model and encoding run untimed inside its workers: no stage split
    accounted = worker_app == ACCOUNTED_APP
    table = stage_table(by_process, kinds, worker_stage_ms) if accounted else {}
    formed = {m: triton_batches.formed_between(batches_before[m], batches_after[m]) for m in BATCHED_MODELS}

    def role_ms(prefix: str) -> float:
        return round(sum(ms for label, ms in by_process.items() if label.startswith(prefix)), 2)

    return {
        "app": app,
        "pool": pool,
        "processes": processes,
        "jobs": jobs,
        "images": images,
        "succeeded": len(succeeded),
        "images_stored_per_s": round(done_images / max(last - first, 1e-6), 1),
        "images_per_s": round(done_images / max(last_callback - first, 1e-6), 1),
        "window_s": round(last_callback - first, 2),
        "callbacks_received": len(callbacks),
        "publish_ms_per_job": round(1000 * publish_s / jobs, 2),
        "worker_rss_mb": round(max(rss_samples), 1) if rss_samples else 0.0,
        "worker_rss_mb_median": round(float(np.median(rss_samples)), 1) if rss_samples else 0.0,
        # the four figures every earlier run reported (the before/after table compares them)
        "cpu_ms_per_image": {
            "listing": role_ms("listing"),
            "callbacks": role_ms("callbacks"),
            "triton": round(
                sum(ms for label, ms in by_process.items() if kinds[label] in ("triton", "model")), 2
            ),
            "s3": role_ms("S3 server"),
        },
        "cpu_by_process": by_process,
        "process_kinds": kinds,
        "process_notes": ledger.notes(),
        # what the shared servers spent per second before the run, scaled to the measured windows
        "shared_background_ms_per_image": {
            label: round(1000 * rate * measured_s / max(done_images, 1), 3)
            for label, rate in background.items()
        },
        "processes_missing": sorted(ledger.missing - {PRODUCER, HARNESS}),
        "worker_stage_ms_per_image": worker_stage_ms,
        "cpu_by_stage": table,
        "cpu_total_ms_per_image": total_ms(by_process, kinds),
        "orchestration_ms_per_image": orchestration_ms(table) if accounted else None,
        "formed_batches": {m: triton_batches.summary(f) for m, f in formed.items()},
    }


def raw_at_formed_batches(env: Environment, point: dict[str, Any], window_s: float) -> dict[str, Any]:
    """Raw Triton at the batch sizes it formed during ``point``, for each model the pipeline
    called (``product_cgan``, and ``quality_judge`` where the gate ran): T of the bound is their
    seconds per generated image added up (``triton_batches.models_together``); the product model
    alone is kept beside it (``product_only_images_per_s``, the bound before the gate existed)."""
    by_model: dict[str, dict[str, Any]] = {}
    for spec in (PRODUCT_GENERATOR, QUALITY_JUDGE):
        formed = point["formed_batches"].get(spec.name) or {}
        histogram = {int(b): n for b, n in formed.get("histogram", {}).items()}
        if not histogram:
            continue
        by_model[spec.name] = {"images": formed["images"], **_raw_model(env, spec, histogram, window_s)}
    product = by_model.get(PRODUCT_GENERATOR.name)
    if product is None:
        return {"points": [], "images_per_s": 0.0}
    together = triton_batches.models_together(
        {m: r["images_per_s"] for m, r in by_model.items()},
        {m: r["images"] for m, r in by_model.items()},
        per=PRODUCT_GENERATOR.name,
    )
    return {
        **product,
        "images_per_s": round(together, 1),
        "product_only_images_per_s": product["images_per_s"],
        "models": list(by_model),
        "by_model": by_model,
    }


def _raw_model(
    env: Environment, spec: ModelSpec, histogram: dict[int, int], window_s: float
) -> dict[str, Any]:
    def measure(batch: int, concurrency: int) -> dict[str, Any]:
        return ceiling.measure(env.grpc_url, spec, batch, concurrency, window_s)

    def formed() -> dict[int, int]:
        return triton_batches.batch_histogram(env.grpc_url, spec.name)

    return triton_batches.raw_at_formed(histogram, measure, formed)


def point(
    env: Environment, size: Size, processes: int, *, round_: int = 0, before: Before | None = None
) -> dict[str, Any]:
    """One point of round ``round_``: ``size``'s listing jobs through ``processes`` listing
    worker processes (``before``: REF's worker, on a Triton serving REF's own model repository,
    started for the point: the models' batching and cost are part of what REF was)."""
    tag = f"{'before' if before else 'pipe'}{processes}-r{round_}"
    if before is None:
        found = run_jobs(env, tag=tag, jobs=size.listing_jobs, processes=processes)
    else:
        found = run_before(env, before, tag=tag, jobs=size.listing_jobs, processes=processes)
    return {**found, "round": round_}


def run_before(
    env: Environment, before: Before, *, tag: str, jobs: int, processes: int, own_models: bool = True
) -> dict[str, Any]:
    """:func:`run_jobs` with REF's worker; ``own_models``: on a Triton serving REF's own model
    repository, started for the point (else the run's Triton, when the models are the same)."""
    if not own_models:
        return run_jobs(env, tag=tag, jobs=jobs, processes=processes, before=before)
    with env.triton_serving(before.tree / "triton_models", tag) as (url, pid):
        return run_jobs(
            env, tag=tag, jobs=jobs, processes=processes, before=before, grpc_url=url, triton_pid=pid
        )


def summary(env: Environment, size: Size, points: list[dict[str, Any]]) -> dict[str, Any]:
    """The result of every round's points (``bench.perf.rounds.summary``; the ratios are taken in
    ``report``), and raw Triton at the batch sizes the best shown point formed."""
    found = rounds.summary(points)
    raw = raw_at_formed_batches(env, found["best"], size.ceiling_window_s)
    return {**found, "triton_at_formed_batches": raw}


def run(env: Environment, size: Size) -> dict[str, Any]:
    """One round: the pipeline at each process count of ``size``."""
    return summary(env, size, [point(env, size, p) for p in size.processes])
