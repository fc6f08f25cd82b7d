"""``AsyncProducer.accept`` against real RabbitMQ and Redis: the same record and the same Celery
message as ``Producer.accept``, a real Celery worker runs it, replays, and broker failures ending
the job ``failed: publish_failed`` as on the sync path.

Each test has its own namespace (``tests.integration.producer_fixtures``), deleted after.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Connection, Queue

from core.contracts import JobState
from core.errors import ErrorCode
from core.publish import BrokerUnavailable, PublishNotConfirmed
from core.publish_async import AsyncPublisher
from core.settings import AtelierSettings
from core.topology import LISTING_TASK, build_topology, celery_config
from producer.accept_async import AsyncProducer
from producer.client import Producer
from tests.examples import LISTING_EXAMPLE, TRYON_EXAMPLE
from tests.integration.producer_fixtures import (
    FreezableProxy,
    producer,
    proxy,
    remove,
    settings,
    unreachable_broker_settings,
    via,
)
from tests.integration.services import AMQP_URL, drain, require_services

T = TypeVar("T")

__all__ = ["producer", "proxy", "settings"]  # the fixtures, used by name


def run_async(
    producer: Producer, steps: Callable[[AsyncProducer], Awaitable[T]], *, connections: int | None = None
) -> T:
    """``steps(AsyncProducer(producer))`` in a fresh event loop, closing what it opened; with
    ``connections``, its publisher has that many (one: every publish on the same connection)."""

    async def main() -> T:
        publisher = None
        if connections is not None:
            publisher = AsyncPublisher(producer.settings, app=producer.publisher.app, connections=connections)
        accepting = AsyncProducer(producer, publisher=publisher)
        try:
            return await steps(accepting)
        finally:
            await accepting.close()

    return asyncio.run(main())


def raw_messages(queue: Queue) -> list[Any]:
    """Every message in ``queue`` as it arrived: its AMQP properties, headers and body bytes."""
    messages = []
    with Connection(AMQP_URL) as connection:
        bound = queue.bind(connection.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            messages.append((dict(message.properties), dict(message.headers), message.body, message))
    return messages


def text(body: bytes | str) -> str:
    return body.decode() if isinstance(body, bytes) else body


def without_key(request: dict[str, Any]) -> dict[str, Any]:
    return {**request, "idempotency_key": None}


# --- the same record, the same message ---


def test_async_accept_sends_the_message_the_sync_path_sends_field_by_field(
    producer: Producer, settings: AtelierSettings
) -> None:
    sync = producer.accept(without_key(LISTING_EXAMPLE))
    new = run_async(producer, lambda accepting: accepting.accept(without_key(LISTING_EXAMPLE)))
    (sync_props, sync_headers, sync_body, sync_msg), (props, headers, body, msg) = raw_messages(
        build_topology(settings).listing
    )

    # what differs by design: the job id (task id) everywhere it appears
    sync_id, new_id = sync.record.job_id, new.record.job_id
    assert sync_headers["id"] == sync_headers["root_id"] == sync_id
    assert headers["id"] == headers["root_id"] == new_id
    assert sync_headers.keys() == headers.keys()
    for name in sync_headers.keys() - {"id", "root_id", "kwargsrepr"}:
        assert headers[name] == sync_headers[name], name
    assert headers["kwargsrepr"] == sync_headers["kwargsrepr"].replace(sync_id, new_id)
    assert json.loads(body) == json.loads(text(sync_body).replace(sync_id, new_id))
    # the AMQP properties: the same, plus a message id (the task id) that aiormq needs
    assert props.pop("message_id") == new_id
    assert props.pop("correlation_id") == new_id and sync_props.pop("correlation_id") == sync_id
    props.pop("application_headers", None), sync_props.pop("application_headers", None)  # compared above
    assert props == sync_props
    assert msg.delivery_info["exchange"] == sync_msg.delivery_info["exchange"] == settings.exchange
    assert msg.delivery_info["routing_key"] == sync_msg.delivery_info["routing_key"]


def test_async_accept_stores_the_record_the_sync_path_stores(producer: Producer) -> None:
    new = run_async(producer, lambda accepting: accepting.accept(TRYON_EXAMPLE))
    stored = producer.status(new.record.job_id)
    assert new.created and new.record == stored and stored.state is JobState.QUEUED
    assert producer.store.get_request(stored.job_id) == producer.prepare(TRYON_EXAMPLE).body
    sync = producer.accept(without_key(TRYON_EXAMPLE)).record
    same_fields = set(type(stored).model_fields) - {"job_id", "created_at", "updated_at", "idempotency_key"}
    assert {f: getattr(stored, f) for f in same_fields} == {f: getattr(sync, f) for f in same_fields}


def test_a_real_celery_worker_runs_the_async_message(producer: Producer, settings: AtelierSettings) -> None:
    worker_app = Celery("async-accept-test", set_as_current=False)
    worker_app.conf.update(celery_config(settings), worker_hijack_root_logger=False)
    # Celery shares every app's tasks: once worker.tasks is imported (earlier tests), finalizing this
    # app adds the real listing task under the same name; this test's recording task replaces it
    worker_app.finalize()
    worker_app.tasks.pop(LISTING_TASK, None)
    received: list[dict[str, Any]] = []
    ran = threading.Event()

    @worker_app.task(name=LISTING_TASK, shared=False)
    def generate(job_id: str, request: dict[str, Any]) -> None:
        received.append({"job_id": job_id, "request": request})
        ran.set()

    new = run_async(producer, lambda accepting: accepting.accept(LISTING_EXAMPLE))
    root_level = logging.getLogger().level  # start_worker sets the root's level for the whole process
    try:
        with start_worker(
            worker_app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=30
        ):
            assert ran.wait(20), "the worker never ran the message"
    finally:
        logging.getLogger().setLevel(root_level)
    assert received == [{"job_id": new.record.job_id, "request": producer.prepare(LISTING_EXAMPLE).body}]


# --- idempotency ---


def test_async_replay_gives_the_earlier_job_as_it_is_and_publishes_once(
    producer: Producer, settings: AtelierSettings
) -> None:
    async def twice(accepting: AsyncProducer) -> tuple[Any, Any]:
        first = await accepting.accept(LISTING_EXAMPLE)
        producer.store.transition(first.record.job_id, JobState.RUNNING, only_from=(JobState.QUEUED,))
        return first, await accepting.accept(LISTING_EXAMPLE)

    first, replay = run_async(producer, twice)
    assert first.created and not replay.created and replay.record.job_id == first.record.job_id
    assert replay.record.state is JobState.RUNNING  # read from the store
    assert producer.accept(LISTING_EXAMPLE).record.job_id == first.record.job_id  # shared with sync
    assert [h["id"] for h, _ in drain(build_topology(settings).listing)] == [first.record.job_id]


def test_concurrent_identical_async_submits_make_one_job(
    producer: Producer, settings: AtelierSettings
) -> None:
    async def together(accepting: AsyncProducer) -> list[Any]:
        return list(await asyncio.gather(*(accepting.accept(LISTING_EXAMPLE) for _ in range(8))))

    results = run_async(producer, together)
    assert len({r.record.job_id for r in results}) == 1 and sum(r.created for r in results) == 1
    assert len(drain(build_topology(settings).listing)) == 1


# --- broker failures ---


def _assert_publish_failed(producer: Producer, job_id: str) -> None:
    record = producer.status(job_id)
    assert record.state is JobState.FAILED
    assert (
        record.error is not None and record.error.code == ErrorCode.PUBLISH_FAILED and record.error.retryable
    )


def test_broker_down_raises_and_leaves_the_job_failed_publish_failed_with_its_key_released() -> None:
    require_services()
    settings = unreachable_broker_settings()
    try:
        with Producer(settings) as producer:
            with pytest.raises(BrokerUnavailable) as caught:
                run_async(producer, lambda accepting: accepting.accept(LISTING_EXAMPLE))
            assert not caught.value.delivered_maybe
            _assert_publish_failed(producer, caught.value.job_id)
            key = LISTING_EXAMPLE["idempotency_key"]
            assert producer.store.find_by_idempotency_key("shop-eu", key) is None
    finally:
        remove(settings)


def test_a_broker_that_stops_answering_fails_the_job_within_the_confirm_timeout(
    settings: AtelierSettings, proxy: FreezableProxy
) -> None:
    with Producer(via(proxy, settings)) as producer:

        async def steps(accepting: AsyncProducer) -> str:
            first = await accepting.accept(without_key(LISTING_EXAMPLE))
            proxy.frozen.set()
            with pytest.raises(PublishNotConfirmed) as caught:
                await asyncio.wait_for(
                    accepting.accept(LISTING_EXAMPLE), settings.publish_confirm_timeout_s * 3
                )
            assert caught.value.delivered_maybe
            _assert_publish_failed(producer, caught.value.job_id)
            return first.record.job_id

        first = run_async(producer, steps, connections=1)
        assert producer.status(first).state is JobState.QUEUED


def test_a_dropped_connection_is_reopened_for_the_next_publish(
    settings: AtelierSettings, proxy: FreezableProxy
) -> None:
    with Producer(via(proxy, settings)) as producer:

        async def steps(accepting: AsyncProducer) -> list[str]:
            first = await accepting.accept(without_key(LISTING_EXAMPLE))
            proxy.drop_connections()  # a broker restart: the open connection is dead
            await asyncio.sleep(0.1)
            second = await accepting.accept(without_key(LISTING_EXAMPLE))
            return [first.record.job_id, second.record.job_id]

        ids = run_async(producer, steps, connections=1)
    assert sorted(h["id"] for h, _ in drain(build_topology(settings).listing)) == sorted(ids)


def test_an_unroutable_message_is_retried_after_declaring_the_queue_again(
    producer: Producer, settings: AtelierSettings
) -> None:
    listing = build_topology(settings).listing

    async def steps(accepting: AsyncProducer) -> str:
        await accepting.accept(without_key(LISTING_EXAMPLE))
        drain(listing)
        with Connection(AMQP_URL) as connection:
            listing.bind(connection.default_channel).delete()  # an operator deleted the queue
        return (await accepting.accept(LISTING_EXAMPLE)).record.job_id

    job_id = run_async(producer, steps, connections=1)
    assert [h["id"] for h, _ in drain(listing)] == [job_id]


def test_without_retries_an_unroutable_message_fails_the_job(settings: AtelierSettings) -> None:
    with Producer(settings.model_copy(update={"publish_retries": 0})) as producer:
        listing = build_topology(settings).listing

        async def steps(accepting: AsyncProducer) -> None:
            await accepting.accept(without_key(LISTING_EXAMPLE))
            with Connection(AMQP_URL) as connection:
                listing.bind(connection.default_channel).delete()
            with pytest.raises(PublishNotConfirmed, match="NO_ROUTE") as caught:
                await accepting.accept(LISTING_EXAMPLE)
            _assert_publish_failed(producer, caught.value.job_id)

        run_async(producer, steps, connections=1)
