"""``atelier review``: set and show tenants' review policies, and read an image's audit trail.

Added to ``atelier`` in ``producer.cli``. The database is the key store's (``ATELIER_DATABASE_URL``,
``api.keys.settings``); its code is imported by each command, so ``atelier`` itself starts
without it. A policy applies to the tenant's listing jobs submitted from then on (within a few
seconds on a running API, which reads each tenant's policy at most every
``api.review.policies.POLICY_CACHE_S``); jobs keep the policy they were submitted under.
Exit codes: 0 success, 1 the database failed, 2 invalid input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.database_exits import database_exits
from api.keys.settings import DatabaseSettings
from core.contracts.jobs import ReviewPolicy
from core.settings import AtelierSettings

if TYPE_CHECKING:
    from api.review.audit import DecisionLog
    from api.review.policies import PolicyStore

app = typer.Typer(
    name="review", help="Review policies per tenant, and the audit trail of decisions.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)


@contextmanager
def _database() -> Iterator[tuple[PolicyStore, DecisionLog]]:
    """The policy store and the decision log on the configured database; failures as exit codes."""
    from sqlalchemy import create_engine

    from api.database import Database
    from api.review.audit import DecisionLog
    from api.review.policies import PolicyStore

    settings = DatabaseSettings()
    engine = create_engine(
        settings.database_url.get_secret_value(),
        connect_args={"connect_timeout": settings.database_connect_timeout_s},
    )
    database = Database(engine)
    try:
        with database_exits(err):
            yield PolicyStore(database, default=AtelierSettings().review_policy), DecisionLog(database)
    finally:
        engine.dispose()


@app.command()
def policy(
    requester: Annotated[str, typer.Argument(help="the tenant")],
    value: Annotated[
        ReviewPolicy | None,
        typer.Argument(
            metavar="[auto|flagged|all]",
            help="auto: the quality gate alone; flagged: people review what the gate flagged; "
            "all: people review every image. Left out: show the tenant's policy",
        ),
    ] = None,
) -> None:
    """Set a tenant's review policy for its listing jobs from now on, or show it."""
    with _database() as (policies, _):
        if value is not None:
            policies.set(requester, value)
            err.print(f"review policy of {escape(requester)}: {value.value} (its new listing jobs)")
            return
        own = policies.all().get(requester)
    shown = own.value if own is not None else f"{policies.default.value} (the default, ATELIER_REVIEW_POLICY)"
    out.print(f"{escape(requester)}: {shown}", highlight=False, soft_wrap=True)


@app.command()
def policies() -> None:
    """Every tenant with a review policy of its own; the others have the default."""
    with _database() as (store, _):
        rows = store.all()
    table = Table("requester", "policy")
    for requester, value in rows.items():
        table.add_row(escape(requester), value.value)
    out.print(table)
    out.print(f"{len(rows)} tenants with a policy of their own; the others: {store.default.value}")


@app.command()
def audit(
    job_id: Annotated[str, typer.Argument(help="the job id")],
    variant: Annotated[int | None, typer.Option(help="only this image of the job")] = None,
) -> None:
    """Every decision people made on a job's images, oldest first (who, when, what, why)."""
    with _database() as (_, log):
        entries = log.trail(job_id, variant)
    table = Table("variant", "decision", "regenerate", "reason", "reviewer (key id)", "decided at")
    for entry in entries:
        table.add_row(
            str(entry.variant),
            entry.decision,
            "yes" if entry.regenerate else "no",
            escape(entry.reason or "-"),
            entry.reviewer,
            entry.decided_at.isoformat(timespec="seconds"),
        )
    out.print(table)
    out.print(f"{len(entries)} decisions")
