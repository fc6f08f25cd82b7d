"""What a verified key grants: the shared vocabulary of the key store and the HTTP routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Scope(StrEnum):
    """What a key may do. A route names the scope it needs; a key lacking it gets 403."""

    SUBMIT_LISTINGS = "submit:listings"
    SUBMIT_TRYONS = "submit:tryons"
    READ = "read"
    CANCEL = "cancel"
    REVIEW = "review"
    ADMIN = "admin"


#: the only scopes a publishable (browser-facing) key may hold
PUBLISHABLE_SCOPES = frozenset({Scope.SUBMIT_TRYONS, Scope.READ})


@dataclass(frozen=True)
class ApiKey:
    """A verified key: who it speaks for and what it may do. Never holds the secret."""

    key_id: str  #: public identifier (the prefix shown in listings), not the secret
    requester: str  #: the tenant every job submitted with this key belongs to
    scopes: frozenset[Scope]
    publishable: bool = False
    cors_origins: tuple[str, ...] = ()
    name: str = ""
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: when the key last authenticated, to the store's resolution (``api.keys.store``); None: never
    last_used_at: datetime | None = None
    #: this key's request rate (``limits``' notation, ``;`` between limits; ``""``: none);
    #: ``None``: the service's ``api_rate_limit``
    rate_limit: str | None = None
    #: jobs this key may submit per day (0: no quota); ``None``: the service's ``api_daily_quota``
    daily_quota: int | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


class KeyVerifier(Protocol):
    """What the HTTP routes need from the key store (``api.keys.store.KeyStore`` implements it)."""

    def authenticate(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, if it exists and is not revoked; ``None`` otherwise."""
        ...

    # A verifier may also offer ``cached(secret) -> ApiKey | None``: the key if it verified a
    # moment ago, with no I/O (``api.keys.store.KeyStore.cached``); ``api.auth`` then calls
    # ``authenticate`` only when that answers ``None``.
