"""Limits on what one caller may send and how often: body size, request rate, daily job quota.

- :class:`BodySizeLimit`: request bodies over ``api_max_body_bytes`` (``api_max_batch_body_bytes``
  on the batch route) are refused with 413 before anything parses them. A pure ASGI middleware: a
  declared ``Content-Length`` over the bound is refused at once; a body without one (chunked) is
  counted as it streams and refused once the count passes the bound, so an endless body is never
  buffered whole.
- :class:`KeyLimits`: per-key request rate and daily job quota, counted in Redis (under
  ``{redis_key_prefix}limits``, so every API replica shares them) by the ``limits`` library.
  The rate (``api_rate_limit``) is a *moving window*: exact (no double burst at a window edge as
  a fixed window allows) and its Redis script admits or refuses atomically without charging a
  refused request; it keeps one list entry per request, which is fine at per-second and
  per-minute rates. The quota (``api_daily_quota``) is a *fixed window* of a day from the key's
  first counted submission: one counter per key, where a moving window would keep up to a
  quota's worth of entries. Over either: 429 problem+json with ``Retry-After`` (seconds); every
  rate-checked answer carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
  ``RateLimit-Reset`` (IETF draft ``ratelimit-headers``). Redis unavailable: 503.
  The limits are the settings' for every key today; per-key overrides can come from the key
  record (``api.keys``) later, read where :class:`KeyLimits` picks the items.

Both are FastAPI dependencies: :func:`rate_limited` on every ``/v1`` router (``api.app``),
:func:`submission_quota` on each submit route, :meth:`KeyLimits.take_quota` in the batch route.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from fastapi import Depends, Request, Response
from limits import RateLimitItem, RateLimitItemPerDay, parse_many
from limits.errors import StorageError
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import authenticated, require
from api.keys.model import ApiKey
from api.keys.model import Scope as KeyScope
from api.problems import Problem, ProblemError, problem_response
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
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await self._refuse(scope, receive, send, max_bytes)
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


class KeyLimits:
    """Per-key request rate (moving window) and daily job quota (fixed window) in Redis.

    Parameters: ``settings`` (``api_rate_limit``, ``api_daily_quota``, ``redis_url``,
    ``redis_key_prefix``, ``redis_timeout_s``); keyword-only ``storage``, a ``limits`` storage
    (default: Redis at ``redis_url``; tests may pass ``limits.storage.MemoryStorage``).
    """

    def __init__(self, settings: ApiSettings, *, storage: Storage | None = None) -> None:
        rate = settings.api_rate_limit.strip()
        self.rates: list[RateLimitItem] = parse_many(rate) if rate else []
        self.quota = RateLimitItemPerDay(settings.api_daily_quota) if settings.api_daily_quota else None
        if storage is None:
            storage = RedisStorage(
                settings.redis_url.get_secret_value(),
                key_prefix=f"{settings.redis_key_prefix}limits",
                wrap_exceptions=True,
                socket_timeout=settings.redis_timeout_s,
                socket_connect_timeout=settings.redis_timeout_s,
            )
        self._moving = MovingWindowRateLimiter(storage)
        self._fixed = FixedWindowRateLimiter(storage)

    def hit_rate(self, key_id: str) -> Allowance | None:
        """Count one request of ``key_id``; the tightest allowance, or ``None`` without limits.
        Raises a 429 :class:`ProblemError` when over a limit (the request is not counted)."""
        tightest: Allowance | None = None
        for item in self.rates:
            with _storage_errors():
                admitted = self._moving.hit(item, "rate", key_id)
                reset, remaining = self._moving.get_window_stats(item, "rate", key_id)
            allowance = Allowance(item.amount, max(0, remaining), _seconds_until(reset))
            if not admitted:
                raise ProblemError(
                    429,
                    "Too Many Requests",
                    f"this key made {item.amount} requests per {_window(item)}; retry after "
                    f"{allowance.reset_s} s",
                    kind=RATE_LIMITED,
                    headers={"Retry-After": str(allowance.reset_s), **allowance.headers()},
                )
            if tightest is None or allowance.remaining < tightest.remaining:
                tightest = allowance
        return tightest

    def take_quota(self, key_id: str, *, cost: int = 1) -> None:
        """Count ``cost`` submitted jobs of ``key_id`` against its daily quota; a 429
        :class:`ProblemError` (nothing counted) when they do not fit. Concurrent calls near the
        end of a quota may pass it by a few (check and count are two calls)."""
        if self.quota is None:
            return
        with _storage_errors():
            fits = self._fixed.test(self.quota, "quota", key_id, cost=cost)
            if fits:
                fits = self._fixed.hit(self.quota, "quota", key_id, cost=cost)
            if fits:
                return
            reset, remaining = self._fixed.get_window_stats(self.quota, "quota", key_id)
        retry_after = _seconds_until(reset)
        raise ProblemError(
            429,
            "Too Many Requests",
            f"this key's daily quota of {self.quota.amount} jobs has {max(0, remaining)} left, "
            f"fewer than the {cost} asked for; it renews in {retry_after} s",
            kind=QUOTA_EXCEEDED,
            headers={"Retry-After": str(retry_after)},
        )


@contextmanager
def _storage_errors() -> Iterator[None]:
    """The limit store unavailable: 503, as any other service behind the API."""
    try:
        yield
    except StorageError as error:
        raise ProblemError(
            503,
            "Service Unavailable",
            "the rate-limit store is unavailable; retry",
            headers={"Retry-After": "1"},
        ) from error


def _seconds_until(epoch: float) -> int:
    return max(1, math.ceil(epoch - time.time()))


def _window(item: RateLimitItem) -> str:
    granularity: str = item.GRANULARITY.name
    return granularity if item.multiples == 1 else f"{item.multiples} {granularity}s"


# --- the dependencies ---


def key_limits(request: Request) -> KeyLimits:
    limits: KeyLimits = request.app.state.limits
    return limits


def rate_limited(
    response: Response,
    key: ApiKey = Depends(authenticated),  # noqa: B008
    limits: KeyLimits = Depends(key_limits),  # noqa: B008
) -> ApiKey:
    """Count this request against its key's rate; 429 problem when over it."""
    allowance = limits.hit_rate(key.key_id)
    if allowance is not None:
        response.headers.update(allowance.headers())
    return key


def submission_quota(scope: KeyScope) -> Callable[..., object]:
    """A dependency that counts one job against the key's daily quota, once the key is known to
    hold ``scope`` (a key that may not submit never spends quota); 429 problem when used up."""

    def counted(
        key: ApiKey = Depends(require(scope)),  # noqa: B008
        limits: KeyLimits = Depends(key_limits),  # noqa: B008
    ) -> ApiKey:
        limits.take_quota(key.key_id)
        return key

    counted.__name__ = f"quota_{scope.name.lower()}"
    return counted
