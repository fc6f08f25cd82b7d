"""Limits on what one caller may send and how often: body size, request rate, daily job quota.

- :class:`BodySizeLimit`: request bodies over ``api_max_body_bytes`` (``api_max_batch_body_bytes``
  on the batch route) are refused with 413 before anything parses them. A pure ASGI middleware: a
  declared ``Content-Length`` over the bound is refused at once, and one within it passes untouched
  (HTTP framing ends the body there); a body without one (chunked) is counted as it streams and
  refused once the count passes the bound, so an endless body is never buffered whole.
- :class:`KeyLimits`: per-key request rate and daily job quota, counted in Redis (under
  ``{redis_key_prefix}limits:``, so every API replica shares them) by one Lua function
  (:data:`LIMITS_FUNCTION`). The rate (the key's ``rate_limit``, else ``api_rate_limit``;
  the ``limits`` library's notation, parsed by it) is a *moving window*: exact (no double burst
  at a window edge as a fixed window allows), admitted or refused atomically, and a refused
  request is charged nowhere; it keeps one sorted-set entry per request, which is fine at
  per-second and per-minute rates. The quota (the key's ``daily_quota``, else
  ``api_daily_quota``) is a *fixed window* of a day from the key's first counted submission: one
  counter per key, checked and counted in one step, so concurrent submits never pass it. Over
  either: 429 problem+json with ``Retry-After`` (seconds); every rate-checked answer carries
  ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (IETF draft
  ``ratelimit-headers``). Redis unavailable: 503.

The round trips. Every ``/v1`` route but the submit routes counts its rate with
:func:`rate_limited` (``api.app``): :meth:`KeyLimits.count`, one script on the event loop
(``api.redis_script``). A plain submit (``api.routes.shortcut``) makes no round trip of its own:
its rates and one job of its quota (:class:`SubmitLimits`) are counted by its job's create script
(``core.jobs.admission``: ``Producer.accept``'s admission hook), in the round trip that stores
the record, after the request validated and before anything is written: a refusal (429) stores
no job and publishes nothing, and an idempotent replay takes no quota. A submit refused before
that (403 scope, 503 admission, 422 validation) counts its rate alone, in a round trip of its
own, so an over-rate request still gets its 429 first. A submit FastAPI answers (any request not
plain) counts its rate in its dependency, as every other route, and its quota in the create
script: two round trips. With ``api_async_submit``, or a job store on another Redis, a submit
counts rate and quota together before it is validated (:meth:`KeyLimits.count` with ``jobs``:
one round trip, then the record's own). The batch route takes its quota with
:meth:`KeyLimits.take_quota`.
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
from core.settings import AtelierSettings

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


#: every limit of a request, as a Lua function ``limits(KEYS, ARGV, new_job)``. KEYS: a sorted set
#: per rate limit (its requests' times in ms), then the quota's counter if jobs are taken. ARGV: a
#: member unique to this request, the number of rate limits, the jobs to take from the quota (0:
#: none; taken only when ``new_job``), the quota, its window (s), then each rate limit's amount
#: and window (ms). Every rate limit is checked before any is charged, so a refused request is
#: counted nowhere; the quota is checked and counted in one step once the rates passed, so
#: concurrent submits never pass it (a refused quota still counts the request against the rates,
#: as any other answered request). Time is Redis's own (``TIME``), the same for every API replica.
#: Answers ``{0, the refusing rate's index, retry_after_ms}``, or ``{1, remaining, reset_ms, ...}``
#: per rate limit, then, if jobs were taken, ``{taken (1) or refused (0), left, seconds to the
#: quota's renewal}``.
LIMITS_FUNCTION: Final = """
local function limits(KEYS, ARGV, new_job)
  local rates, jobs = tonumber(ARGV[2]), tonumber(ARGV[3])
  if not new_job then jobs = 0 end
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
end
"""

#: the limits of a request (:data:`LIMITS_FUNCTION`), a script of their own: one round trip
LIMITS_SCRIPT: Final = LIMITS_FUNCTION + "return limits(KEYS, ARGV, true)\n"

#: the limits of a submit as the admission of its job's create script (``core.jobs.admission``):
#: counted in the same round trip as the record, the quota only for a new job (an idempotent
#: replay takes none); admitted unless a rate or the quota refused
ADMISSION_SCRIPT: Final = f"""function(KEYS, ARGV, new_job)
{LIMITS_FUNCTION}
  local answer = limits(KEYS, ARGV, new_job)
  return answer[1] == 1 and answer[2 + 2 * tonumber(ARGV[2])] ~= 0, answer
end"""

#: the quota's window: a day from the key's first counted submission
QUOTA_WINDOW: Final = RateLimitItemPerDay(1)


@lru_cache(maxsize=1024)
def parsed_rates(rate_limit: str) -> tuple[RateLimitItem, ...]:
    """The limits of a rate in ``limits``' notation (``""``: none), parsed once per text."""
    rate_limit = rate_limit.strip()
    return tuple(parse_many(rate_limit)) if rate_limit else ()


class KeyLimits:
    """Per-key request rate (moving window) and daily job quota (fixed window) in Redis.

    Both are counted by one Lua function (:data:`LIMITS_FUNCTION`), so a request never costs
    more than one round trip for them: :meth:`count` on the event loop (``api.redis_script``, a
    lean pipelined client: this runs on every request), so a request spends no thread on them;
    :meth:`admission` for a submit's job's create script (no round trip of its own);
    :meth:`take_quota` is the blocking form of the quota alone (redis-py), for routes that
    already run in the thread pool.

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

    def admission(self, key: ApiKey, *, rates: bool) -> SubmitLimits | None:
        """One submit's limits for its job's create script (:class:`SubmitLimits`): its rates if
        ``rates`` (else counted already, by :meth:`count`) and one job of its quota; ``None`` when
        there is nothing to count."""
        items = self.rates_of(key) if rates else ()
        quota = self.quota_of(key)
        if not items and not quota:
            return None
        keys, args = self._script_input(key, items, 1 if quota else 0, quota)
        return SubmitLimits(items, quota, keys, args)

    def shares_redis(self, settings: AtelierSettings) -> bool:
        """Whether a job store on ``settings`` is on the limits' Redis (so a submit's limits can be
        counted in its job's create script)."""
        return settings.redis_url.get_secret_value() == self.settings.redis_url.get_secret_value()

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


class SubmitLimits:
    """A submit's rates and quota, counted by its job's create script (``core.jobs.admission``:
    ``Producer.accept(..., admission=...)``): the same round trip as the record, after the
    request validated, before anything is written. A refusal (429, as :meth:`KeyLimits.count`'s)
    stores no job and publishes nothing; an idempotent replay takes no quota. Made by
    :meth:`KeyLimits.admission`, one per request; :attr:`allowance` is the tightest rate's once
    admitted, for the answer's ``RateLimit-*`` headers."""

    script: Final = ADMISSION_SCRIPT

    def __init__(
        self, items: tuple[RateLimitItem, ...], quota: int, keys: list[str], args: list[str | int]
    ) -> None:
        self.items = items
        self.quota = quota
        self.keys = keys
        self.args = args
        self.allowance: Allowance | None = None
        #: whether the create script counted them (else a request refused before it has not been)
        self.counted = False

    @property
    def rates_pending(self) -> bool:
        """Whether the request has rates that no script counted yet."""
        return bool(self.items) and not self.counted

    def answered(self, answer: list[int]) -> None:
        """The create script's answer: the allowance, or the 429 :class:`ProblemError` of the
        first limit the request is over (the rate before the quota)."""
        self.counted = True
        self.allowance = _rate_answer(self.items, answer)
        taken = answer[1 + 2 * len(self.items) :]
        if taken:  # none for a replay: it takes no job
            _check_quota(taken, self.quota, 1)


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
