"""The key store's schema migrations, run in code (``atelier keys migrate``, ``atelier up``, the tests).

Alembic, with a ``Config`` built here instead of an ``alembic.ini``: the migrations ship inside the
package (``api/keys/migrations``), so an installed Atelier can migrate its database with nothing
else on disk. The URL travels in ``Config.attributes`` rather than as an ini option, where a ``%``
in a password would be read as interpolation.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url, pool, text

#: the package holding ``env.py`` and ``versions/``
MIGRATIONS_PACKAGE = "api.keys.migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the key store's migrations against ``url``."""
    config = Config()
    config.set_main_option("script_location", str(resources.files(MIGRATIONS_PACKAGE)))
    config.attributes["url"] = url
    return config


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names if the server lacks it (through the server's ``postgres``
    database), so a fresh PostgreSQL needs no ``createdb`` first. Whether it was created."""
    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError("the database URL names no database")
    server = create_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    try:
        with server.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if exists.first() is not None:
                return False
            quoted = server.dialect.identifier_preparer.quote(name)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        server.dispose()


def upgrade(url: str, *, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (idempotent: at head, nothing happens)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, *, revision: str = "base") -> None:
    """Take the database at ``url`` down to ``revision`` (``base``: drop every table they made)."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` before the first migration."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision(url: str = "") -> str | None:
    """The newest revision shipped with this code (``readyz`` compares it with the database's)."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()
