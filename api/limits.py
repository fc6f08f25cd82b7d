"""Request bodies over ``api_max_body_bytes`` are refused with 413 before anything parses them.

A pure ASGI middleware: a declared ``Content-Length`` over the bound is refused at once; a body
without one (chunked) is counted as it streams and refused once the count passes the bound, so
an endless body is never buffered whole.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import Problem, problem_response


class BodyTooLarge(Exception):
    """The streamed body passed the bound."""


class BodySizeLimit:
    """Parameters: ``app``, the ASGI app behind it; ``max_bytes``, the largest body accepted."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
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
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem(
            title="Content Too Large",
            status=413,
            detail=f"the request body is over {self.max_bytes} bytes",
        )
        response = problem_response(problem, instance=scope.get("path"), headers={"Connection": "close"})
        await response(scope, receive, send)
