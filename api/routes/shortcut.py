"""Routes with a shortcut: a handler written out for the plain request, FastAPI's for every other.

Why: on a submit, FastAPI's generic request handling (solving the dependency graph, validating
headers through generic fields, validating the returned model again before serialising it) cost
about a fifth of the API's CPU (``docs/benchmarks/api.md``), and every submit pays it. A shortcut
does the same steps for the one request shape that matters, written out. The endpoint keeps its
declared signature: it makes the OpenAPI document, and FastAPI's handler answers every request the
shortcut declines, exactly as before (its errors, in its order).

A shortcut is ``async (request) -> Response | None``. It must decline (``None``) before anything
with a side effect (a rate counted, a job stored), whenever the request is not the plain case;
what it raises after that goes to the app's exception handlers, as from FastAPI's handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute

#: ``async (request) -> Response | None``: the answer, or ``None`` to leave it to FastAPI
Shortcut = Callable[[Request], Awaitable[Response | None]]
#: the endpoint attribute a route's shortcut is kept in
SHORTCUT_ATTRIBUTE: Final = "__atelier_shortcut__"

E = TypeVar("E", bound=Callable[..., Any])


def with_shortcut(make: Callable[[E], Shortcut]) -> Callable[[E], E]:
    """Decorate an endpoint (below ``@router.post``) with the shortcut ``make(endpoint)``; it
    takes effect on a router whose ``route_class`` is :class:`ShortcutRoute`."""

    def attach(endpoint: E) -> E:
        setattr(endpoint, SHORTCUT_ATTRIBUTE, make(endpoint))
        return endpoint

    return attach


class ShortcutRoute(APIRoute):
    """An ``APIRoute`` whose endpoint's shortcut (:func:`with_shortcut`), if any, answers first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        shortcut: Shortcut | None = getattr(self.endpoint, SHORTCUT_ATTRIBUTE, None)
        if shortcut is None:
            return full

        async def handler(request: Request) -> Response:
            answer = await shortcut(request)
            return answer if answer is not None else await full(request)

        return handler
