"""Sessions on Atelier's PostgreSQL database, whose connection failures read the same wherever
they happen: keys, review policies and the audit trail share one database, so a failure to reach
it is :class:`~api.keys.errors.KeyStoreUnavailable` (retryable; the API answers 503), naming what
was being read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api.keys.errors import KeyStoreUnavailable
from core.contracts.bounds import MAX_MESSAGE_CHARS, excerpt


class Database:
    """Sessions on ``engine`` (shared; never disposed here). ``what`` names the store in errors."""

    def __init__(self, engine: Engine, *, what: str = "the review database") -> None:
        self.engine = engine
        self.what = what
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
                f"{self.what} is unavailable: {excerpt(reason, limit=MAX_MESSAGE_CHARS)}"
            ) from error
