"""``atelier keys``: create, list and revoke tenants' API keys; migrate the key store's schema.

Added to ``atelier`` in ``producer.cli``. The database and the pepper come from
``ATELIER_DATABASE_URL`` and ``ATELIER_KEY_PEPPER`` (``api.keys.settings``). The database code
(SQLAlchemy, Alembic, psycopg: the ``api`` extra) is imported by each command, so ``atelier``
itself starts without it. ``create`` prints the secret token once, alone on stdout (so
``KEY=$(atelier keys create ...)`` works), and what it made on stderr. A key may carry its own
rate limit and daily quota (``--rate-limit``, ``--daily-quota``); without them the API's settings
apply (``api.limits``). Exit codes: 0 success,
1 the database failed or the key is unknown, 2 invalid input (a refused scope, requester, origin).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.database_exits import EXIT_FAILED, database_exits
from api.keys.model import ApiKey, Scope
from api.keys.settings import DatabaseSettings

if TYPE_CHECKING:
    from api.keys.store import KeyStore

app = typer.Typer(name="keys", help="Manage tenants' API keys (kept in PostgreSQL).", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@contextmanager
def _store() -> Iterator[KeyStore]:
    """The configured key store; its refusals and failures as messages and exit codes."""
    from api.keys.store import KeyStore

    with database_exits(err), KeyStore.from_settings(DatabaseSettings()) as store:
        yield store


@app.command()
def create(
    requester: Annotated[str, typer.Option(help="the tenant the key speaks for (created on its first key)")],
    scope: Annotated[list[Scope], typer.Option(help="what the key may do (repeat for several)")],
    name: Annotated[str, typer.Option(help="a label for listings")] = "",
    publishable: Annotated[
        bool, typer.Option(help="browser-facing: only submit:tryons and read, from its CORS origins")
    ] = False,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="an origin allowed to use a publishable key (repeat for several)")
    ] = None,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            help="this key's request rate, e.g. '20/second' or '600/minute;20/second' ('' for none); "
            "default: the API's ATELIER_API_RATE_LIMIT"
        ),
    ] = None,
    daily_quota: Annotated[
        int | None,
        typer.Option(
            help="jobs this key may submit per day (0 for none); default: the API's ATELIER_API_DAILY_QUOTA"
        ),
    ] = None,
) -> None:
    """Create a key and print its secret token, once: it is stored hashed and cannot be shown again."""
    with _store() as store:
        key, token = store.create(
            requester,
            scopes=scope,
            name=name,
            publishable=publishable,
            cors_origins=cors_origin or (),
            rate_limit=rate_limit,
            daily_quota=daily_quota,
        )
    err.print(f"created key {key.key_id} for {escape(key.requester)}: {', '.join(sorted(key.scopes))}")
    if key.rate_limit is not None or key.daily_quota is not None:
        err.print(f"its limits: rate {_rate(key)}, daily quota {_quota(key)}")
    err.print("the secret token follows; store it now, it is not shown again")
    typer.echo(token)


@app.command("list")
def list_(
    requester: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Every key (revoked ones too): id, tenant, name, scopes, origins, dates. Never a secret."""
    with _store() as store:
        keys = store.list(requester)
    if as_json:
        for key in keys:
            typer.echo(json.dumps(_as_json(key)))
        return
    table = Table(
        "key id",
        "requester",
        "name",
        "scopes",
        "publishable",
        "origins",
        "rate",
        "quota",
        "created",
        "revoked",
    )
    for key in keys:
        table.add_row(
            key.key_id,
            escape(key.requester),
            escape(key.name),
            ", ".join(sorted(key.scopes)),
            "yes" if key.publishable else "no",
            " ".join(key.cors_origins) or "-",
            escape(_rate(key)),
            _quota(key),
            _when(key.created_at),
            _when(key.revoked_at),
        )
    out.print(table)
    out.print(f"{len(keys)} keys")


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="the key id `atelier keys list` shows")]) -> None:
    """Revoke a key: it stops authenticating within ATELIER_KEY_CACHE_S (5 s by default: each API
    process trusts a key it verified that long), and its row stays for the record."""
    with _store() as store:
        key = store.revoke(key_id)
    err.print(f"revoked key {key.key_id} of {escape(key.requester)} at {_when(key.revoked_at)}")


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="the schema revision to reach")] = "head",
) -> None:
    """Create or upgrade the key store's tables (Alembic), creating the database first if the server
    lacks it; a database already at the revision is left as it is."""
    from sqlalchemy.exc import OperationalError

    from api.keys.migrate import current_revision, ensure_database, upgrade

    url = DatabaseSettings().database_url.get_secret_value()
    try:
        if ensure_database(url):
            err.print("created the database")
        upgrade(url, revision=revision)
        reached = current_revision(url)
    except OperationalError as error:
        err.print(f"the key store is unavailable: {escape(str(error.orig).splitlines()[0])}", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    err.print(f"key store schema at revision {reached}")


def _rate(key: ApiKey) -> str:
    """The key's rate limit as listed: ``default`` (the API's), ``none`` or its own."""
    return "default" if key.rate_limit is None else key.rate_limit or "none"


def _quota(key: ApiKey) -> str:
    return "default" if key.daily_quota is None else str(key.daily_quota or "none")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _as_json(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "requester": key.requester,
        "name": key.name,
        "scopes": sorted(key.scopes),
        "publishable": key.publishable,
        "cors_origins": list(key.cors_origins),
        "rate_limit": key.rate_limit,
        "daily_quota": key.daily_quota,
        "created_at": key.created_at.isoformat() if key.created_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }
