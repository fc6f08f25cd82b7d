"""``Authorization: Bearer <key>`` on every ``/v1`` route.

The key store (any :class:`api.keys.model.KeyVerifier`; ``api.keys.store.KeyStore`` in
service) turns the secret into an :class:`~api.keys.model.ApiKey`: who the caller speaks for
(``requester``) and what it may do (scopes). No key, or an unknown or revoked one: 401 with
``WWW-Authenticate: Bearer``. A key without the route's scope: 403. The requester of every job
the caller submits, reads, lists or cancels is the key's, never one the caller names.

A verifier that keeps verified keys (``KeyStore`` with ``cache_s``, ``api.keys.cache``) answers
most requests from memory, on the event loop (its ``cached``); only a miss is looked up in the
database, in the thread pool. Every dependency here is ``async``: a plain ``def`` dependency would
cost each request a trip through the thread pool for no I/O at all.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.keys.model import ApiKey, KeyVerifier, Scope
from api.problems import ProblemError

#: the OpenAPI security scheme; errors are ours (problem+json), not FastAPI's
bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="an Atelier API key")

#: the header a 401 carries (RFC 6750 section 3)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="atelier"'}


async def authenticated(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
) -> ApiKey:
    """The caller's verified key; 401 problem otherwise."""
    if credentials is None:
        raise ProblemError(
            401, "Unauthorized", "send an API key: Authorization: Bearer <key>", headers=CHALLENGE
        )
    keys: KeyVerifier = request.app.state.keys
    cached: Callable[[str], ApiKey | None] | None = getattr(keys, "cached", None)
    key = cached(credentials.credentials) if cached is not None else None
    if key is None:
        key = await run_in_threadpool(keys.authenticate, credentials.credentials)
    if key is None:
        raise ProblemError(401, "Unauthorized", "the API key is unknown or revoked", headers=CHALLENGE)
    return key


@cache
def require(scope: Scope) -> Callable[..., object]:
    """A dependency that yields the caller's key if it holds ``scope``; 403 problem otherwise.
    The same function for the same scope, so FastAPI runs it once per request however many
    dependencies ask for it."""

    async def scoped(key: ApiKey = Depends(authenticated)) -> ApiKey:  # noqa: B008
        if not key.allows(scope):
            raise missing_scope(scope)
        return key

    scoped.__name__ = f"require_{scope.name.lower()}"
    return scoped


def missing_scope(scope: Scope) -> ProblemError:
    """The 403 problem of a key without ``scope``."""
    return ProblemError(403, "Forbidden", f"this key lacks the {scope.value!r} scope")
