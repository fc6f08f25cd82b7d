"""Try-on requests overtake queued backfill in the real Triton server: every model loads with its
priority levels, and a request the worker makes inside a try-on task is served before the bulk
requests queued ahead of it, while the same request from a listing task waits its turn."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import tritonclient.grpc as grpcclient
from celery import Celery

from core.topology import LISTING_TASK, TRYON_TASK
from core.worker_settings import WorkerSettings
from embedded.triton import TritonServer
from serving_contract import priorities
from serving_contract.tensors import CLIENT_DTYPES, MODELS, PRODUCT_GENERATOR
from tests.integration.triton_requests import random_products
from training.export import INTRA_OP_THREADS, instance_count_of
from worker.inference import InferenceClient

pytestmark = pytest.mark.triton

#: bulk requests queued before the probe: full batches, so the batcher cannot merge them
BACKLOG = 32
#: seconds the backlog has to reach the server's queue before the probe is sent (it takes
#: milliseconds; draining it takes seconds)
SETTLE_S = 0.5


@pytest.fixture(scope="module")
def client(triton: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(triton.grpc_url) as c:
        yield c


def test_every_model_loads_with_priority_levels_and_one_intra_op_thread(
    client: grpcclient.InferenceServerClient,
) -> None:
    for spec in MODELS:
        config = client.get_model_config(spec.name).config
        assert config.dynamic_batching.priority_levels == priorities.LEVELS, spec.name
        assert config.dynamic_batching.default_priority_level == priorities.BULK, spec.name
        assert config.parameters["intra_op_threads"].string_value == str(INTRA_OP_THREADS), spec.name


def queue_backlog(
    client: grpcclient.InferenceServerClient, finished: list[str], lock: threading.Lock
) -> None:
    """Send ``BACKLOG`` full-size bulk requests to ``product_cgan`` without waiting for them."""
    for i in range(BACKLOG):
        inputs = []
        for name, values in random_products(PRODUCT_GENERATOR.max_batch_size, seed=i).items():
            tensor = grpcclient.InferInput(name, list(values.shape), CLIENT_DTYPES[values.dtype.name])
            tensor.set_data_from_numpy(values)
            inputs.append(tensor)

        def done(result: Any, error: Any, i: int = i) -> None:
            with lock:
                finished.append(f"bulk {i}" if error is None else f"bulk {i} failed: {error}")

        client.async_infer(PRODUCT_GENERATOR.name, inputs, done)


def bulk_done_before_probe(triton: TritonServer, task_name: str) -> tuple[int, int]:
    """How many queued bulk requests had finished when the worker's one-image request was made,
    from inside a Celery task called ``task_name``, and how many before it was answered."""
    finished: list[str] = []
    lock = threading.Lock()
    settings = WorkerSettings(
        _env_file=None,  # type: ignore[call-arg]
        triton_grpc_url=triton.grpc_url,
        redis_key_prefix=f"test-priority-{uuid.uuid4().hex}:",  # its backpressure holds no one else back
    )
    worker_client = InferenceClient(settings)
    assert worker_client.ready()  # its channel open before the backlog, not while it drains
    app = Celery("priority-test", set_as_current=False)

    @app.task(name=task_name)
    def probe() -> None:
        worker_client.generate_products([1], [2], [3])
        with lock:
            finished.append("probe")

    with grpcclient.InferenceServerClient(triton.grpc_url) as bulk_client:
        queue_backlog(bulk_client, finished, lock)
        time.sleep(SETTLE_S)
        with lock:
            sent_after = len(finished)
        probe.apply().get()
        deadline = time.monotonic() + 120
        while len(finished) < BACKLOG + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(finished) == BACKLOG + 1 and not [f for f in finished if "failed" in f], finished
    return sent_after, finished.index("probe")


def test_a_try_on_request_overtakes_queued_backfill_and_a_listing_request_does_not(
    triton: TritonServer,
) -> None:
    _, listing = bulk_done_before_probe(triton, LISTING_TASK)
    sent_after, tryon = bulk_done_before_probe(triton, TRYON_TASK)
    # first come, first served at the bulk level: only the last queued batch may still run on
    # another instance (product_cgan has two) while the probe runs, and end after it
    assert listing >= BACKLOG - (instance_count_of(PRODUCT_GENERATOR) - 1), f"{listing} of {BACKLOG}"
    # after those done before it was sent: the batches running when it arrived (one per instance)
    # and the few done while it was being sent, no more. Counted from the send, not from the
    # start: how many finish while the backlog settles depends on how fast the model runs
    # (4-row forwards and a kept heap drain it about twice as fast as before)
    allowed = instance_count_of(PRODUCT_GENERATOR) + 2
    # enough still queued when it was sent for overtaking to show (else: a larger BACKLOG)
    assert BACKLOG - sent_after > 2 * allowed, f"{sent_after} of {BACKLOG} done before the try-on was sent"
    assert tryon - sent_after <= allowed, (
        f"{tryon} of {BACKLOG} queued bulk requests finished before the try-on's, "
        f"{sent_after} before it was sent"
    )
