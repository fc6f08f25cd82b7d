"""Which keys a page may hold: publishable ones with the scopes the page uses, never a secret one.

A page's JavaScript can be read by anyone who opens it, and so can whatever it keeps in the
browser: only a publishable key (``api.keys.rules``: ``submit:tryons`` and ``read`` at most,
usable only from its own origins) may ever reach it. Two ways a key gets there, both checked here:

- the operator configures one (``ATELIER_TRYON_PAGE_KEY``): :func:`configured_page_key` verifies
  it on every render (from the key cache: no query most of the time), so a key revoked or
  replaced by a secret one stops the page instead of handing the key out;
- a person enters one in the page: the page asks ``GET /try-on/key`` (:func:`browser_safe`'s
  verdict, answered by ``api.pages.tryon``) before it keeps the key, and forgets one refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.concurrency import run_in_threadpool

from api.keys.model import ApiKey, KeyVerifier, Scope


class PageKeyRefused(Exception):
    """The configured key cannot serve the page; the message says why (never the secret)."""


def browser_safe(key: ApiKey, needs: Iterable[Scope]) -> str | None:
    """Why ``key`` must not be used by a page needing ``needs``; ``None`` when it may."""
    if not key.publishable:
        return "a secret key must never reach a browser: use a publishable key"
    missing = sorted(scope.value for scope in needs if not key.allows(scope))
    if missing:
        return f"the key lacks the scopes this page uses: {', '.join(missing)}"
    return None


async def verified(keys: KeyVerifier, token: str) -> ApiKey | None:
    """The key behind ``token``, as ``api.auth`` finds it: from the verifier's cache when it has
    one, else from the store (in the thread pool); ``None`` if unknown or revoked."""
    cached: Callable[[str], ApiKey | None] | None = getattr(keys, "cached", None)
    key = cached(token) if cached is not None else None
    if key is None:
        key = await run_in_threadpool(keys.authenticate, token)
    return key


async def configured_page_key(keys: KeyVerifier, token: str, needs: Iterable[Scope]) -> str | None:
    """``token`` if the page may hold it; ``None`` when none is configured (the page then asks
    for one). Raises :class:`PageKeyRefused` for an unknown, revoked or unsafe key."""
    if not token:
        return None
    key = await verified(keys, token)
    if key is None:
        raise PageKeyRefused("the configured page key is unknown or revoked")
    reason = browser_safe(key, needs)
    if reason is not None:
        raise PageKeyRefused(f"the configured page key {key.key_id} is refused: {reason}")
    return token
