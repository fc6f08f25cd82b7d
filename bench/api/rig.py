"""What the API benchmark runs against: the machine's Redis, RabbitMQ and PostgreSQL, under a
private namespace, and one ``atelier api serve`` process on them.

No worker runs: every submitted job stays queued, so the figures are the cost of taking a job in
(record, publish, and for the API its key, limits and admission), not of making its images. On
leaving, the namespace's queues (with every message in them) and Redis keys are deleted and the
fresh key-store database is dropped, also after an error half-way.

The limits stay on, as in production, but out of the way: each client has a key of its own
(rate limits and quotas are per key), the rate limit and daily quota are raised far above what
the benchmark submits, and the listing queue bound (admission control) above what it queues; so
the API pays for checking them (Redis round trips, the cached queue depth) and never refuses.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from api.keys.model import Scope
from api.keys.settings import DatabaseSettings
from core.worker_settings import WorkerSettings
from embedded.namespace import namespace, remove_namespace
from embedded.postgres import scratch_database
from embedded.services import ApiServer
from embedded.up import Database, create_key, migrate_key_store

#: the requester every benchmark key belongs to (one key per client)
REQUESTER = "bench-api"
#: the API's limits during the run: far above what any run submits, so none is ever refused
LIMITS_ENV = {
    "ATELIER_API_RATE_LIMIT": "1000000/second",
    "ATELIER_API_DAILY_QUOTA": "100000000",
    "ATELIER_API_LISTING_QUEUE_BOUND": "100000000",
}


@dataclass(frozen=True)
class Rig:
    """A running API on a private namespace: its URL, one key per client, the settings a direct
    ``Producer`` uses for the same namespace."""

    url: str
    tokens: list[str]
    settings: WorkerSettings
    #: the API's process, for its CPU time (``bench.api.load``)
    api_pid: int | None = None
    #: more APIs on the same namespace and keys, by name: each a rig of its own (``variants``)
    variants: dict[str, Rig] = field(default_factory=dict)


@contextlib.contextmanager
def running_api(
    *, clients: int, workdir: Path, variants: Mapping[str, Mapping[str, str]] | None = None
) -> Iterator[Rig]:
    """Start the API on a private namespace with a migrated key store and ``clients`` keys (each
    may submit listings); stop it and remove everything on leaving. ``variants``: more APIs
    beside it, by name, each with these environment variables on top (an A/B of a setting)."""
    settings = WorkerSettings(_env_file=None, **namespace("bench-api"))  # type: ignore[call-arg]
    with contextlib.ExitStack() as leaving:
        leaving.callback(remove_namespace, settings)
        database = Database(
            leaving.enter_context(
                scratch_database(DatabaseSettings().database_url.get_secret_value(), prefix="atelier_bench")
            ),
            SecretStr(secrets.token_urlsafe(32)),
        )
        migrate_key_store(database)
        tokens = [
            create_key(database, REQUESTER, scopes=[Scope.SUBMIT_LISTINGS, Scope.READ], name=f"client-{i}")
            for i in range(clients)
        ]
        started: dict[str, ApiServer] = {}
        for name, env in {"api": {}, **(variants or {})}.items():
            api = ApiServer(
                settings=settings,
                log_path=workdir / "logs" / f"{name}.log",
                database_url=database.url,
                key_pepper=database.pepper,
                env={**LIMITS_ENV, **env},
            )
            leaving.callback(api.stop)
            api.start()
            started[name] = api
        main = started.pop("api")
        others = {
            name: Rig(url=api.url, tokens=tokens, settings=settings, api_pid=api.pid)
            for name, api in started.items()
        }
        yield Rig(url=main.url, tokens=tokens, settings=settings, api_pid=main.pid, variants=others)
