"""``atelier up``: the whole stack on one machine, kept running until Ctrl-C, with a key to try it.

Where ``scripts/run.sh`` (``embedded.demo``) starts everything, runs nine jobs and stops, this
starts the same real services and keeps them: the front door of a local Atelier, as ``cog serve``
or ``bentoml serve`` are. Started as child processes (``embedded.process``), in this order:

1. a private RabbitMQ node (``embedded.rabbitmq``: the real broker, not ``filesystem://``) and a
   private PostgreSQL cluster (``embedded.postgres``; its data kept in ``state_dir/postgres``),
   unless ``ATELIER_DATABASE_URL`` names a server, side by side;
2. through :class:`embedded.stack.Stack`: a private Redis, a SeaweedFS S3 server and Triton serving
   ``triton_models/`` side by side, then the listing, try-on and callbacks worker pools, the
   sweeper and the HTTP API (``atelier api serve``) on ``127.0.0.1``.

Before the API starts, the key store is migrated (``api.keys.migrate``) and a fresh key with every
scope is created for the requester ``local``; the API URL, the key and ``curl`` lines that submit
a listing, read it and watch its events are printed, ready to paste. A private cluster's key
pepper is kept beside its data (``state_dir/key-pepper``), so earlier keys keep working; with
``ATELIER_DATABASE_URL`` the pepper is ``ATELIER_KEY_PEPPER``'s.

Ctrl-C or SIGTERM stops everything, in reverse order (the API first, the broker and the database
last); so does any part exiting on its own, after printing its log's tail (exit status 1). The
logs of every process stay in ``state_dir/stack/logs``; that folder starts empty on each run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from embedded.process import DEFAULT_STATE_DIR, ChildServer
from embedded.serve import POLL_INTERVAL_S

if TYPE_CHECKING:
    from pydantic import SecretStr

    from api.keys.model import Scope
    from embedded.postgres import PostgresServer
    from embedded.stack import Stack

#: where ``atelier up`` keeps its state unless told otherwise (ignored by git)
UP_STATE_DIR = DEFAULT_STATE_DIR / "up"
#: the requester of the key ``atelier up`` creates
LOCAL_REQUESTER = "local"
#: the listing the printed ``curl`` submits
EXAMPLE_LISTING = (
    '{"listing_id": "SKU-1", "attributes": {"category": "t_shirt", "colour": "red"}, "variants": 2}'
)
#: the worker pools started: one per queue, as in production
POOL_ROLES = ("listing", "tryon", "callbacks")

app = typer.Typer(
    name="up",
    help="Run the whole stack on this machine until Ctrl-C, with a fresh API key.",
    invoke_without_command=True,
)


@dataclass(frozen=True)
class Database:
    """Where the key store lives, and the pepper its keys are hashed with."""

    url: str
    pepper: SecretStr


@app.callback()
def up(
    port: Annotated[
        int | None, typer.Option(help="the API's port (default ATELIER_API_PORT; 0: any free one)")
    ] = None,
    state_dir: Annotated[
        Path, typer.Option(help="data, sockets and logs of the private servers")
    ] = UP_STATE_DIR,
) -> None:
    """Start Triton, S3, Redis, RabbitMQ, PostgreSQL, the workers, the sweeper and the API; print the
    API's URL, a fresh key with every scope and curl lines to try it; stop everything on Ctrl-C."""
    interrupt_once_on_stop_signals()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # Triton's python backend runs torch
    failed: ChildServer | None = None
    try:
        with running_stack(state_dir, api_port=port) as (stack, token, others):
            assert stack.api is not None
            typer.echo(banner(stack.api.url, token, stack.logs))
            failed = wait_while_alive([*others, *stack_servers(stack)])
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
        return
    if failed is not None:
        typer.echo(f"{failed.label} exited on its own; everything is stopped:\n{failed.log_tail()}", err=True)
        raise typer.Exit(1)


def interrupt_once_on_stop_signals() -> None:
    """The first Ctrl-C or SIGTERM raises ``KeyboardInterrupt``; later ones are ignored, so a second
    Ctrl-C cannot cut the stopping short and leave servers behind."""

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        typer.echo("up: stopping everything", err=True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def running_stack(state_dir: Path, *, api_port: int | None) -> Iterator[tuple[Stack, str, list[ChildServer]]]:
    """The running stack, a fresh key's secret token, and the servers started beside the stack
    (broker, database); everything is stopped on leaving, whatever happens."""
    from api.settings import ApiSettings
    from embedded.rabbitmq import RabbitMQServer
    from embedded.stack import Pool, Stack
    from embedded.triton import DEFAULT_REPOSITORY

    workdir = state_dir / "stack"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    with contextlib.ExitStack() as leaving:
        progress("starting RabbitMQ and PostgreSQL")
        rabbitmq = RabbitMQServer(state_dir=workdir, log_path=workdir / "logs" / "rabbitmq.log")
        others: list[ChildServer] = [rabbitmq]
        leaving.callback(rabbitmq.stop)
        rabbitmq.launch()
        database, postgres = launch_database(
            state_dir, log_path=workdir / "logs" / "postgres.log", leaving=leaving
        )
        others += [postgres] if postgres is not None else []
        for server in others:
            server.wait_ready()
        token = create_local_key(database)

        progress("starting Redis, S3 and Triton")
        stack = Stack(
            tag="up",
            workdir=workdir,
            triton_repository=DEFAULT_REPOSITORY,
            redis="private",
            broker_url=rabbitmq.url,
            receiver=False,
        )
        leaving.enter_context(stack)
        progress("starting the workers, the sweeper and the API")
        stack.start_workers(*(Pool(role) for role in POOL_ROLES))
        stack.start_sweeper()
        port = api_port if api_port is not None else ApiSettings().api_port
        stack.start_api(database_url=database.url, key_pepper=database.pepper, port=port or None)
        yield stack, token, others


def launch_database(
    state_dir: Path, *, log_path: Path, leaving: contextlib.ExitStack
) -> tuple[Database, PostgresServer | None]:
    """The key store ``ATELIER_DATABASE_URL`` names, else a private cluster in ``state_dir`` launched
    (not yet waited for: ``wait_ready`` it) and stopped when ``leaving`` closes; the demo uses it too."""
    from embedded.postgres import PostgresServer

    database = external_database()
    if database is not None:
        return database, None
    if os.geteuid() == 0:  # the cluster runs as the postgres user, who must reach its folders in here
        state_dir.mkdir(parents=True, exist_ok=True)
        state_dir.chmod(0o755)
    postgres = PostgresServer(state_dir=state_dir, log_path=log_path)
    leaving.callback(postgres.stop)
    postgres.launch()
    return private_database(postgres.url, state_dir), postgres


def external_database() -> Database | None:
    """The key store ``ATELIER_DATABASE_URL`` names (environment or ``.env``), if it names one."""
    from api.keys.settings import DatabaseSettings

    settings = DatabaseSettings()
    if "database_url" not in settings.model_fields_set:
        return None
    return Database(settings.database_url.get_secret_value(), settings.key_pepper)


def private_database(url: str, state_dir: Path) -> Database:
    """The private cluster's key store, with the pepper kept beside its data (made on first use)."""
    from pydantic import SecretStr

    path = state_dir / "key-pepper"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return Database(url, SecretStr(path.read_text().strip()))


def create_local_key(database: Database) -> str:
    """Migrate the key store (creating its database if need be), then a key with every scope for
    ``local``: its secret token."""
    from api.keys.model import Scope

    migrate_key_store(database)
    return create_key(database, LOCAL_REQUESTER, scopes=list(Scope), name="atelier up")


def migrate_key_store(database: Database) -> None:
    """Create the key store's database if need be and migrate it to the head revision."""
    from api.keys.migrate import ensure_database, upgrade

    ensure_database(database.url)
    upgrade(database.url)


def create_key(
    database: Database, requester: str, *, scopes: Sequence[Scope], name: str, publishable: bool = False
) -> str:
    """A new key for ``requester`` in a migrated key store: its secret token."""
    from api.keys.store import KeyStore

    with KeyStore(database.url, pepper=database.pepper) as store:
        _, token = store.create(requester, scopes=scopes, name=name, publishable=publishable)
    return token


def stack_servers(stack: Stack) -> list[ChildServer]:
    """Every child process the stack started."""
    found: list[ChildServer | None] = [
        stack.redis,
        stack.s3,
        stack.triton,
        *stack.workers.values(),
        stack.sweeper,
        stack.api,
    ]
    return [server for server in found if server is not None]


def wait_while_alive(servers: list[ChildServer]) -> ChildServer | None:
    """Wait until one of ``servers`` exits (it is returned) or we are interrupted (raises)."""
    while True:
        for server in servers:
            if not server.is_alive():
                return server
        time.sleep(POLL_INTERVAL_S)


def banner(url: str, token: str, logs: Path) -> str:
    """What ``atelier up`` prints once ready: where the API is, the key, and curl lines to paste."""
    auth = f"-H 'Authorization: Bearer {token}'"
    read_id = "python3 -c 'import json, sys; print(json.load(sys.stdin)[\"id\"])'"
    return "\n".join(
        [
            "",
            "Atelier is up. Ctrl-C stops everything.",
            f"  API:  {url}   (OpenAPI: {url}/docs)",
            f"  key:  {token}   (requester {LOCAL_REQUESTER}, every scope)",
            f"  logs: {logs}",
            "",
            "Submit a listing, read its job, watch its events:",
            f"  JOB=$(curl -s -X POST {url}/v1/listings {auth} -H 'Content-Type: application/json' "
            f"-d '{EXAMPLE_LISTING}' | {read_id})",
            f"  curl -s {url}/v1/jobs/$JOB {auth}",
            f"  curl -N {url}/v1/jobs/$JOB/events {auth}",
            "",
        ]
    )


def progress(message: str) -> None:
    typer.echo(f"up: {message}", err=True)
