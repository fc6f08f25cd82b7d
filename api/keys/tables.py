"""The key store's tables, as SQLAlchemy 2 typed mappings (the migrations in ``migrations/`` create
them; a change here needs a new revision there).

``tenants``: one row per requester, created with its first key; the next issues hang quotas,
review decisions and their audit trail off it. ``api_keys``: one row per key, holding a hash of
the secret and never the secret itself (``api.keys.tokens`` says why HMAC-SHA256), and the key's
own rate limit and daily quota where it has any (NULL: the service's, ``api.limits``). A revoked
key keeps its row (``revoked_at``), so listings and audits still name it.

PostgreSQL only, on purpose: scopes and origins are ``text[]``, and a CHECK keeps a publishable
key within its scopes even if a future code path forgets to.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from api.keys.model import PUBLISHABLE_SCOPES
from core.contracts.v1 import MAX_IDENTIFIER_CHARS

#: longest key or tenant name
MAX_NAME_CHARS = 200
#: longest rate limit of a key (``limits``' notation)
MAX_RATE_LIMIT_CHARS = 200
#: the publishable scopes as an SQL array literal, for the CHECK constraint
PUBLISHABLE_SCOPES_SQL = "ARRAY[" + ", ".join(f"'{scope}'" for scope in sorted(PUBLISHABLE_SCOPES)) + "]"

#: constraint names the migrations can refer to
NAMING = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    """A requester: every job submitted with one of its keys belongs to it."""

    __tablename__ = "tenants"

    requester: Mapped[str] = mapped_column(String(MAX_IDENTIFIER_CHARS), primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KeyRow(Base):
    """An API key: its public id, its tenant, what it may do, and the hash of its secret."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index(None, "requester"),
        CheckConstraint(
            f"NOT publishable OR scopes <@ {PUBLISHABLE_SCOPES_SQL}::text[]", name="publishable_scopes"
        ),
        CheckConstraint("cardinality(scopes) > 0", name="some_scope"),
        CheckConstraint("daily_quota >= 0", name="daily_quota_not_negative"),
    )

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    requester: Mapped[str] = mapped_column(ForeignKey("tenants.requester", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS), server_default=text("''"))
    #: HMAC-SHA256 of the whole token, 64 hex digits (``api.keys.tokens.hash_token``)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    publishable: Mapped[bool] = mapped_column(server_default=text("false"))
    cors_origins: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: refreshed at most once per ``LAST_USED_RESOLUTION`` (``api.keys.store``), not on every request
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: this key's rate (``limits``' notation, ``''``: none); NULL: the service's ``api_rate_limit``
    rate_limit: Mapped[str | None] = mapped_column(String(MAX_RATE_LIMIT_CHARS))
    #: this key's jobs per day (0: none); NULL: the service's ``api_daily_quota``
    daily_quota: Mapped[int | None] = mapped_column(Integer)
