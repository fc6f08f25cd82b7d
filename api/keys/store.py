"""Tenants and API keys in PostgreSQL: create, authenticate, list, revoke.

The HTTP routes see only :class:`~api.keys.model.KeyVerifier` (``authenticate``); operators
reach the rest through ``atelier keys``. Secrets are hashed (``api.keys.tokens``), the checks
on a new key live in ``api.keys.rules``, the schema in ``api.keys.tables`` and its migrations.
A tenant is created with its first key. PostgreSQL failing to answer raises
:class:`~api.keys.errors.KeyStoreUnavailable` (retryable); refusals are ``KeyStoreError``\\ s.
A store made with ``cache_s`` keeps verified keys that long (``api.keys.cache``), so most
requests authenticate without a query; a revoke through it takes effect at once, one made
elsewhere within ``cache_s``.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final

from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from api.database import Database
from api.keys import rules
from api.keys.cache import VerifiedKeys
from api.keys.errors import KeyNotFound
from api.keys.model import ApiKey, Scope
from api.keys.settings import DatabaseSettings
from api.keys.tables import KeyRow, Tenant
from api.keys.tokens import KEY_ID_PATTERN, hash_token, key_id_of, new_key_id, new_token, token_matches
from core.contracts.bounds import excerpt

#: ``last_used_at`` is refreshed at most this often per key: an authenticated request is a read,
#: not a write, except once in this long
LAST_USED_RESOLUTION: Final = timedelta(minutes=1)


class KeyStore:
    """The key store over ``database``: an ``Engine`` (shared, left open by :meth:`close`) or a URL
    (an engine of its own, disposed by :meth:`close`).

    ``pepper``: the HMAC key of every secret's hash (``ATELIER_KEY_PEPPER``); it must be the same
    for every process sharing the database, or their keys stop authenticating.
    ``connect_timeout_s``: how long opening a connection may take (URL only).
    ``cache_s``: how long a verified key is kept without asking the database (0, the default
    here: every call asks; the API's default is ``ATELIER_KEY_CACHE_S``).
    """

    def __init__(
        self,
        database: Engine | str,
        *,
        pepper: SecretStr | str = "",
        connect_timeout_s: int = 5,
        cache_s: float = 0.0,
    ) -> None:
        if isinstance(database, str):
            database = create_engine(
                database, pool_pre_ping=True, connect_args={"connect_timeout": connect_timeout_s}
            )
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = database
        self._database = Database(database, what="the key store")
        secret = pepper.get_secret_value() if isinstance(pepper, SecretStr) else pepper
        self._pepper = secret.encode()
        self._verified = VerifiedKeys(cache_s)

    @classmethod
    def from_settings(cls, settings: DatabaseSettings | None = None) -> KeyStore:
        settings = settings or DatabaseSettings()
        return cls(
            settings.database_url.get_secret_value(),
            pepper=settings.key_pepper,
            connect_timeout_s=settings.database_connect_timeout_s,
            cache_s=settings.key_cache_s,
        )

    def create(
        self,
        requester: str,
        *,
        scopes: Iterable[Scope | str],
        name: str = "",
        publishable: bool = False,
        cors_origins: Iterable[str] = (),
        tenant_name: str | None = None,
        rate_limit: str | None = None,
        daily_quota: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key for ``requester`` (its tenant created on its first key) and the key's secret
        token: return it to its owner once, it cannot be read back. ``rate_limit`` and
        ``daily_quota`` are the key's own limits (``None``: the service's, ``api.limits``)."""
        requester = rules.checked_requester(requester)
        rate_limit = rules.checked_rate_limit(rate_limit)
        daily_quota = rules.checked_daily_quota(daily_quota)
        granted = rules.checked_scopes(scopes, publishable=publishable)
        origins = rules.checked_origins(cors_origins, publishable=publishable)
        name = rules.checked_name(name)
        tenant_name = rules.checked_name(tenant_name if tenant_name is not None else requester)
        key_id = new_key_id()
        token = new_token(key_id)
        with self._session() as session:
            session.execute(
                insert(Tenant)
                .values(requester=requester, name=tenant_name)
                .on_conflict_do_nothing(index_elements=[Tenant.requester])
            )
            row = session.scalars(
                insert(KeyRow)
                .values(
                    key_id=key_id,
                    requester=requester,
                    name=name,
                    secret_hash=hash_token(token, pepper=self._pepper),
                    scopes=sorted(granted),
                    publishable=publishable,
                    cors_origins=list(origins),
                    rate_limit=rate_limit,
                    daily_quota=daily_quota,
                )
                .returning(KeyRow)
            ).one()
            session.commit()
        return _as_api_key(row), token

    def cached(self, secret: str) -> ApiKey | None:
        """The key of this token if it verified less than ``cache_s`` ago; ``None`` when it must be
        looked up (:meth:`authenticate`). No I/O: the API calls it on its event loop."""
        if self._verified.ttl_s <= 0 or key_id_of(secret) is None:
            return None
        return self._verified.get(hash_token(secret, pepper=self._pepper))

    def authenticate(self, secret: str) -> ApiKey | None:
        """The key whose secret token this is, if it exists and is not revoked; ``None`` otherwise
        (a malformed token is refused before it is hashed or looked up)."""
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        found = self.cached(secret)
        if found is not None:
            return found
        with self._session() as session:
            row = session.get(KeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return None
            if not token_matches(secret, row.secret_hash, pepper=self._pepper):
                return None
            now = datetime.now(UTC)
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
                session.execute(update(KeyRow).where(KeyRow.key_id == key_id).values(last_used_at=now))
                session.commit()
                row.last_used_at = now
        key = _as_api_key(row)
        self._verified.put(row.secret_hash, key)
        return key

    def get(self, key_id: str) -> ApiKey:
        """The key with this public id, revoked or not; :class:`KeyNotFound` if there is none."""
        with self._session() as session:
            row = session.get(KeyRow, key_id) if KEY_ID_PATTERN.fullmatch(key_id) else None
        if row is None:
            raise KeyNotFound(excerpt(key_id))
        return _as_api_key(row)

    def list(self, requester: str | None = None) -> tuple[ApiKey, ...]:
        """Every key (of ``requester`` only, if given), oldest first, revoked ones included."""
        query = select(KeyRow).order_by(KeyRow.created_at, KeyRow.key_id)
        if requester is not None:
            query = query.where(KeyRow.requester == requester)
        with self._session() as session:
            return tuple(_as_api_key(row) for row in session.scalars(query))

    def all_origins(self) -> frozenset[str]:
        """Every CORS origin of an active publishable key: what a browser's preflight, which
        carries no key, is answered for (``api.cors``)."""
        query = (
            select(func.unnest(KeyRow.cors_origins))
            .where(KeyRow.publishable, KeyRow.revoked_at.is_(None))
            .distinct()
        )
        with self._session() as session:
            return frozenset(session.scalars(query))

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke the key: it never authenticates again. Revoking a revoked key changes nothing
        (it keeps its first ``revoked_at``); an unknown id raises :class:`KeyNotFound`."""
        if KEY_ID_PATTERN.fullmatch(key_id):
            with self._session() as session:
                session.execute(
                    update(KeyRow)
                    .where(KeyRow.key_id == key_id, KeyRow.revoked_at.is_(None))
                    .values(revoked_at=func.now())
                )
                session.commit()
            self._verified.forget(key_id)
        return self.get(key_id)

    def close(self) -> None:
        """Close the engine's connections, if this store made the engine."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _session(self) -> AbstractContextManager[Session]:
        return self._database.session()


def _as_api_key(row: KeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        requester=row.requester,
        scopes=frozenset(Scope(scope) for scope in row.scopes),
        publishable=row.publishable,
        cors_origins=tuple(row.cors_origins),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        rate_limit=row.rate_limit,
        daily_quota=row.daily_quota,
    )
