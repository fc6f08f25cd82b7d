"""Routes with a shortcut: the plain request answered in front of the app, FastAPI for every other.

Why: a submit through the whole app passes a dozen ASGI layers (FastAPI's and Starlette's error,
telemetry and body-limit middleware, ours for metrics, CORS and body size), the router's match
over every route, FastAPI's request handling (solving the dependency graph, validating headers
through generic fields, validating the returned model again) and each layer's wrapped ``send``:
together most of the CPU the API added to a submit (``docs/benchmarks/api.md``). The one request
shape that matters is answered by :class:`ShortcutFront`, a pure ASGI layer in front of the app:
it reads the headers it needs once from the scope and the body from ``receive``, calls the
route's shortcut and sends the answer as two messages, doing itself what the layers it skips
would have done to it (metrics, ``Vary`` and the CORS grant, the exception handlers' answers).

A shortcut is ``async (request, body) -> Response | None``, attached to an endpoint with
:func:`with_shortcut`; the endpoint keeps its declared signature, so it makes the OpenAPI
document and FastAPI answers every request the shortcut declines, exactly as before (its
errors, in its order). A shortcut must decline (``None``) before anything with a side effect (a
rate counted, a job stored) whenever the request is not the plain case; what it raises after
that is answered by the app's exception handlers, as if FastAPI's handler had raised it. The
front itself leaves to the app whatever its layers treat specially: a body without a
``Content-Length``, or over the size bound (``api.limits.BodySizeLimit``), and a ``root_path``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from api.cors import STATE_KEY, with_cors
from api.metrics import ApiMetrics
from api.threads import REQUESTS

#: ``async (request, body) -> Response | None``: the answer, or ``None`` to leave it to FastAPI
Shortcut = Callable[[Request, bytes], Awaitable[Response | None]]
#: an exception handler of the app, as Starlette takes them
Handler = Callable[[Request, Exception], Response | Awaitable[Response]]
#: the endpoint attribute a route's shortcut is kept in
SHORTCUT_ATTRIBUTE: Final = "__atelier_shortcut__"

E = TypeVar("E", bound=Callable[..., Any])


def with_shortcut(make: Callable[[E], Shortcut]) -> Callable[[E], E]:
    """Decorate an endpoint (below ``@router.post``) with the shortcut ``make(endpoint)``; it
    takes effect in an app fronted by :class:`ShortcutFront`."""

    def attach(endpoint: E) -> E:
        setattr(endpoint, SHORTCUT_ATTRIBUTE, make(endpoint))
        return endpoint

    return attach


def shortcuts(app: FastAPI) -> dict[str, Shortcut]:
    """The ``POST`` routes of ``app`` with a shortcut, by path (fixed paths only)."""
    found: dict[str, Shortcut] = {}
    for route in iter_route_contexts(app.routes):  # the included routers' routes, with their prefix
        shortcut = getattr(route.endpoint, SHORTCUT_ATTRIBUTE, None)
        path, methods = route.path, route.methods or set()
        if isinstance(route.original_route, APIRoute) and shortcut is not None and "POST" in methods:
            if path is None or "{" in path:
                raise ValueError(f"a shortcut needs a fixed path, not {path!r}")
            found[path] = shortcut
    return found


class ShortcutFront:
    """The ASGI layer that answers the plain requests of the routes with a shortcut.

    Parameters: ``app``, the FastAPI app (its routes' shortcuts, its exception handlers, its
    ``state.metrics``); keyword-only ``full``, the app's own ASGI entry (every other request, and
    every declined one, with its body replayed); ``max_bytes``, the body size bound of these
    routes (``api_max_body_bytes``).
    """

    def __init__(
        self, app: FastAPI, *, full: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int
    ):
        self.app = app
        self.full = full
        self.max_bytes = max_bytes
        self.routes = shortcuts(app)
        self.metrics: ApiMetrics = app.state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.full(scope, receive, send)
            return
        REQUESTS.entered()
        try:
            shortcut = self.routes.get(scope["path"]) if scope["method"] == "POST" else None
            if shortcut is None or scope.get("root_path"):
                await self.full(scope, receive, send)
            else:
                await self._shortcut(shortcut, scope, receive, send)
        finally:
            REQUESTS.left()

    async def _shortcut(self, shortcut: Shortcut, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        length, origin = None, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value if length is None else b"duplicate"
            elif name == b"transfer-encoding":
                length = b"chunked"
            elif name == b"origin":
                origin = True
        if length is None or not length.isdigit() or int(length) > self.max_bytes:
            await self.full(scope, receive, send)  # the size limit's, or FastAPI's to answer
            return
        received: list[Message] = []
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if message["type"] != "http.request":
            await self.full(scope, _replaying(received, receive), send)  # a disconnect: as before
            return
        body = b"".join(message.get("body", b"") for message in received)
        scope["app"] = self.app
        request = Request(scope, _replaying(received, receive))
        try:
            answer = await shortcut(request, body)
        except Exception as error:
            handler = self._handler(error)
            if handler is None:
                await self._failed(request, error, send, started)
                raise
            answer = await _handled(handler, request, error)
        if answer is None:
            await self.full(scope, _replaying(received, receive), send)
            return
        granted = scope["state"].get(STATE_KEY) if origin and "state" in scope else None
        headers = with_cors(answer.raw_headers, granted)
        await send({"type": "http.response.start", "status": answer.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        self.metrics.observe("POST", scope["path"], answer.status_code, time.perf_counter() - started)

    def _handler(self, error: Exception) -> Handler | None:
        """The app's handler of ``error`` (by its class, nearest first), as Starlette's exception
        middleware looks it up; ``None`` for the catch-all one (:meth:`_failed`)."""
        handlers = self.app.exception_handlers
        for kind in type(error).__mro__:
            if kind is Exception:
                return None
            if kind in handlers:
                handler: Handler = handlers[kind]
                return handler
        return None

    async def _failed(self, request: Request, error: Exception, send: Send, started: float) -> None:
        """An unexpected error: the app's 500 handler answers, outside the CORS layer (so without
        ``Vary``), and the error goes on to the server, as Starlette's error middleware does."""
        handler: Handler | None = self.app.exception_handlers.get(
            Exception
        ) or self.app.exception_handlers.get(500)
        if handler is not None:
            answer = await _handled(handler, request, error)
            await answer(request.scope, request.receive, send)
        self.metrics.observe("POST", request.scope["path"], 500, time.perf_counter() - started)


async def _handled(handler: Handler, request: Request, error: Exception) -> Response:
    """A handler's answer (a plain function's is made in the thread pool, as Starlette does)."""
    if inspect.iscoroutinefunction(handler):
        answer = await handler(request, error)
    else:
        answer = await run_in_threadpool(handler, request, error)
    assert isinstance(answer, Response)
    return answer


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages the front already read."""
    pending = list(received)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class FrontedApp(FastAPI):
    """A FastAPI app with a :class:`ShortcutFront` (once :meth:`front_shortcuts` is called)."""

    front: ShortcutFront | None = None

    def front_shortcuts(self, *, max_bytes: int) -> None:
        """Answer the shortcuts of the routes included so far in front of the app."""
        self.front = ShortcutFront(self, full=super().__call__, max_bytes=max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is None:
            await super().__call__(scope, receive, send)
        else:
            await front(scope, receive, send)
