"""The listing worker as deployed by default: one ``celery -A worker.app`` process on the threads
pool keeping 8 jobs in flight, on the real services (RabbitMQ, Redis, Triton, SeaweedFS S3, a
callback receiver).

Proves what the pool must not change: every job ends once with its own objects and callbacks,
its images are byte for byte the ones a one-job-per-process (prefork) worker makes, Triton's
dynamic batcher merges calls of different jobs, and a SIGKILLed worker's in-flight jobs are all
redelivered and finish once.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import tritonclient.grpc as grpcclient

from core.contracts.jobs import JobRecord, JobState
from embedded.stack import Pool, Stack
from embedded.triton import TritonServer
from serving_contract.palette import PALETTE
from serving_contract.taxonomy import CATEGORIES
from tests.integration.services import require_services
from worker.storage import ImageStore

pytestmark = [pytest.mark.triton, pytest.mark.slow]

THREADS = 8
JOBS = 24
JOB_TIMEOUT_S = 300.0
THREADS_POOL = {"ATELIER_WORKER_POOL": "threads"}


@pytest.fixture(scope="module")
def stack(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_services()
    with Stack(
        tag="threads",
        workdir=tmp_path_factory.mktemp("threads-pool"),
        triton_grpc_url=triton.grpc_url,
        workers=[Pool("listing", concurrency=THREADS, env=THREADS_POOL), Pool("callbacks", env=THREADS_POOL)],
        settings={"job_retry_attempts": 4, "delivery_limit": 6},
    ) as stack:
        yield stack


def listing(stack: Stack, i: int, *, variants: int = 4, size: int = 128) -> dict[str, Any]:
    assert stack.receiver is not None
    return {
        "kind": "listing",
        "requester": "shop-threads",
        "listing_id": f"SKU-T-{i}",
        "attributes": {
            "category": CATEGORIES[i % len(CATEGORIES)].slug,
            "colour": PALETTE[i % len(PALETTE)].name,
        },
        "variants": variants,
        "seed": 3_000 + i,
        "output": {"format": "png", "size": size},
        "callback": {"url": stack.receiver.url_for("shop-threads"), "events": ["job.succeeded"]},
    }


def product_batches(grpc_url: str) -> tuple[int, int]:
    """``(images inferred, executions)`` of ``product_cgan`` so far."""
    client = grpcclient.InferenceServerClient(url=grpc_url)
    try:
        stats = client.get_inference_statistics(model_name="product_cgan", as_json=True)
    finally:
        client.close()
    models = stats.get("model_stats", [])
    return sum(int(m.get("inference_count", 0)) for m in models), sum(
        int(m.get("execution_count", 0)) for m in models
    )


def images_of(store: ImageStore, job_ids: list[str], records: dict[str, JobRecord]) -> list[list[bytes]]:
    """Each job's stored images, in the order the jobs were submitted."""
    return [[store.get_bytes(image.key) for image in records[job_id].results] for job_id in job_ids]


def succeeded_once(stack: Stack, records: dict[str, JobRecord], store: ImageStore) -> None:
    assert {r.state for r in records.values()} == {JobState.SUCCEEDED}
    for job_id, record in records.items():
        assert store.list_keys(f"listing/{job_id}/") == [image.key for image in record.results]
    assert stack.receiver is not None
    stack.receiver.wait_for(lambda got: len({r.headers["webhook-id"] for r in got}) >= len(records), 60)
    per_job = Counter(
        r.event.data["job_id"]
        for r in stack.receiver.received
        if r.event is not None and r.event.data["job_id"] in records
    )
    ids = {
        r.headers["webhook-id"]
        for r in stack.receiver.received
        if r.event and r.event.data["job_id"] in records
    }
    assert set(per_job) == set(records) and len(ids) == len(records)


def test_jobs_in_flight_together_are_batched_by_triton_and_give_the_bytes_of_one_job_at_a_time(
    stack: Stack, triton: TritonServer
) -> None:
    store = ImageStore(stack.settings)
    before = product_batches(triton.grpc_url)
    threaded_ids = [stack.producer.submit(listing(stack, i)) for i in range(JOBS)]
    threaded = stack.producer.wait_all(threaded_ids, JOB_TIMEOUT_S)
    inferred, executed = (a - b for a, b in zip(product_batches(triton.grpc_url), before, strict=True))
    succeeded_once(stack, threaded, store)
    # 4 variants a job: a mean batch above 4 means calls of different jobs were merged
    assert inferred >= JOBS * 4 and inferred / executed > 4

    stack.restart_worker("listing", env={"ATELIER_WORKER_POOL": "prefork"})
    try:
        alone_ids = [stack.producer.submit(listing(stack, i)) for i in range(JOBS)]
        alone = stack.producer.wait_all(alone_ids, JOB_TIMEOUT_S)
    finally:
        stack.restart_worker("listing", env=THREADS_POOL)
    assert images_of(store, threaded_ids, threaded) == images_of(store, alone_ids, alone)


def test_a_sigkilled_threads_worker_s_jobs_in_flight_are_all_redelivered_and_finish_once(
    stack: Stack,
) -> None:
    store = ImageStore(stack.settings)
    # big jobs (8 variants of 512 px) so that several are mid-run when the process dies
    job_ids = [stack.producer.submit(listing(stack, 100 + i, variants=8, size=512)) for i in range(JOBS)]
    deadline = time.monotonic() + 120
    running: list[str] = []
    while time.monotonic() < deadline and len(running) < 2:
        running = [j for j in job_ids if stack.producer.status(j).state is JobState.RUNNING]
        time.sleep(0.02)
    assert running, "no job was seen running"
    worker = stack.workers["listing"]
    assert worker.pid is not None
    os.killpg(worker.pid, signal.SIGKILL)
    killed_at = time.time()
    stack.restart_worker("listing")  # reaps the dead process, starts a new one (threads)
    records = stack.producer.wait_all(job_ids, JOB_TIMEOUT_S)
    succeeded_once(stack, records, store)
    # running when the process died (not finished before): each was run again
    victims = [j for j in running if (f := records[j].finished_at) is not None and f.timestamp() > killed_at]
    assert victims and all(records[j].attempts >= 2 for j in victims)


def test_a_job_past_the_soft_time_limit_in_a_threads_worker_fails_with_job_time_limit(stack: Stack) -> None:
    """Celery enforces time limits under prefork only; ``worker.time_limits`` does it for threads."""
    stack.restart_worker("listing", env={"ATELIER_TASK_SOFT_TIME_LIMIT_S": "0.3"})
    try:
        # 8 variants of 1024 px: encoding alone takes longer than 0.3 s
        job_ids = [stack.producer.submit(listing(stack, 200 + i, variants=8, size=1024)) for i in range(2)]
        records = stack.producer.wait_all(job_ids, JOB_TIMEOUT_S)
        worker_alive = stack.workers["listing"].is_alive()
    finally:
        stack.restart_worker("listing", env={"ATELIER_TASK_SOFT_TIME_LIMIT_S": "120"})
    assert {r.state for r in records.values()} == {JobState.FAILED}
    assert {r.error.code.value for r in records.values() if r.error} == {"job_time_limit"}
    assert worker_alive  # the soft limit stops the job, not the process
