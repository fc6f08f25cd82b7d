"""How the worker's tasks turn a retry delay into a countdown RabbitMQ accepts, and errors into retries."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry
from kombu.transport.native_delayed_delivery import calculate_routing_key

from core.errors import RetryableError
from core.topology import LISTING_TASK
from worker import tasks
from worker.tasks import delayed_countdown, deliver_callback, generate_listing, generate_tryon


@pytest.mark.parametrize(
    ("seconds", "countdown"), [(0.0, 1), (0.25, 1), (0.5, 1), (1.0, 1), (1.2, 2), (7.0, 7)]
)
def test_retry_delays_become_whole_seconds_of_at_least_one_never_sooner(
    seconds: float, countdown: int
) -> None:
    assert delayed_countdown(seconds) == countdown


def test_a_sub_second_retry_delay_is_publishable_by_native_delayed_delivery() -> None:
    with pytest.raises(ValueError, match="positive"):
        calculate_routing_key(int(0.5), "atelier.callbacks")  # what Celery did with 0.5 s
    assert calculate_routing_key(delayed_countdown(0.5), "atelier.callbacks").endswith("1.atelier.callbacks")


def test_the_tasks_leave_retry_budgets_to_atelier_not_celery_s_default_of_three() -> None:
    assert [t.max_retries for t in (generate_listing, generate_tryon, deliver_callback)] == [None, None, None]


def test_a_retryable_error_raised_before_the_job_s_failure_handling_becomes_a_retry(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that could not be queued at the start (broker down) must not end the task:
    the job's message is retried, and the retry queues what is missing."""
    retried: list[dict[str, Any]] = []

    class Task:
        name = LISTING_TASK
        request = SimpleNamespace(retries=0, delivery_info={}, id="job-1", kwargs={"job_id": "job-1"})

        def retry(self, **options: Any) -> Retry:
            retried.append(options)
            return Retry()

    def start_fails(job_id: str, request: Any, ctx: Any, *, redelivered: bool) -> None:
        raise RetryableError("callback_enqueue_failed", "job.started callback not queued")

    monkeypatch.setattr(tasks, "_context", lambda: None)
    monkeypatch.setattr(tasks.model_versions, "with_default_version", lambda name, request, ctx: request)
    with pytest.raises(Retry), caplog.at_level(logging.INFO, logger="worker.tasks"):
        tasks._run_job(Task(), start_fails, "job-1", {})
    assert len(retried) == 1 and retried[0]["queue"].endswith("listing")
    assert retried[0]["exc"].code == "callback_enqueue_failed" and retried[0]["countdown"] >= 1
    assert retried[0]["kwargsrepr"] == "{'job_id': 'job-1'}"  # not a copy of the request
    # Celery's own INFO line for a retry is off (worker.logs): the task logs it, with the job
    [line] = [r for r in caplog.records if r.name == "worker.tasks"]
    assert "retry in" in line.getMessage() and "callback_enqueue_failed" in line.getMessage()
    assert line.__dict__["job_id"] == "job-1"
