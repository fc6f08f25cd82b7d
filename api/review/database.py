"""Sessions on the review tables, whose connection failures read as the key store's do: the
tables live in the same PostgreSQL database, so a failure there is
:class:`~api.keys.errors.KeyStoreUnavailable` (retryable; the API answers 503)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api.keys.errors import KeyStoreUnavailable
from core.contracts.bounds import MAX_MESSAGE_CHARS, excerpt


class Database:
    """Sessions on ``engine`` (shared with the key store; never disposed here)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose connection failures surface as :class:`KeyStoreUnavailable`."""
        try:
            with self._sessions() as session:
                yield session
        except (OperationalError, InterfaceError) as error:
            # the driver's message names host and port, never the password
            reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
            raise KeyStoreUnavailable(
                f"the review database is unavailable: {excerpt(reason, limit=MAX_MESSAGE_CHARS)}"
            ) from error
