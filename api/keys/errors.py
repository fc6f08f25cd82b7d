"""The key store's typed refusals: each an ``AtelierError``, so the routes and the CLI catch one root
and map its ``code`` to a status (a problem document) or an exit code."""

from __future__ import annotations

from core.errors import ErrorCode, PermanentError, RetryableError


class KeyStoreError(PermanentError):
    """A request the key store refuses: retrying it unchanged cannot succeed."""

    def __str__(self) -> str:
        return self.message


class InvalidKeyRequest(KeyStoreError):
    """A requester id, scope list, name or CORS origin that breaks its rule."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, message)


class ScopeNotAllowed(KeyStoreError):
    """A publishable key asked for more than ``PUBLISHABLE_SCOPES``: it ships inside a browser or a
    phone app, where anyone can read it, so it may only submit try-ons and read its own jobs."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.SCOPE_NOT_ALLOWED, message)


class KeyNotFound(KeyStoreError):
    """No key with this id (revoking an unknown key is a mistake worth reporting)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(ErrorCode.KEY_NOT_FOUND, f"no API key {key_id!r}")
        self.key_id = key_id


class KeyStoreUnavailable(RetryableError):
    """PostgreSQL did not answer: the same call may succeed once it is back."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.KEY_STORE_UNAVAILABLE, message)

    def __str__(self) -> str:
        return self.message
