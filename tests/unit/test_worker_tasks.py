"""How the worker's tasks turn a retry delay into a countdown RabbitMQ accepts."""

from __future__ import annotations

import pytest
from kombu.transport.native_delayed_delivery import calculate_routing_key

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
