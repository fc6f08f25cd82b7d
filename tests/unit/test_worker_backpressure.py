"""worker.backpressure: a try-on's Triton requests carry the interactive priority and hold back
backfill while in flight; other requests are bulk and wait, never longer than the bound."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import redis
from celery import Celery

from core.topology import LISTING_TASK, TRYON_TASK
from core.worker_settings import WorkerSettings
from serving_contract import priorities
from worker.backpressure import Backpressure, MemoryInFlight, request_priority, running_task_name
from worker.inference import InferenceClient


class RecordingTriton:
    """Answers every call with zeros of the model's output shape and records its keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def infer(self, model_name: str, inputs: list[Any], **kwargs: Any) -> Any:
        self.calls.append({"model": model_name, **kwargs})
        n = inputs[0].shape()[0]
        shapes = {"product_cgan": (n, 32, 32, 3), "tryon_cvae": (n, 64, 64, 3), "quality_judge": (n, 10)}
        dtype = np.float32 if model_name == "quality_judge" else np.uint8
        output = np.zeros(shapes[model_name], dtype)
        return type(
            "Result",
            (),
            {
                "as_numpy": lambda self, name: output,
                "get_response": lambda self: type("Response", (), {"model_version": "1"})(),
            },
        )()


@pytest.fixture
def triton() -> RecordingTriton:
    return RecordingTriton()


class FakeClock:
    """A clock that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def in_flight(clock: FakeClock) -> MemoryInFlight:
    return MemoryInFlight(clock=clock)


@pytest.fixture
def backpressure(in_flight: MemoryInFlight, clock: FakeClock) -> Backpressure:
    return Backpressure(in_flight, tail_s=0.05, max_wait_s=1.0, poll_s=0.01, clock=clock, sleep=clock.sleep)


@pytest.fixture
def client(triton: RecordingTriton, backpressure: Backpressure) -> InferenceClient:
    settings = WorkerSettings(_env_file=None)  # type: ignore[call-arg]
    return InferenceClient(settings, client_factory=lambda: triton, backpressure=backpressure)


def make_products(client: InferenceClient) -> None:
    client.generate_products([1, 2], [3, 4], [5, 6])


def test_a_try_on_task_is_interactive_and_every_other_task_bulk() -> None:
    assert request_priority(TRYON_TASK) == priorities.INTERACTIVE
    assert request_priority(LISTING_TASK) == priorities.BULK
    assert request_priority("atelier.callbacks.deliver") == priorities.BULK


def test_outside_a_task_a_request_is_bulk(client: InferenceClient, triton: RecordingTriton) -> None:
    assert running_task_name() is None
    make_products(client)
    assert [c["priority"] for c in triton.calls] == [priorities.BULK]


@pytest.mark.parametrize(
    ("task_name", "expected"), [(TRYON_TASK, priorities.INTERACTIVE), (LISTING_TASK, priorities.BULK)]
)
def test_requests_made_inside_a_celery_task_carry_that_tasks_priority(
    client: InferenceClient, triton: RecordingTriton, task_name: str, expected: int
) -> None:
    app = Celery("backpressure-test", set_as_current=False)

    @app.task(name=task_name)
    def job() -> str | None:
        make_products(client)
        client.judge_products(np.zeros((2, 32, 32, 3), np.uint8))
        return running_task_name()

    assert job.apply().get() == task_name
    assert [(c["model"], c["priority"]) for c in triton.calls] == [
        ("product_cgan", expected),
        ("quality_judge", expected),
    ]
    make_products(client)  # the task has ended: back to bulk
    assert triton.calls[-1]["priority"] == priorities.BULK


def interactive_task(client: InferenceClient, in_flight: MemoryInFlight) -> tuple[Any, list[int]]:
    """A try-on task that makes one request and reports how many were in flight during it."""
    app = Celery("backpressure-test", set_as_current=False)
    seen: list[int] = []
    original = client.client.infer

    def infer(*args: Any, **kwargs: Any) -> Any:
        seen.append(in_flight.count())
        return original(*args, **kwargs)

    client.client.infer = infer

    @app.task(name=TRYON_TASK)
    def tryon() -> None:
        make_products(client)

    return tryon, seen


def test_a_try_on_request_is_in_flight_during_its_call_and_for_the_tail_after(
    client: InferenceClient, in_flight: MemoryInFlight, clock: FakeClock
) -> None:
    tryon, seen = interactive_task(client, in_flight)
    tryon.apply(task_id="job-1").get()
    assert seen == [1]
    assert list(in_flight.until) == ["job-1"]  # one member per task, named by its id
    assert in_flight.count() == 1
    clock.now += 0.06
    assert in_flight.count() == 0


def test_a_bulk_request_waits_while_a_try_on_is_in_flight(
    backpressure: Backpressure, in_flight: MemoryInFlight, clock: FakeClock
) -> None:
    in_flight.hold("tryon", 0.1)
    with backpressure.request() as priority:
        sent_at = clock.now
    assert priority == priorities.BULK
    assert sent_at == pytest.approx(100.1) and set(clock.slept) == {0.01}


def test_a_bulk_request_waits_at_most_max_wait_s(
    backpressure: Backpressure, in_flight: MemoryInFlight, clock: FakeClock
) -> None:
    in_flight.hold("stuck", 3600)
    assert backpressure.wait_for_interactive() == pytest.approx(1.0)


def test_with_nothing_in_flight_a_bulk_request_goes_at_once(
    backpressure: Backpressure, clock: FakeClock
) -> None:
    with backpressure.request():
        pass
    assert clock.slept == []


def test_a_failing_shared_state_lets_requests_through_unheld(
    client: InferenceClient, triton: RecordingTriton, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Down:
        def hold(self, member: str, seconds: float) -> None:
            raise redis.ConnectionError("refused")

        def count(self) -> int:
            raise redis.ConnectionError("refused")

    # its own level: an in-process Celery worker earlier in the run may have raised the root's
    caplog.set_level(logging.WARNING, logger="worker.backpressure")
    client.backpressure = Backpressure(Down(), clock=clock, sleep=clock.sleep)
    make_products(client)
    make_products(client)
    assert [c["priority"] for c in triton.calls] == [priorities.BULK] * 2 and clock.slept == []
    (warning,) = caplog.records  # once per process, not once per request
    assert warning.getMessage().startswith("backpressure off while its Redis fails: ")


def counted_looks(in_flight: MemoryInFlight, clock: FakeClock) -> list[float]:
    """When each look at the try-ons in flight was made."""
    looks: list[float] = []
    count = in_flight.count

    def counted() -> int:
        looks.append(clock.now)
        return count()

    in_flight.count = counted  # type: ignore[method-assign]
    return looks


def test_a_listing_task_looks_once_and_its_next_bulk_requests_within_recheck_s_go_unheld(
    in_flight: MemoryInFlight, clock: FakeClock
) -> None:
    """A listing job's judge call follows its generator call: one look per job, not two."""
    looks = counted_looks(in_flight, clock)
    held = Backpressure(in_flight, max_wait_s=1.0, poll_s=0.01, recheck_s=0.5, clock=clock, sleep=clock.sleep)
    app = Celery("recheck-test", set_as_current=False)
    waited: list[float] = []

    @app.task(name=LISTING_TASK)
    def listing(holds: list[float]) -> None:
        for hold in holds:
            if hold:
                in_flight.hold("tryon", hold)  # a try-on starts between two of this job's calls
            waited.append(held.wait_for_interactive())
            clock.now += 0.2

    listing.apply(args=[[0, 0.05, 0]], task_id="job-1").get()
    assert looks == [100.0] and waited == [0.0, 0.0, 0.0]
    in_flight.hold("tryon-2", 0.02)
    listing.apply(args=[[0]], task_id="job-2").get()  # another job looks, and waits for it
    assert len(looks) == 4 and waited[-1] == pytest.approx(0.02)


def test_outside_a_task_every_bulk_request_looks(in_flight: MemoryInFlight, clock: FakeClock) -> None:
    looks = counted_looks(in_flight, clock)
    held = Backpressure(in_flight, clock=clock, sleep=clock.sleep)
    held.wait_for_interactive()
    held.wait_for_interactive()
    assert len(looks) == 2
