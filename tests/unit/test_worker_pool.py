"""The worker's pool (threads by default): its settings, and one process's clients and context
shared by the jobs it keeps in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import ValidationError

from core.contracts.jobs import JobState
from core.contracts.v1 import parse_request
from core.jobs import MemoryJobStore
from core.worker_settings import WorkerSettings, new_webhook_secret
from producer.client import record_for
from worker import context
from worker.celery_app import worker_config
from worker.context import (
    MAX_UPLOAD_THREADS,
    PUTS_IN_JOB_THREAD_FROM,
    UPLOAD_CONCURRENCY,
    jobs_in_flight,
    upload_threads,
)
from worker.per_process import PerProcessClient
from worker.pipeline import run_listing
from worker.stubs import MemoryImageStore, stub_context


def settings(**values: Any) -> WorkerSettings:
    return WorkerSettings(_env_file=None, callback_secret=new_webhook_secret(), **values)  # type: ignore[call-arg,arg-type]


def test_a_worker_keeps_eight_jobs_in_flight_in_threads_each_acked_late_on_its_own() -> None:
    config = worker_config(settings())
    assert (config["worker_pool"], config["worker_concurrency"]) == ("threads", 8)
    # prefetch is per slot: the worker holds only the messages it runs, each acked after its job
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]


def test_pool_and_concurrency_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATELIER_WORKER_POOL", "prefork")
    monkeypatch.setenv("ATELIER_WORKER_CONCURRENCY", "2")
    config = worker_config(settings())
    assert (config["worker_pool"], config["worker_concurrency"]) == ("prefork", 2)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [("worker_pool", "gevent", "literal_error"), ("worker_concurrency", 0, "greater_than_equal")],
)
def test_a_bad_pool_setting_is_refused_naming_the_field(field: str, value: Any, rule: str) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**{field: value})
    error = refused.value.errors()[0]
    assert error["loc"] == (field,) and error["type"] == rule


def test_upload_threads_follow_the_jobs_in_flight_until_the_jobs_fill_each_others_waits() -> None:
    assert jobs_in_flight(settings(worker_pool="prefork", worker_concurrency=4)) == 1
    assert jobs_in_flight(settings(worker_pool="threads", worker_concurrency=4)) == 4
    one, two = upload_threads(1), upload_threads(2)
    assert one is not None and one._max_workers == UPLOAD_CONCURRENCY
    assert two is not None and two._max_workers == min(2 * UPLOAD_CONCURRENCY, MAX_UPLOAD_THREADS)
    assert upload_threads(PUTS_IN_JOB_THREAD_FROM) is None
    assert upload_threads(16) is None


class SlowClient:
    made = 0

    def __init__(self) -> None:
        time.sleep(0.05)  # a connection being opened: other threads arrive meanwhile
        SlowClient.made += 1

    def close(self) -> None:
        pass


def test_threads_arriving_together_share_one_per_process_client() -> None:
    SlowClient.made = 0
    owner = PerProcessClient(SlowClient)
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: owner.client, range(8)))
    assert SlowClient.made == 1
    assert all(c is clients[0] for c in clients)


def test_threads_arriving_together_share_one_worker_context(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []

    def factory() -> context.WorkerContext:
        time.sleep(0.05)
        ctx = stub_context(settings())
        built.append(ctx)
        return ctx

    monkeypatch.setattr(context, "_factory", factory)
    monkeypatch.setattr(context, "_current", None)
    with ThreadPoolExecutor(8) as pool:
        contexts = list(pool.map(lambda _: context.current(), range(8)))
    assert len(built) == 1 and all(c is built[0] for c in contexts)


def test_jobs_run_together_in_one_process_each_store_their_own_images() -> None:
    """Eight listing jobs at once on one shared context (what the threads pool does) give each
    job its own state, objects and bytes: the same as when the jobs run one after another."""

    def run(jobs: int, *, together: bool) -> tuple[dict[str, JobState], dict[str, Any]]:
        store, bucket = MemoryJobStore(), MemoryImageStore()
        ctx = stub_context(settings(), store=store, images=bucket)
        ids = [f"job-{i}" for i in range(jobs)]
        bodies = {}
        for i, job_id in enumerate(ids):
            parsed = parse_request(
                {
                    "requester": "shop-eu",
                    "listing_id": f"SKU-{i}",
                    "attributes": {"category": "dress", "colour": "navy"},
                    "variants": 4,
                    "seed": 100 + i,
                    "output": {"format": "png", "size": 64},
                }
            )
            store.create(record_for(parsed, job_id), request=parsed.model_dump(mode="json"))
            bodies[job_id] = parsed.model_dump(mode="json")
        start = threading.Barrier(jobs if together else 1)

        def one(job_id: str) -> None:
            start.wait()
            run_listing(job_id, bodies[job_id], ctx)

        if together:
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(one, ids))
        else:
            for job_id in ids:
                one(job_id)
        states = {job_id: store.get(job_id).state for job_id in ids}  # type: ignore[union-attr]
        return states, dict(bucket.objects)

    together_states, together_objects = run(8, together=True)
    _, alone_objects = run(8, together=False)
    assert set(together_states.values()) == {JobState.SUCCEEDED}
    assert len(together_objects) == 8 * 4
    assert together_objects == alone_objects
