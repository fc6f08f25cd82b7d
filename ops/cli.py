"""``atelier ops``: queues, workers, models, default model versions and a health check.

Added to ``atelier`` in ``producer.cli``. The work is in ``ops.broker`` (queues, workers),
``ops.checks`` (health) and ``ops.model_versions`` (Triton's index over HTTP, the defaults and
the versions' manifests in Redis); none needs the worker or a Triton client library. The S3
check needs the ``minio`` SDK (``pip install 'atelier[ops]'``): without it ``health`` stops with
one line saying so (``ops.extras``).
Settings come from ``ATELIER_*``, as the workers' do. Exit codes: 0 success, 1 a service is down
or a command failed, 2 invalid input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.errors import AtelierError, VersionRefused
from core.settings import AtelierSettings, ServiceSettings
from ops import checks, model_versions
from ops.broker import queue_stats, worker_stats

app = typer.Typer(
    name="ops", help="Operate a deployment: queues, workers, models, health.", no_args_is_help=True
)
out = Console()
# what goes to stderr is error text (which may hold brackets), never markup
err = Console(stderr=True, markup=False, highlight=False)

EXIT_FAILED, EXIT_INVALID = 1, 2

AsJson = Annotated[bool, typer.Option("--json", help="JSON instead of a table")]


def _service_settings() -> ServiceSettings:
    return ServiceSettings()


@app.command()
def queues(as_json: AsJson = False) -> None:
    """Messages ready and consumers of each queue, dead-letter queue included."""
    stats = queue_stats(AtelierSettings())
    if as_json:
        out.print_json(json.dumps([{**vars(s), "exists": s.exists} for s in stats]))
        return
    table = Table("queue", "name", "ready", "consumers")
    for s in stats:
        missing = "[red]not declared[/red]"
        table.add_row(s.role, s.name, missing if not s.exists else str(s.messages), str(s.consumers or 0))
    out.print(table)


@app.command()
def workers(
    as_json: AsJson = False,
    every: Annotated[bool, typer.Option("--all", help="every worker on the broker, not only ours")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for answers", min=0.1)] = 1.0,
) -> None:
    """Each worker that answers: its queues, running tasks and concurrency."""
    stats = worker_stats(AtelierSettings(), timeout_s=timeout, every=every)
    if as_json:
        out.print_json(json.dumps([vars(w) for w in stats]))
        return
    table = Table("worker", "queues", "pool", "concurrency")
    table.add_column("active", overflow="fold")
    for w in stats:
        concurrency = "-" if w.concurrency is None else str(w.concurrency)
        active = escape("\n".join(w.active)) or "-"
        table.add_row(escape(w.name), ", ".join(w.queues), w.pool, concurrency, active)
    out.print(table)
    out.print(f"{len(stats)} workers answered")


@app.command()
def models(as_json: AsJson = False) -> None:
    """Triton's models and versions with their state, and the default version of each."""

    settings = _service_settings()
    try:
        rows = model_versions.repository_index(settings)
    except AtelierError as error:
        err.print(f"Triton at {settings.triton_grpc_url}: {error.code}: {error.message}")
        raise typer.Exit(EXIT_FAILED) from None
    defaults = model_versions.default_versions(settings)
    if as_json:
        out.print_json(json.dumps({"models": [vars(r) for r in rows], "defaults": defaults}))
        return
    table = Table("model", "version", "state", "default", "reason")
    for r in rows:
        default = defaults.get(r.name)
        mark = "yes" if default is not None and str(default) == r.version else ""
        table.add_row(r.name, r.version, r.state, mark, escape(r.reason))
    out.print(table)


@app.command("default-version")
def default_version() -> None:
    """The default version of each model (when a request pins none)."""

    for model, version in model_versions.default_versions(_service_settings()).items():
        shown = str(version) if version is not None else "not set (ATELIER_*_MODEL_VERSION, else latest)"
        out.print(f"{model}: {shown}")


@app.command("set-default-version")
def set_default_version(
    model: Annotated[str, typer.Argument(help="product_cgan or tryon_cvae")],
    version: Annotated[
        str, typer.Argument(help="a version Triton has loaded and READY, with a registered manifest")
    ],
) -> None:
    """Make VERSION the default of MODEL for requests that pin none (workers see it within
    default_version_cache_s)."""

    try:
        number = model_versions.set_default_version(_service_settings(), model, version)
    except VersionRefused as error:
        err.print(str(error))
        raise typer.Exit(EXIT_INVALID) from None
    except AtelierError as error:
        err.print(f"{error.code}: {error.message}")
        raise typer.Exit(EXIT_FAILED) from None
    out.print(f"{model}: default version {number}")


@app.command("register-versions")
def register_versions(
    repository: Annotated[
        Path, typer.Option(help="the Triton model repository", exists=True, file_okay=False)
    ] = Path("triton_models"),
    replace: Annotated[
        bool,
        typer.Option(help="overwrite a version registered with another manifest (versions are immutable)"),
    ] = False,
) -> None:
    """Register every MODEL/VERSION/manifest.json of REPOSITORY, so requests are checked against
    the conditions of the version they run on; a version registered already is left as it is."""

    try:
        done = model_versions.register_versions(AtelierSettings(), repository, replace=replace)
    except VersionRefused as error:
        err.print(str(error))
        raise typer.Exit(EXIT_INVALID) from None
    except AtelierError as error:
        err.print(f"Redis: {error.code}: {error.message}")
        raise typer.Exit(EXIT_FAILED) from None
    for item in done:
        out.print(
            f"{item.model} version {item.version}: " + ("registered" if item.stored else "already registered")
        )
    out.print(f"{len(done)} versions found in {repository}")


@app.command("clear-default-version")
def clear_default_version(model: Annotated[str, typer.Argument(help="product_cgan or tryon_cvae")]) -> None:
    """Remove MODEL's default: requests that pin none run at the worker setting, else the latest."""

    try:
        removed = model_versions.clear_default_version(_service_settings(), model)
    except VersionRefused as error:
        err.print(str(error))
        raise typer.Exit(EXIT_INVALID) from None
    out.print(f"{model}: default " + ("cleared" if removed else "was not set"))


@app.command()
def health(as_json: AsJson = False) -> None:
    """Check the broker, Redis, Triton (HTTP, as /readyz does) and S3; exit 1 if any is down."""

    try:
        checks.require_sdks()
    except ImportError as error:  # its message names the extra (ops.extras)
        err.print(f"atelier ops health: {error}", soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    report = checks.run_checks(checks.service_probes(_service_settings()))
    if as_json:
        out.print_json(json.dumps(report.as_json()))
    else:
        table = Table("service", "status", "seconds", "detail")
        for check in report.checks:
            status = "[green]up[/green]" if check.ok else "[red]down[/red]"
            table.add_row(check.name, status, f"{check.seconds:.2f}", escape(check.detail))
        out.print(table)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)
