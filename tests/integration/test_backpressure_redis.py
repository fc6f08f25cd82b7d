"""worker.backpressure's shared state in the real Redis: what one worker process holds, another
sees, until Redis's own clock passes it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from core.jobs.connection import redis_client
from core.worker_settings import WorkerSettings
from worker.backpressure import RedisInFlight


@pytest.fixture
def settings() -> Iterator[WorkerSettings]:
    settings = WorkerSettings(redis_key_prefix=f"test-backpressure-{uuid.uuid4().hex}:")
    yield settings
    redis_client(settings).delete(f"{settings.redis_key_prefix}interactive")


def test_a_hold_is_seen_by_every_process_until_it_passes(settings: WorkerSettings) -> None:
    tryon_worker, listing_worker = RedisInFlight(settings), RedisInFlight(settings)
    assert listing_worker.count() == 0
    tryon_worker.hold("job-1", 30)
    tryon_worker.hold("job-2", 0.2)
    assert listing_worker.count() == 2
    tryon_worker.hold("job-1", 0.2)  # the call ended: only its tail is left
    time.sleep(0.3)
    assert listing_worker.count() == 0


def test_the_set_expires_after_its_last_hold(settings: WorkerSettings) -> None:
    RedisInFlight(settings).hold("job-1", 0.1)
    ttl_ms = redis_client(settings).pttl(f"{settings.redis_key_prefix}interactive")
    assert 60_000 <= ttl_ms <= 60_100
