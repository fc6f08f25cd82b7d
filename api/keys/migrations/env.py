"""Alembic's entry point for the key store's schema: run by ``api.keys.migrate`` (``atelier keys
migrate``), which hands over the database URL in ``config.attributes``; run any other way (the
``alembic`` command with ``-c`` pointing here), the URL comes from ``ATELIER_DATABASE_URL``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from api.keys.settings import DatabaseSettings
from api.keys.tables import Base
from api.review import tables as review_tables  # noqa: F401 - its tables join Base's metadata

config = context.config
url: str = config.attributes.get("url") or DatabaseSettings().database_url.get_secret_value()

if context.is_offline_mode():
    # `--sql`: write the statements instead of running them (for a DBA to review)
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    # NullPool: a one-off command keeps no connection open after it ends
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=Base.metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
