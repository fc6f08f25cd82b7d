"""Submitting from an event loop: :class:`AsyncProducer`, the asyncio twin of ``Producer.accept``.

Why: the HTTP API is an event loop; handing each submit to a thread costs it context switches
and GIL contention (issue 13). Here the record is created over ``redis.asyncio`` and the message
published over an asyncio AMQP connection, awaited on the loop.

Same steps and semantics as :meth:`producer.client.Producer.accept`, from the same parts:
``Producer.prepare`` validates and builds the record and body, the store's own script creates it
(``core.jobs.store_async``), Celery's own message is published with confirms
(``core.publish_async``), ``Producer.publish_failed`` marks an unconfirmed job ``failed:
publish_failed`` and releases its key (in a thread: a rare path on the sync store), and a
subscribed ``job.queued`` callback is queued after the confirm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from core.contracts.jobs import JobEventType, JobRecord
from core.jobs import JobNotFound
from core.jobs.store_async import AsyncJobStore
from core.publish_async import AsyncPublisher
from core.topology import TASK_FOR_KIND
from producer.client import Accepted, Producer, Request, log_replay, log_submitted, subscribed

log = logging.getLogger(__name__)


class AsyncProducer:
    """``accept`` and ``status`` of a :class:`Producer` (``producer``: its settings, store, review
    policies and failure handling), awaited on the event loop.

    Keyword-only: ``store`` (default an :class:`AsyncJobStore` beside ``producer.store``) and
    ``publisher`` (default an :class:`AsyncPublisher` on ``producer``'s Celery app). Create it in the
    loop that uses it; :meth:`close` closes what it opened, not ``producer``.
    """

    def __init__(
        self,
        producer: Producer,
        *,
        store: AsyncJobStore | None = None,
        publisher: AsyncPublisher | None = None,
    ) -> None:
        self.producer = producer
        self.settings = producer.settings
        self.store = store if store is not None else AsyncJobStore(producer.store)
        if publisher is None:  # through the same send-only Celery app: the same message format
            publisher = AsyncPublisher(producer.settings, app=producer.publisher.app)
        self.publisher = publisher

    async def accept(self, request: Request | Mapping[str, Any] | str) -> Accepted:
        """As :meth:`Producer.accept`: validate, record, publish (confirmed), ``job.queued``; the
        record stored, or an idempotent replay's earlier job. Raises what it raises."""
        prepared = self.producer.prepare(request)
        request, record, body = prepared.request, prepared.record, prepared.body
        job_id, created = await self.store.create(
            record, request.idempotency_key, request=body, fingerprint=prepared.fingerprint
        )
        if not created:
            log_replay(job_id, request)
            return Accepted(await self.status(job_id), False)
        try:
            await self.publisher.publish(TASK_FOR_KIND[record.kind], job_id, body)
        except Exception as error:
            if not await asyncio.to_thread(self.producer.publish_failed, prepared, error):
                return Accepted(await self.status(job_id), True)
            raise
        log_submitted(record)
        await self._notify(job_id, body, JobEventType.QUEUED)
        return Accepted(record, True)

    async def status(self, job_id: str) -> JobRecord:
        """The job's record; raises :class:`core.jobs.JobNotFound`."""
        record = await self.store.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    async def _notify(self, job_id: str, request_json: Mapping[str, Any] | None, event: JobEventType) -> None:
        """As ``Producer._notify``: queue the callback if subscribed; a failure is logged only."""
        if not subscribed(request_json, event):
            return
        try:
            await self.publisher.publish_callback(job_id, event.value)
        except Exception:
            log.exception("could not queue the %s callback", event.value, extra={"job_id": job_id})

    async def close(self) -> None:
        await self.publisher.close()
        await self.store.close()
