"""How the database commands (``atelier keys``, ``atelier review``) end when the database refuses
or fails: the message on stderr and one exit code, the same for every command. Exit codes: 0
success, 1 the database failed (or a key was not found), 2 invalid input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import typer
from rich.console import Console
from rich.markup import escape

from api.keys.errors import KeyNotFound, KeyStoreError, KeyStoreUnavailable

EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2


@contextmanager
def database_exits(err: Console) -> Iterator[None]:
    """Turn the store's refusals and failures raised inside into a message on ``err`` and an exit."""
    from sqlalchemy.exc import ProgrammingError  # imported here: ``atelier`` starts without SQLAlchemy

    try:
        yield
    except KeyNotFound as error:
        err.print(escape(str(error)), soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    except KeyStoreError as error:
        err.print(escape(str(error)), soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    except KeyStoreUnavailable as error:
        err.print(escape(str(error)), soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    except ProgrammingError as error:  # most often: the tables are not there yet
        err.print(escape(str(error.orig).splitlines()[0]), "(run: atelier keys migrate)", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
