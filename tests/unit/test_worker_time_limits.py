"""worker.time_limits: the soft and hard limits the threads pool does not enforce itself."""

from __future__ import annotations

import threading
import time

import pytest
from billiard.exceptions import SoftTimeLimitExceeded

from core.errors import AtelierError, ErrorCode
from core.worker_settings import WorkerSettings
from worker.backpressure import Backpressure, MemoryInFlight
from worker.inference import InferenceClient
from worker.pipeline import job_failure
from worker.time_limits import HARD_LIMIT_EXIT_CODE, ThreadTimeLimits, needs_own_time_limits


def test_only_the_prefork_pool_enforces_celery_s_time_limits_itself() -> None:
    assert not needs_own_time_limits("prefork")
    assert needs_own_time_limits("threads")
    assert needs_own_time_limits("solo")


def test_a_task_thread_past_the_soft_limit_gets_soft_time_limit_exceeded() -> None:
    limits = ThreadTimeLimits(0.2, 5.0, tick_s=0.02)
    caught: list[BaseException] = []
    started = threading.Event()

    def task() -> None:
        limits.task_started("job-slow")
        started.set()
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # Python code: the async exception lands here
                time.sleep(0.01)
        except SoftTimeLimitExceeded as error:
            caught.append(error)
        finally:
            limits.task_finished()

    limits.start()
    try:
        thread = threading.Thread(target=task)
        thread.start()
        started.wait(5)
        thread.join(5)
    finally:
        limits.stop()
    assert not thread.is_alive()
    assert len(caught) == 1
    # the pipeline fails such a job with the same code as under prefork
    assert job_failure(caught[0]).code is ErrorCode.JOB_TIME_LIMIT


def test_a_task_that_finishes_in_time_is_left_alone() -> None:
    limits = ThreadTimeLimits(0.3, 5.0, tick_s=0.02)
    limits.start()
    try:
        limits.task_started("job-quick")
        time.sleep(0.05)
        limits.task_finished()
        time.sleep(0.4)  # past the soft limit, after the task ended: nothing may be raised here
    finally:
        limits.stop()


def test_a_task_past_the_hard_limit_ends_the_worker_process() -> None:
    now = [100.0]
    exits: list[int] = []
    limits = ThreadTimeLimits(1.0, 2.0, exit_process=exits.append, clock=lambda: now[0])
    limits.task_started("job-stuck")
    now[0] += 2.5
    limits.check()
    assert exits == [HARD_LIMIT_EXIT_CODE]
    limits.task_finished()


def test_the_soft_limit_is_raised_once_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    raised: list[tuple[int, object]] = []
    monkeypatch.setattr(
        "worker.time_limits._async_raise", lambda thread, error: raised.append((thread, error))
    )
    now = [0.0]
    limits = ThreadTimeLimits(1.0, 10.0, exit_process=lambda code: None, clock=lambda: now[0])
    limits.task_started("job-a")
    now[0] = 1.5
    limits.check()
    limits.check()
    assert raised == [(threading.get_ident(), SoftTimeLimitExceeded)]
    limits.task_finished()  # a raise not yet delivered is taken back
    assert raised[-1] == (threading.get_ident(), None)


def test_limits_in_the_wrong_order_are_refused() -> None:
    with pytest.raises(ValueError, match="below the hard one"):
        ThreadTimeLimits(10.0, 5.0)


def test_a_soft_limit_landing_inside_a_triton_call_still_fails_the_job_with_job_time_limit() -> None:
    """The exception may arrive while a boundary's call runs; the boundary wraps it in its own
    typed error (``inference_rejected``), and the job must still read it as the time limit."""

    class Interrupted:
        def infer(self, *_: object, **__: object) -> None:
            raise SoftTimeLimitExceeded()

        def close(self) -> None:
            pass

    settings = WorkerSettings(_env_file=None)  # type: ignore[call-arg]
    inference = InferenceClient(
        settings, client_factory=Interrupted, backpressure=Backpressure(MemoryInFlight())
    )
    with pytest.raises(AtelierError) as raised:
        inference.generate_products([0], [0], [1])
    assert raised.value.code is ErrorCode.INFERENCE_REJECTED
    assert job_failure(raised.value).code is ErrorCode.JOB_TIME_LIMIT
