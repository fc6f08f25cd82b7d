"""The ``python -m embedded.<server>`` loop: serve in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import time

import typer

from embedded.process import ChildServer

#: seconds between checks that the server is still alive
POLL_INTERVAL_S = 0.5


def interrupt_on_stop_signals() -> None:
    """Ctrl-C and SIGTERM raise ``KeyboardInterrupt``, even if we were started with them ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def serve_until_interrupted(server: ChildServer, *, banner: str) -> None:
    """Print ``banner`` and wait: return on Ctrl-C; if the server exits, print its log and exit 1."""
    typer.echo(banner)
    try:
        while server.is_alive():
            time.sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        typer.echo("stopping")
        return
    typer.echo(f"{server.label} exited on its own:\n{server.log_tail()}", err=True)
    raise typer.Exit(1)
