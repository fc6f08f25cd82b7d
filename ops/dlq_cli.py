"""``atelier dlq``: list the dead-letter queue with reasons, replay one or all, purge.

Added to ``atelier`` in ``producer.cli``; the work is ``core.dead_letters.DeadLetterQueue``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.dead_letters import DeadLetterQueue, as_json
from core.settings import AtelierSettings

app = typer.Typer(name="dlq", help="Inspect and replay the dead-letter queue.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _queue() -> DeadLetterQueue:
    return DeadLetterQueue(AtelierSettings())


@app.command("list")
def list_(as_json_: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False) -> None:
    """Every dead letter: message id, task, job id, reason, death count, first death time."""
    letters = _queue().list()
    if as_json_:
        for letter in letters:
            out.print_json(json.dumps(as_json(letter)))
        return
    table = Table("message id", "task", "job id", "queue", "reason", "deaths", "first death")
    for letter in letters:
        first = letter.first_death_at.isoformat(timespec="seconds") if letter.first_death_at else "-"
        table.add_row(
            letter.message_id,
            letter.task or "-",
            letter.job_id or "-",
            letter.queue or "-",
            escape(letter.reason),
            str(letter.death_count),
            first,
        )
    out.print(table)
    out.print(f"{len(letters)} dead letters")


@app.command()
def replay(
    message_id: Annotated[str | None, typer.Argument(help="the message id `atelier dlq list` shows")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
) -> None:
    """Re-publish a dead letter (or all) to the queue it came from; removed once confirmed."""
    if (message_id is None) == (not all_):
        err.print("give a message id or --all (not both)")
        raise typer.Exit(2)
    replayed = _queue().replay(None if all_ else message_id)
    for letter in replayed:
        out.print(f"replayed {letter.message_id} to {letter.queue}")
    if message_id is not None and not replayed:
        err.print(f"no dead letter {message_id} with a known source queue")
        raise typer.Exit(1)
    out.print(f"{len(replayed)} replayed")


@app.command()
def purge(yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete every dead letter."""
    if not yes and not typer.confirm("Delete every message in the dead-letter queue?"):
        raise typer.Exit(1)
    out.print(f"{_queue().purge()} dead letters purged")
