"""The API served for real on a private namespace, for the test modules that build their own
app settings (``test_api_async_submit``, ``test_review_api``): uvicorn in a thread over a real
producer, its queues and Redis keys (``atelier-test-<prefix>-<hex>``) deleted afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from api.app import create_app
from api.keys.store import KeyStore
from api.settings import ApiSettings
from producer.client import Producer
from tests.integration.services import AMQP_URL, BASE, namespace, remove_namespace, serving


def api_settings(prefix: str, **overrides: Any) -> ApiSettings:
    """``BASE`` on a private namespace named after ``prefix``, with a 5 s publish confirm."""
    values = {**BASE.model_dump(), **namespace(prefix), "publish_confirm_timeout_s": 5.0}
    return ApiSettings.model_validate({**values, **overrides})


@contextmanager
def served_api(
    settings: ApiSettings, keys: KeyStore, *, declare: bool = False
) -> Iterator[tuple[str, Producer]]:
    """The API on ``settings`` and ``keys``: its base URL and its producer; ``declare`` declares
    the topology first (tests that read the queues before anything is published)."""
    producer = Producer(settings)
    try:
        if declare:
            producer.publisher.declare()
        with serving(create_app(producer=producer, keys=keys, settings=settings)) as url:
            yield url, producer
    finally:
        producer.close()
        remove_namespace(settings, broker_url=AMQP_URL)  # the real broker, whatever the settings say
