"""Limits on what one caller may send and how often: body size, request rate, daily job quota.

- :class:`BodySizeLimit`: request bodies over ``api_max_body_bytes`` (``api_max_batch_body_bytes``
  on the batch route) are refused with 413 before anything parses them. A pure ASGI middleware: a
  declared ``Content-Length`` over the bound is refused at once, and one within it passes untouched
  (HTTP framing ends the body there); a body without one (chunked) is counted as it streams and
  refused once the count passes the bound, so an endless body is never buffered whole.
- :class:`KeyLimits`: per-key request rate and daily job quota, counted in Redis (under
  ``{redis_key_prefix}limits:``, so every API replica shares them) by one Lua script: one round
  trip on the event loop for a request's rate, and for a submit's rate and quota together. The
  rate (the key's ``rate_limit``, else ``api_rate_limit``;
  the ``limits`` library's notation, parsed by it) is a *moving window*: exact (no double burst
  at a window edge as a fixed window allows), admitted or refused atomically, and a refused
  request is charged nowhere; it keeps one sorted-set entry per request, which is fine at
  per-second and per-minute rates. The quota (the key's ``daily_quota``, else
  ``api_daily_quota``) is a *fixed window* of a day from the key's first counted submission: one
  counter per key, checked and counted in one step, so concurrent submits never pass it. Over
  either: 429 problem+json with ``Retry-After`` (seconds); every rate-checked answer carries
  ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (IETF draft
  ``ratelimit-headers``). Redis unavailable: 503.

:func:`rate_limited` is the dependency of every ``/v1`` router (``api.app``) but the submit routes,
whose one dependency (``api.routes.submit``) counts rate and quota in one step with
:meth:`KeyLimits.count`; the batch route takes its quota with :meth:`KeyLimits.take_quota`.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import redis
from fastapi import Depends, Request, Response
from limits import RateLimitItem, RateLimitItemPerDay, parse_many
from redis.commands.core import Script
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import authenticated
from api.keys.model import ApiKey
from api.problems import Problem, ProblemError, problem_response
from api.redis_script import PipelinedScript
from api.settings import ApiSettings

#: the problem type of a refused request (rate) and of a refused submission (quota)
RATE_LIMITED: Final = "rate-limited"
QUOTA_EXCEEDED: Final = "quota-exceeded"


class BodyTooLarge(Exception):
    """The streamed body passed the bound."""


class BodySizeLimit:
    """Parameters: ``app``, the ASGI app behind it; ``max_bytes``, the largest body accepted;
    ``max_bytes_by_path``, other bounds for some paths (the batch route takes bigger bodies)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_bytes_by_path: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_bytes_by_path = dict(max_bytes_by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes_by_path.get(scope["path"], self.max_bytes)
        declared: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await self._refuse(scope, receive, send, max_bytes)
            return
        if declared is not None and not chunked:
            # the server reads exactly the declared length (HTTP framing): nothing more can come
            await self.app(scope, receive, send)
            return
        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # whatever the app answers to a cut-off body (FastAPI: 400), the caller gets the 413
            nonlocal started
            if too_large:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            await self._refuse(scope, receive, send, max_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        problem = Problem(
            title="Content Too Large",
            status=413,
            detail=f"the request body is over {max_bytes} bytes",
        )
        response = problem_response(problem, instance=scope.get("path"), headers={"Connection": "close"})
        await response(scope, receive, send)


@dataclass(frozen=True)
class Allowance:
    """Where a key stands against one limit after a counted request."""

    limit: int
    remaining: int
    #: seconds until the window frees room again (at least 1)
    reset_s: int

    def headers(self) -> dict[str, str]:
        """The IETF draft ``RateLimit-*`` headers of this allowance."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


#: one round trip for every limit of a request. KEYS: a sorted set per rate limit (its requests'
#: times in ms), then the quota's counter if jobs are taken. ARGV: a member unique to this request,
#: the number of rate limits, the jobs to take from the quota (0: none), the quota, its window (s),
#: then each rate limit's amount and window (ms). Every rate limit is checked before any is charged,
#: so a refused request is counted nowhere; the quota is checked and counted in one step once the
#: rates passed, so concurrent submits never pass it (a refused quota still counts the request
#: against the rates, as any other answered request). Time is Redis's own (``TIME``), the same for
#: every API replica. Answers ``{0, the refusing rate's index, retry_after_ms}``, or ``{1, remaining,
#: reset_ms, ...}`` per rate limit, then, if jobs were taken, ``{taken (1) or refused (0), left,
#: seconds to the quota's renewal}``.
LIMITS_SCRIPT: Final = """
local rates, jobs = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = 0
if rates > 0 then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
local counts = {}
for i = 1, rates do
  local amount, window = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= amount then
    local frees = redis.call('ZRANGE', KEYS[i], count - amount, count - amount, 'WITHSCORES')
    return {0, i, tonumber(frees[2]) + window - now}
  end
  counts[i] = count
end
local answer = {1}
for i = 1, rates do
  local amount, window = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], window)
  local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  answer[2 * i] = amount - counts[i] - 1
  answer[2 * i + 1] = tonumber(oldest[2]) + window - now
end
if jobs > 0 then
  local counter, quota, day = KEYS[rates + 1], tonumber(ARGV[4]), tonumber(ARGV[5])
  local used = tonumber(redis.call('GET', counter) or '0')
  if used + jobs > quota then
    local ttl = redis.call('TTL', counter)
    if ttl < 0 then ttl = day end
    table.insert(answer, 0)
    table.insert(answer, quota - used)
    table.insert(answer, ttl)
    return answer
  end
  used = redis.call('INCRBY', counter, jobs)
  if redis.call('TTL', counter) < 0 then redis.call('EXPIRE', counter, day) end
  table.insert(answer, 1)
  table.insert(answer, quota - used)
  table.insert(answer, redis.call('TTL', counter))
end
return answer
"""

#: the quota's window: a day from the key's first counted submission
QUOTA_WINDOW: Final = RateLimitItemPerDay(1)


@lru_cache(maxsize=1024)
def parsed_rates(rate_limit: str) -> tuple[RateLimitItem, ...]:
    """The limits of a rate in ``limits``' notation (``""``: none), parsed once per text."""
    rate_limit = rate_limit.strip()
    return tuple(parse_many(rate_limit)) if rate_limit else ()


class KeyLimits:
    """Per-key request rate (moving window) and daily job quota (fixed window) in Redis.

    Both are counted by one Lua script (:data:`LIMITS_SCRIPT`), so a submit's rate and quota cost
    one round trip: :meth:`count` on the event loop (``api.redis_script``, a lean pipelined client:
    this runs on every request), so a request spends no thread on them; :meth:`take_quota` is the
    blocking form of the quota alone (redis-py), for routes that already run in the thread pool.

    Parameters: ``settings`` (``api_rate_limit`` and ``api_daily_quota``, each key's default;
    ``redis_url``, ``redis_key_prefix``, ``redis_timeout_s``). A key's own ``rate_limit`` and
    ``daily_quota`` (``api.keys``) replace the defaults where they are set.
    """

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.default_rate = settings.api_rate_limit
        self.default_quota = settings.api_daily_quota
        self.prefix = f"{settings.redis_key_prefix}limits:"
        self._sync: tuple[redis.Redis, Script] | None = None
        self._async: tuple[asyncio.AbstractEventLoop, PipelinedScript] | None = None

    def rates_of(self, key: ApiKey) -> tuple[RateLimitItem, ...]:
        return parsed_rates(self.default_rate if key.rate_limit is None else key.rate_limit)

    def quota_of(self, key: ApiKey | str) -> int:
        """The key's jobs per day (0: none); a bare key id gets the service's default."""
        if isinstance(key, str) or key.daily_quota is None:
            return self.default_quota
        return key.daily_quota

    async def count(self, key: ApiKey, *, jobs: int = 0) -> Allowance | None:
        """Count one request of ``key`` against its rate and, if ``jobs``, take them from its daily
        quota, in one round trip; the tightest rate allowance, or ``None`` without a rate limit.

        Raises a 429 :class:`ProblemError` for the first limit the request is over, the rate before
        the quota: nothing is counted against a refused rate; a refused quota takes no job and
        the request still counts against the rate (as any other answered request)."""
        items = self.rates_of(key)
        quota = self.quota_of(key) if jobs else 0
        if not items and not quota:
            return None
        keys, args = self._script_input(key, items, jobs if quota else 0, quota)
        with _storage_errors():
            answer = await self._async_script()(keys, args)
        assert isinstance(answer, list)
        allowance = _rate_answer(items, answer)
        if quota:
            _check_quota(answer[1 + 2 * len(items) :], quota, jobs)
        return allowance

    async def hit_rate(self, key: ApiKey) -> Allowance | None:
        """Count one request of ``key`` against its rate (:meth:`count` without jobs)."""
        return await self.count(key)

    def take_quota(self, key: ApiKey | str, *, cost: int = 1) -> None:
        """Count ``cost`` submitted jobs of ``key`` against its daily quota, blocking (for a route
        in the thread pool); a 429 :class:`ProblemError` (nothing counted) when they do not fit. A
        bare key id is held to the service's default quota: pass the :class:`ApiKey` for its own."""
        quota = self.quota_of(key)
        if not quota or cost <= 0:
            return
        keys, args = self._script_input(key, (), cost, quota)
        with _storage_errors():
            answer = self._sync_script()(keys=keys, args=args)
        _check_quota(answer[1:], quota, cost)

    def _script_input(
        self, key: ApiKey | str, items: tuple[RateLimitItem, ...], jobs: int, quota: int
    ) -> tuple[list[str], list[str | int]]:
        """:data:`LIMITS_SCRIPT`'s KEYS and ARGV for these rate limits and ``jobs`` of ``quota``."""
        key_id = key if isinstance(key, str) else key.key_id
        keys = [f"{self.prefix}rate:{key_id}:{_rate_name(item)}" for item in items]
        args: list[str | int] = [_request_member(), len(items), jobs, quota, _DAY_S]
        for item in items:
            args += [item.amount, item.get_expiry() * 1000]
        if jobs:
            keys.append(f"{self.prefix}quota:{key_id}")
        return keys, args

    def _async_script(self) -> PipelinedScript:
        """The script on a connection of the running event loop (a connection is bound to the
        loop it first ran on; a test may serve the app on several loops, one after another)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            script = PipelinedScript(
                self.settings.redis_url.get_secret_value(),
                LIMITS_SCRIPT,
                timeout_s=self.settings.redis_timeout_s,
            )
            self._async = (loop, script)
        return self._async[1]

    def _sync_script(self) -> Script:
        if self._sync is None:
            client = redis.Redis.from_url(
                self.settings.redis_url.get_secret_value(),
                socket_timeout=self.settings.redis_timeout_s,
                socket_connect_timeout=self.settings.redis_timeout_s,
            )
            self._sync = (client, client.register_script(LIMITS_SCRIPT))
        return self._sync[1]


#: what makes this process's requests' members in a rate's sorted set unique among the API's replicas
_PROCESS_TAG: Final = uuid.uuid4().hex[:16]
_REQUEST_NUMBERS = itertools.count()


def _request_member() -> str:
    """A member unique to this request in a rate's sorted set (cheaper than a UUID each)."""
    return f"{_PROCESS_TAG}:{os.getpid()}:{next(_REQUEST_NUMBERS)}"  # the pid: a forked worker too


def _rate_name(item: RateLimitItem) -> str:
    return f"{item.amount}/{item.multiples}{item.GRANULARITY.name}"


def _rate_answer(items: tuple[RateLimitItem, ...], answer: list[int]) -> Allowance | None:
    """The tightest allowance in the script's answer; a 429 problem if a rate refused it."""
    if not answer[0]:
        item = items[int(answer[1]) - 1]
        retry_after = _seconds(int(answer[2]))
        refused = Allowance(item.amount, 0, retry_after)
        raise ProblemError(
            429,
            "Too Many Requests",
            f"this key made {item.amount} requests per {_window(item)}; retry after {retry_after} s",
            kind=RATE_LIMITED,
            headers={"Retry-After": str(retry_after), **refused.headers()},
        )
    if not items:
        return None
    allowances = [
        Allowance(item.amount, max(0, int(answer[1 + 2 * i])), _seconds(int(answer[2 + 2 * i])))
        for i, item in enumerate(items)
    ]
    return min(allowances, key=lambda allowance: allowance.remaining)


def _check_quota(answer: list[int], quota: int, jobs: int) -> None:
    """A 429 problem if the quota's part of the script's answer refused the jobs."""
    if answer[0]:
        return
    retry_after = max(1, int(answer[2]))
    raise ProblemError(
        429,
        "Too Many Requests",
        f"this key's daily quota of {quota} jobs has {max(0, int(answer[1]))} left, "
        f"fewer than the {jobs} asked for; it renews in {retry_after} s",
        kind=QUOTA_EXCEEDED,
        headers={"Retry-After": str(retry_after)},
    )


#: the quota's window in seconds
_DAY_S: Final = QUOTA_WINDOW.get_expiry()


@contextmanager
def _storage_errors() -> Iterator[None]:
    """The limit store unavailable: 503, as any other service behind the API."""
    try:
        yield
    except (RedisError, OSError) as error:
        raise ProblemError(
            503,
            "Service Unavailable",
            "the rate-limit store is unavailable; retry",
            headers={"Retry-After": "1"},
        ) from error


def _seconds(milliseconds: int) -> int:
    """Whole seconds, rounded up, at least 1 (``Retry-After`` and ``RateLimit-Reset``)."""
    return max(1, math.ceil(milliseconds / 1000))


def _window(item: RateLimitItem) -> str:
    granularity: str = item.GRANULARITY.name
    return granularity if item.multiples == 1 else f"{item.multiples} {granularity}s"


# --- the dependencies (async: no I/O but the limits' own, on the event loop) ---


async def key_limits(request: Request) -> KeyLimits:
    limits: KeyLimits = request.app.state.limits
    return limits


async def rate_limited(
    request: Request,
    response: Response,
    key: ApiKey = Depends(authenticated),  # noqa: B008
) -> ApiKey:
    """Count this request against its key's rate; 429 problem when over it."""
    limits: KeyLimits = request.app.state.limits
    allowance = await limits.count(key)
    if allowance is not None:
        response.headers.update(allowance.headers())
    return key
