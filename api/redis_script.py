"""One Lua script on Redis, called from the event loop at a small CPU cost per call.

Why not redis-py's asyncio client: a command through it costs some 500 Python calls (its
connection pool, retry, event and observability layers, a general RESP parser). The limits'
script runs on every ``/v1`` request, on the API's one event loop, and through redis-py it was a
third of the CPU the API added to a submit. :class:`PipelinedScript` does the one thing needed:
``EVALSHA`` of one script whose reply is an integer or an array of integers, over one connection
that every concurrent call shares. Calls are pipelined: each writes its command at once and gets
its reply in order (Redis answers a connection's commands in the order they came).

The connection follows the URL as redis-py reads it (``redis.asyncio.connection.parse_url``):
``redis://`` and ``unix://`` addresses, a username and password (``AUTH``), a database
(``SELECT``), and ``rediss://`` with redis-py's own TLS settings from the URL. A call that finds
no connection opens one; a lost connection, or a reply that does not come within ``timeout_s``,
fails every call waiting on it with a :class:`redis.exceptions.ConnectionError` (or
``TimeoutError``) and is closed, so no later call can read an earlier call's reply; the next call
connects again. ``NOSCRIPT`` (Redis restarted, or its script cache flushed) is answered by sending
the script itself once (``EVAL``, which caches it again).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: a reply: an integer, a status (``+OK``), or an array of integers
Reply = int | str | list[int]


def pack(*parts: bytes | str | int) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class ProtocolError(RedisConnectionError):
    """A reply this client does not read (the script answers integers only)."""


class _Replies(asyncio.Protocol):
    """Splits what Redis sends into replies and hands each to the oldest waiting call."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Reply | ResponseError]] = deque()
        self._buffer = bytearray()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's subclasses

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self.waiting:
            try:
                reply = self._next_reply()
            except ProtocolError as error:
                self.fail(error)
                return
            if reply is None:
                return
            waiter = self.waiting.popleft()
            if not waiter.done():  # a call that timed out closed the connection: none is left
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc!r}" if exc else "Redis closed"))

    def fail(self, error: Exception) -> None:
        """Close the connection and fail every call still waiting on it."""
        self.lost = self.lost or error
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def _next_reply(self) -> Reply | ResponseError | None:
        """The first whole reply in the buffer (removed from it), ``None`` if it has not all come."""
        buffer = self._buffer
        end = buffer.find(b"\r\n")
        if end < 0:
            return None
        kind, line = buffer[:1], bytes(buffer[1:end])
        if kind == b"*":
            count, position, items = int(line), end + 2, []
            for _ in range(count):
                item_end = buffer.find(b"\r\n", position)
                if item_end < 0:
                    return None
                if buffer[position : position + 1] != b":":
                    raise ProtocolError(f"an array of something else than integers: {bytes(buffer[:80])!r}")
                items.append(int(buffer[position + 1 : item_end]))
                position = item_end + 2
            del buffer[:position]
            return items
        del buffer[: end + 2]
        if kind == b":":
            return int(line)
        if kind == b"+":
            return line.decode()
        if kind == b"-":
            message = line.decode(errors="replace")
            return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
        raise ProtocolError(f"an unexpected reply: {bytes(buffer[:80])!r}")


class PipelinedScript:
    """Runs ``script`` on the Redis at ``url`` (see the module); bound to the event loop it first
    runs on. Parameters: ``url`` (as ``redis.Redis.from_url`` takes it), ``script`` (its text) and
    keyword-only ``timeout_s`` (to connect, and for each reply)."""

    def __init__(self, url: str, script: str, *, timeout_s: float) -> None:
        self.url = url
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        self.timeout_s = timeout_s
        self._replies: _Replies | None = None
        self._connecting: asyncio.Lock | None = None

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Reply:
        """The script's reply to ``keys`` and ``args``; raises redis-py's errors (``RedisError``).

        A call whose connection turns out to be gone (Redis restarted since it was opened) is
        sent once more on a new one, as redis-py retries: a restart costs no failed request."""
        command = pack(b"EVALSHA", self.sha, len(keys), *keys, *args)
        reused = self._replies is not None and self._replies.lost is None
        try:
            reply = await self._send(command)
        except RedisTimeoutError:
            raise
        except RedisConnectionError:
            if not reused:
                raise
            reply = await self._send(command)
        if isinstance(reply, NoScriptError):
            reply = await self._send(pack(b"EVAL", self.script, len(keys), *keys, *args))
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def close(self) -> None:
        if self._replies is not None and self._replies.transport is not None:
            self._replies.transport.close()
        self._replies = None

    async def _send(self, command: bytes) -> Reply | ResponseError:
        replies = self._replies
        if replies is None or replies.lost is not None:
            replies = await self._connection()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Reply | ResponseError] = loop.create_future()
        replies.waiting.append(waiter)
        assert replies.transport is not None
        replies.transport.write(command)
        late = loop.call_later(self.timeout_s, _time_out, replies, waiter, self.timeout_s)
        try:
            return await waiter
        finally:
            late.cancel()

    async def _connection(self) -> _Replies:
        """The open connection, or a new one (one call opens it; the others wait for it)."""
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self._replies is None or self._replies.lost is not None:
                try:
                    self._replies = await asyncio.wait_for(self._connect(), self.timeout_s)
                except TimeoutError as error:
                    raise RedisTimeoutError(f"no connection to Redis within {self.timeout_s} s") from error
                except OSError as error:
                    raise RedisConnectionError(f"cannot connect to Redis: {error!r}") from error
            return self._replies

    async def _connect(self) -> _Replies:
        options: dict[str, Any] = dict(parse_url(self.url))
        loop = asyncio.get_running_loop()
        replies: _Replies
        if "path" in options:
            _, replies = await loop.create_unix_connection(_Replies, options["path"])
        else:
            tls = None
            if options.get("connection_class") is SSLConnection:
                settings = {k: v for k, v in options.items() if k != "connection_class"}
                tls = SSLConnection(**settings).ssl_context.get()
            host, port = options.get("host", "localhost"), options.get("port", 6379)
            _, replies = await loop.create_connection(_Replies, host, port, ssl=tls)
        try:
            await self._handshake(replies, options)
        except BaseException:
            replies.fail(RedisConnectionError("the handshake with Redis did not finish"))
            raise
        return replies

    @staticmethod
    async def _handshake(replies: _Replies, options: dict[str, Any]) -> None:
        """``AUTH`` and ``SELECT`` as the URL asks, pipelined; raises if Redis refuses either."""
        commands = []
        if options.get("password") is not None:
            credentials = [options["username"]] if options.get("username") else []
            commands.append(pack(b"AUTH", *credentials, options["password"]))
        if options.get("db"):
            commands.append(pack(b"SELECT", options["db"]))
        if not commands or replies.transport is None:
            return
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[Reply | ResponseError]] = [loop.create_future() for _ in commands]
        replies.waiting.extend(waiters)
        replies.transport.write(b"".join(commands))
        for answer in await asyncio.gather(*waiters):
            if isinstance(answer, ResponseError):
                raise RedisConnectionError(f"Redis refused the connection: {answer}")


def _time_out(replies: _Replies, waiter: asyncio.Future[Any], timeout_s: float) -> None:
    """A reply did not come in time: the connection is out of step, so it goes, with every call
    waiting on it."""
    if not waiter.done():
        replies.fail(RedisTimeoutError(f"no reply from Redis within {timeout_s} s"))
