"""Publishing jobs to RabbitMQ from an event loop: the asyncio twin of :mod:`core.publish`.

Why: a producer that lives in an event loop (the HTTP API) would otherwise hand every publish to
a thread and wait for it there; here the publish and its confirm are awaited on the loop, over
one connection and channel per publisher (aiormq: the asyncio AMQP client under aio-pika),
re-opened when they fail.

Same contract as :class:`core.publish.Publisher`: every message is mandatory and waits for the
broker's ``basic.ack``; a refused connection, a ``basic.nack``, an unroutable return or a confirm
that does not come within ``publish_confirm_timeout_s`` raises the same :class:`PublishError`
subclasses, with the same retry rules (a dead connection or an unroutable return is retried on a
new connection, up to ``publish_retries`` times; a nack or a timeout never is). The message is
Celery's own (:func:`task_message`: ``app.amqp.as_task_v2``, serialised by kombu), so a worker
cannot tell it from one :class:`Publisher` sent. RabbitMQ only: kombu's ``filesystem://`` broker
has no asyncio client (use :class:`Publisher` there).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, NamedTuple

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection
from celery import Celery
from kombu import Queue
from kombu.entity import maybe_delivery_mode
from kombu.serialization import dumps
from pamqp import commands as spec

from core.publish import (
    ARGS_REPR,
    NO_ROUTE,
    BrokerUnavailable,
    Publisher,
    PublishNotConfirmed,
    kwargs_repr,
    refuse_oversized,
    retry_or_give_up,
    send_only_app,
)
from core.settings import AtelierSettings
from core.topology import (
    CALLBACK_TASK,
    broker_ssl,
    build_topology,
    callback_kwargs,
    callback_task_id,
    is_filesystem_broker,
)

log = logging.getLogger(__name__)

#: pause before each reconnect attempt grows by this much (seconds), as in ``core.publish``
_RECONNECT_STEP_S = 0.5

#: connections a publisher takes turns on: RabbitMQ's flow control throttles each publishing
#: connection on its own, and one connection capped the API's submits at half the sync path's
#: (``bench.api.async_ab``); as many as the broker connections Celery pools for the sync
#: :class:`Publisher` (``broker_pool_limit``)
DEFAULT_CONNECTIONS = 10

#: what a failed publish on an open channel can raise when the connection or channel is gone
_CONNECTION_ERRORS = (
    ConnectionError,
    OSError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.AMQPChannelError,
    aiormq.exceptions.ChannelInvalidStateError,
)


class TaskMessage(NamedTuple):
    """A Celery task message as it goes on the wire."""

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties


def task_message(
    app: Celery, queue: Queue, task_name: str, kwargs: dict[str, Any], *, task_id: str, retries: int = 0
) -> TaskMessage:
    """The message ``app.send_task(task_name, kwargs=kwargs, task_id=task_id, queue=queue)`` sends:
    Celery's headers and body (``as_task_v2``), kombu's serialisation, the queue's exchange and
    routing key, the persistent delivery mode and priority 0 that kombu's producer adds."""
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id,
        task_name,
        (),
        kwargs,
        retries=retries,
        reply_to=app.thread_oid,
        ignore_result=None,
        argsrepr=ARGS_REPR,
        kwargsrepr=kwargs_repr(kwargs),
    )
    content_type, content_encoding, payload = dumps(body, serializer=app.conf.task_serializer)
    data = payload.encode(content_encoding) if isinstance(payload, str) else payload
    delivery_mode = maybe_delivery_mode(queue.exchange.delivery_mode or app.conf.task_default_delivery_mode)
    return TaskMessage(
        exchange=queue.exchange.name,
        routing_key=queue.routing_key,
        body=data,
        properties=spec.Basic.Properties(
            content_type=content_type,
            content_encoding=content_encoding,
            headers=headers,
            delivery_mode=delivery_mode,
            priority=0,
            correlation_id=properties["correlation_id"],
            reply_to=properties["reply_to"],
            # aiormq tracks returns by message id and makes one up if none: the task id is one
            message_id=task_id,
        ),
    )


def _ssl_context(settings: AtelierSettings) -> ssl.SSLContext | None:
    """The TLS context of ``amqps://`` (``core.topology.broker_ssl``'s options), else ``None``."""
    options = broker_ssl(settings)
    if not isinstance(options, dict):
        return None
    context = ssl.create_default_context(cafile=options.get("ca_certs"))
    if "certfile" in options:
        context.load_cert_chain(options["certfile"], options.get("keyfile"))
    return context


class _Link(NamedTuple):
    """One pooled connection and its confirm channel."""

    connection: AbstractConnection
    channel: AbstractChannel


class AsyncPublisher:
    """Sends task messages over a few asyncio AMQP connections, with publisher confirms.

    Parameters (keyword-only besides ``settings``): ``app``, the send-only Celery app whose
    message format is used (default :func:`core.publish.send_only_app`); ``connections``, how
    many connections (one confirm channel each) publishes take turns on (default
    :data:`DEFAULT_CONNECTIONS`). Reads the same settings as :class:`core.publish.Publisher`.
    Each connection opens on first use and again after it failed, and declares the topology (by
    a ``Publisher``, in a thread) when it does, so a deleted queue comes back. Use from one event
    loop; call :meth:`close` on it.
    """

    def __init__(
        self,
        settings: AtelierSettings,
        *,
        app: Celery | None = None,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        if is_filesystem_broker(settings):
            raise ValueError("AsyncPublisher needs RabbitMQ (amqp:// or amqps://), not filesystem://")
        self.settings = settings
        self.topology = build_topology(settings)
        self.app = app if app is not None else send_only_app(settings)
        self._declarer = Publisher(settings, app=self.app)
        self._links: list[_Link | None] = [None] * connections
        self._opening = [asyncio.Lock() for _ in range(connections)]
        self._turn = 0

    async def publish(
        self, task_name: str, job_id: str, request_json: dict[str, Any], *, retries: int = 0
    ) -> None:
        """Send ``task_name(job_id=..., request=...)`` with ``task_id=job_id``; confirmed or raises
        (as :meth:`core.publish.Publisher.publish`)."""
        kwargs = {"job_id": job_id, "request": request_json}
        await self.send(task_name, kwargs, task_id=job_id, job_id=job_id, retries=retries)

    async def publish_callback(self, job_id: str, event: str) -> None:
        """Queue the delivery of one callback event (``CALLBACK_TASK``); confirmed or raises."""
        await self.send(
            CALLBACK_TASK,
            callback_kwargs(job_id, event),
            task_id=callback_task_id(job_id, event),
            job_id=job_id,
        )

    async def send(
        self, task_name: str, kwargs: dict[str, Any], *, task_id: str, job_id: str, retries: int = 0
    ) -> None:
        """Send ``task_name(**kwargs)`` to its queue as ``task_id``; confirmed or raises."""
        queue = self.topology.queue_for(task_name)
        refuse_oversized(task_name, kwargs, job_id=job_id, settings=self.settings)
        message = task_message(self.app, queue, task_name, kwargs, task_id=task_id, retries=retries)
        self._turn = slot = (self._turn + 1) % len(self._links)
        for attempt in range(self.settings.publish_retries + 1):
            link = await self._open(slot, task_name, job_id, delivered_maybe=attempt > 0)
            try:
                confirmation = await link.channel.basic_publish(
                    message.body,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    properties=message.properties,
                    mandatory=True,
                    timeout=self.settings.publish_confirm_timeout_s,
                )
            except (TimeoutError, aiormq.exceptions.PublishError, *_CONNECTION_ERRORS) as error:
                await self._drop(slot, link)  # in an unknown state: never reuse it
                retry_or_give_up(
                    error,
                    retry=attempt < self.settings.publish_retries and _worth_retrying(error),
                    reason=_describe(error),
                    job_id=job_id,
                    task_name=task_name,
                    attempt=attempt,
                )
                continue
            if not isinstance(confirmation, spec.Basic.Ack):
                raise PublishNotConfirmed(
                    f"{task_name} for job {job_id} not confirmed by the broker: nacked",
                    task_name=task_name,
                    job_id=job_id,
                    delivered_maybe=True,
                )
            log.info("published", extra={"job_id": job_id, "task": task_name, "queue": queue.name})
            return

    def _open_link(self, slot: int) -> _Link | None:
        link = self._links[slot]
        return link if link is not None and not link.channel.is_closed else None

    async def _open(self, slot: int, task_name: str, job_id: str, *, delivered_maybe: bool) -> _Link:
        """Connection ``slot``, opened if it is not; raises :class:`BrokerUnavailable` after
        ``publish_retries`` more failed attempts."""
        link = self._open_link(slot)
        if link is not None:
            return link
        async with self._opening[slot]:
            link = self._open_link(slot)
            if link is not None:
                return link
            await self._drop(slot, self._links[slot])
            error: BaseException | None = None
            for attempt in range(self.settings.publish_retries + 1):
                if attempt:
                    await asyncio.sleep(min(1.0, _RECONNECT_STEP_S * attempt))
                try:
                    self._links[slot] = link = await self._connect()
                    return link
                except (TimeoutError, BrokerUnavailable, *_CONNECTION_ERRORS) as failed:
                    error = failed
            raise BrokerUnavailable(
                f"broker unreachable: {error!r}",
                task_name=task_name,
                job_id=job_id,
                delivered_maybe=delivered_maybe,
            ) from error

    async def _connect(self) -> _Link:
        async with asyncio.timeout(self.settings.broker_connect_timeout_s):
            connection = await aiormq.connect(
                self.settings.broker_url.get_secret_value(), context=_ssl_context(self.settings)
            )
        try:
            async with asyncio.timeout(self.settings.publish_confirm_timeout_s):
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await asyncio.to_thread(self._declarer.declare)
        except BaseException:
            await _close_quietly(connection)
            raise
        return _Link(connection, channel)

    async def _drop(self, slot: int, link: _Link | None) -> None:
        if link is None:
            return
        if self._links[slot] is link:
            self._links[slot] = None
        await _close_quietly(link.connection)

    async def close(self) -> None:
        for slot, link in enumerate(self._links):
            await self._drop(slot, link)
        await asyncio.to_thread(self._declarer.close)


async def _close_quietly(connection: AbstractConnection) -> None:
    """Close without waiting long: a broker that stopped answering never replies to close-ok."""
    try:
        async with asyncio.timeout(1.0):
            await connection.close()
    except Exception as error:  # already gone: nothing to close
        log.debug("closing a broker connection: %r", error)


def _worth_retrying(error: BaseException) -> bool:
    """A dead connection or an unroutable return: retry. A timeout: do not (the message may be
    queued already)."""
    if isinstance(error, TimeoutError):
        return False
    if isinstance(error, aiormq.exceptions.PublishError):
        return getattr(error.frame, "reply_code", None) == NO_ROUTE
    return isinstance(error, _CONNECTION_ERRORS)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no confirm within the timeout"
    return repr(error)
