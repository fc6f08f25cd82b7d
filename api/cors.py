"""CORS per key: a browser may call the API only from the origins its publishable key names.

A publishable key ships inside a shop's page (``api.keys.rules``), so the origins allowed to use
it are part of the key (``ApiKey.cors_origins``), not of the deployment. Two halves, because a
preflight carries no key:

- :class:`KeyCors`, an ASGI middleware. A preflight (``OPTIONS`` with
  ``Access-Control-Request-Method``) is answered here, 204, for an origin registered on any
  active key (:class:`RegisteredOrigins`, the key store's ``all_origins`` reused for
  ``ttl_s``); any other origin gets a 403 problem. On every other ``/v1`` answer it adds
  ``Vary: Origin`` and, when :func:`origin_allowed` accepted the request's origin, the
  ``Access-Control-Allow-Origin`` and ``Access-Control-Expose-Headers`` that let the page read
  the answer, errors included (a 404 or a 429 the page should be able to read).
- :func:`origin_allowed`, a dependency of every ``/v1`` route (``api.app``): a request that
  carries a browser ``Origin`` must come from one of *its key's* origins, or it is refused with
  a 403 problem of type ``origin-not-allowed`` before anything runs (a secret key, which has no
  origin, is never usable from a browser). A request without ``Origin`` (a server, the CLI) and
  a same-origin one (the API's own ``/docs`` page) are not cross-origin and pass.

No cookies are involved (the key is a bearer header), so ``Access-Control-Allow-Credentials``
is never sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import authenticated
from api.keys.errors import KeyStoreUnavailable
from api.keys.model import ApiKey
from api.problems import PROBLEM_BASE, Problem, ProblemError, problem_response
from core.contracts.bounds import quoted

log = logging.getLogger(__name__)

#: how long the registered origins are reused before the key store is asked again
ORIGINS_TTL_S: Final = 30.0
#: how long a browser may reuse a preflight answer (``Access-Control-Max-Age``)
PREFLIGHT_MAX_AGE_S: Final = 600
#: the methods a publishable key has a use for (submit try-ons, read jobs)
ALLOWED_METHODS: Final = "GET, POST"
#: the request headers a page may send
ALLOWED_HEADERS: Final = "Authorization, Content-Type, Idempotency-Key, Prefer, Last-Event-ID"
#: the response headers a page may read besides the CORS-safelisted ones
EXPOSED_HEADERS: Final = (
    "Location, Retry-After, Idempotent-Replayed, Preference-Applied, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
#: the problem type of a refused origin (``https://atelier.dev/problems/origin-not-allowed``)
ORIGIN_NOT_ALLOWED: Final = "origin-not-allowed"
#: where :func:`origin_allowed` leaves the accepted origin for :class:`KeyCors` (request state)
STATE_KEY: Final = "cors_origin"


@runtime_checkable
class OriginSource(Protocol):
    """Where the registered origins come from (``api.keys.store.KeyStore`` is one)."""

    def all_origins(self) -> frozenset[str]:
        """Every CORS origin of an active key."""
        ...


class NoOrigins:
    """An origin source for a key verifier that registers none: every preflight is refused."""

    def all_origins(self) -> frozenset[str]:
        return frozenset()


class RegisteredOrigins:
    """The origins of every active key, read from ``source`` at most once per ``ttl_s``
    (default :data:`ORIGINS_TTL_S`): a preflight is answered from memory, and a key created or
    revoked is seen within ``ttl_s``. While the store cannot answer, the last set read is used;
    with none read yet, :class:`~api.keys.errors.KeyStoreUnavailable` propagates."""

    def __init__(
        self,
        source: OriginSource,
        *,
        ttl_s: float = ORIGINS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.ttl_s = ttl_s
        self._clock = clock
        self._origins: frozenset[str] | None = None
        self._fresh_until = 0.0
        self._lock: anyio.Lock | None = None

    async def contains(self, origin: str) -> bool:
        if self._origins is None or self._clock() >= self._fresh_until:
            self._lock = self._lock or anyio.Lock()
            async with self._lock:  # one refresh at a time; the others then read its result
                if self._origins is None or self._clock() >= self._fresh_until:
                    await self._refresh()
        assert self._origins is not None
        return origin in self._origins

    async def _refresh(self) -> None:
        try:
            self._origins = await run_in_threadpool(self.source.all_origins)
        except KeyStoreUnavailable:
            if self._origins is None:
                raise
            log.warning("the key store is unavailable: preflights use the origins read before")
        self._fresh_until = self._clock() + self.ttl_s


def cross_origin(request: Request) -> str | None:
    """The request's ``Origin`` if it is another site's; ``None`` for no ``Origin`` or the
    API's own (same host and port: the browser sent it from a page the API served)."""
    origin = request.headers.get("origin")
    if origin is None or urlsplit(origin).netloc == request.headers.get("host"):
        return None
    return origin


async def origin_allowed(request: Request, key: ApiKey = Depends(authenticated)) -> None:  # noqa: B008
    """Refuse (403) a cross-origin request whose origin is not one of its key's; remember an
    allowed one, so that :class:`KeyCors` lets the page read the answer."""
    origin = cross_origin(request)
    if origin is None:
        return
    if origin not in key.cors_origins:
        rule = (
            "a browser may use a key only from the origins registered on it"
            if key.publishable
            else "a secret key is never usable from a browser: use a publishable key"
        )
        raise ProblemError(
            403, "Forbidden", f"origin {quoted(origin)} is not allowed: {rule}", kind=ORIGIN_NOT_ALLOWED
        )
    setattr(request.state, STATE_KEY, origin)


def with_cors(raw: Iterable[tuple[bytes, bytes]], granted: str | None) -> list[tuple[bytes, bytes]]:
    """A ``/v1`` answer's headers (a copy) with what :class:`KeyCors` adds: ``Vary: Origin`` and,
    for an origin :func:`origin_allowed` accepted (``granted``), the grant that lets the page read
    the answer. The submit shortcut (``api.routes.shortcut``) answers with the same."""
    if granted is None:
        raw = list(raw)
        if not any(name.lower() == b"vary" for name, _ in raw):
            raw.append((b"vary", b"Origin"))  # no header parsing for most answers
            return raw
    message: dict[str, Any] = {"headers": raw}
    answer = MutableHeaders(scope=message)
    answer.add_vary_header("Origin")
    if granted is not None:
        answer["Access-Control-Allow-Origin"] = granted
        answer["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    headers: list[tuple[bytes, bytes]] = message["headers"]
    return headers


class KeyCors:
    """Answers preflights and adds the CORS headers of each ``/v1`` answer (see the module).

    Parameters: ``app``, the ASGI app behind it; ``origins``, the :class:`RegisteredOrigins` a
    preflight is answered for.
    """

    def __init__(self, app: ASGIApp, *, origins: RegisteredOrigins) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not any(name == b"origin" for name, _ in scope["headers"]):
            await self._without_origin(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers["origin"]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, scope, receive, send)
            return
        if not (scope["path"] == "/v1" or scope["path"].startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # the request's state: origin_allowed writes it

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_cors(message.get("headers", ()), state.get(STATE_KEY))
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _without_origin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request without ``Origin`` (a server, the CLI; most of them): no preflight and no
        grant, only ``Vary: Origin`` on ``/v1`` answers, added without parsing the headers when the
        answer has no ``Vary`` of its own."""
        if not (scope["path"] == "/v1" or scope["path"].startswith("/v1/")):
            await self.app(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_cors(message.get("headers", ()), None)
            await send(message)

        await self.app(scope, receive, send_with_vary)

    async def _preflight(self, origin: str, scope: Scope, receive: Receive, send: Send) -> None:
        """204 with the CORS grant for a registered origin; 403 problem otherwise (no grant, so
        the browser does not send the request)."""
        response: Response
        try:
            registered = await self.origins.contains(origin)
        except KeyStoreUnavailable:
            unavailable = Problem(
                title="Service Unavailable", status=503, detail="the key store is unavailable; retry"
            )
            response = problem_response(unavailable, instance=scope["path"], headers={"Retry-After": "1"})
        else:
            if registered:
                response = Response(
                    status_code=204,
                    headers={
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": ALLOWED_METHODS,
                        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                    },
                )
            else:
                refused = Problem(
                    type=PROBLEM_BASE + ORIGIN_NOT_ALLOWED,
                    title="Forbidden",
                    status=403,
                    detail=f"origin {quoted(origin)} is not allowed: it is not registered on any key",
                )
                response = problem_response(refused, instance=scope["path"])
        response.headers.add_vary_header("Origin")
        await response(scope, receive, send)
