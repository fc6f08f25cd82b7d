"""``atelier``: submit jobs, follow them, cancel them, and export the request schemas.

Settings come from ``ATELIER_*`` environment variables (``core.settings``). Exit codes:
0 success, 1 a job or broker failure (or a batch with any bad line), 2 invalid input,
3 a watch that timed out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from api.cli import app as api_app
from api.keys.cli import app as keys_app
from api.review.cli import app as review_app
from core.contracts.bounds import MAX_MESSAGE_CHARS, excerpt
from core.contracts.jobs import JobEvent, JobRecord, JobState
from core.contracts.v1 import ListingImageRequest, TryOnRequest, parse_request, validate_request
from core.jobs import JobNotFound, StoreError, WatchTimeout, cancel_pending, cancel_refusal
from core.publish import PublishError
from embedded.up import app as up_app
from ops.cli import app as ops_app
from ops.dlq_cli import app as dlq_app
from producer.client import Producer

app = typer.Typer(name="atelier", help="Submit and follow Atelier image jobs.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(ops_app, name="ops")
app.add_typer(keys_app, name="keys")
app.add_typer(review_app, name="review")
app.add_typer(api_app, name="api")
app.add_typer(up_app, name="up")
out = Console()
err = Console(stderr=True)

#: models whose JSON Schema ``atelier schema`` writes, by file stem
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "ListingImageRequest": ListingImageRequest,
    "TryOnRequest": TryOnRequest,
    "JobRecord": JobRecord,
    "JobEvent": JobEvent,
}

#: CSV columns of a listing batch besides ``style.<name>`` (any number of them)
CSV_COLUMNS = (
    "requester",
    "listing_id",
    "category",
    "colour",
    "variants",
    "seed",
    "model_version",
    "format",
    "size",
    "callback_url",
    "callback_events",
    "idempotency_key",
)

EXIT_FAILED, EXIT_INVALID, EXIT_TIMEOUT = 1, 2, 3


class Kind(StrEnum):
    listing = "listing"
    tryon = "tryon"


def describe_errors(error: ValidationError, *, tagged: bool = False) -> list[str]:
    """One line per broken rule: ``field.path: message [rule]``, each path part and message cut
    to a short excerpt (``core.contracts.bounds``), so a megabyte key or value never reaches
    the terminal whole.

    ``tagged``: the error comes from :func:`parse_request`, whose paths start with the request
    kind; it is shown apart from the path (``(listing) attributes.colour: ...``).
    """
    lines = []
    for item in error.errors(include_url=False):
        loc = list(item["loc"])
        kind = f"({loc.pop(0)}) " if tagged and loc and loc[0] in ("listing", "tryon") else ""
        path = kind + (".".join(excerpt(str(part)) for part in loc) or "(request)")
        lines.append(f"{path}: {excerpt(item['msg'], limit=MAX_MESSAGE_CHARS)} [{excerpt(item['type'])}]")
    return lines


def _producer() -> Producer:
    return Producer()


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _load_one(json_text: str | None, file: Path | None) -> Any:
    if (json_text is None) == (file is None):
        raise _fail("give exactly one of --json or --file", EXIT_INVALID)
    try:
        return json.loads(file.read_text() if file is not None else str(json_text))
    except (OSError, json.JSONDecodeError) as error:
        raise _fail(f"cannot read the request: {error}", EXIT_INVALID) from None


@app.command()
def submit(
    kind: Annotated[Kind, typer.Argument(help="listing or tryon")],
    json_text: Annotated[str | None, typer.Option("--json", help="the request as JSON")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="a JSON file holding the request")] = None,
) -> None:
    """Submit one job; prints its id."""
    data = _load_one(json_text, file)
    try:
        request: ListingImageRequest | TryOnRequest = (
            validate_request(ListingImageRequest, data)
            if kind is Kind.listing
            else validate_request(TryOnRequest, data)
        )
    except ValidationError as error:
        for line in describe_errors(error):
            err.print(f"[red]invalid:[/red] {escape(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    with _producer() as producer:
        try:
            submission = producer.enqueue(request)
        except (PublishError, StoreError) as error:
            raise _fail(str(error)) from None
    out.print(submission.job_id, highlight=False, soft_wrap=True)
    if not submission.created:
        err.print("(an earlier job with this idempotency key; nothing new was queued)")


def csv_row_to_request(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as a listing request dict; empty cells are left out, ``style.x`` nests."""
    cells = {k.strip(): v.strip() for k, v in row.items() if k is not None and v is not None and v.strip()}
    unknown = [k for k in cells if k not in CSV_COLUMNS and not k.startswith("style.")]
    request: dict[str, Any] = {"kind": "listing"}
    for name in ("requester", "listing_id", "variants", "seed", "model_version", "idempotency_key"):
        if name in cells:
            request[name] = cells[name]
    attributes: dict[str, Any] = {k: cells[k] for k in ("category", "colour") if k in cells}
    style = {k.removeprefix("style."): v for k, v in cells.items() if k.startswith("style.")}
    if style:
        attributes["style"] = style
    request["attributes"] = attributes
    output = {k: cells[k] for k in ("format", "size") if k in cells}
    if output:
        request["output"] = output
    if "callback_url" in cells:
        callback: dict[str, Any] = {"url": cells["callback_url"]}
        if "callback_events" in cells:
            callback["events"] = cells["callback_events"].replace(";", " ").split()
        request["callback"] = callback
    for name in unknown:  # refused by the model (extra fields are forbidden), with the column named
        request[name] = cells[name]
    return request


def read_batch(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, request dict or JSON error)`` for each non-blank JSONL line or CSV row."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, csv_row_to_request(row)
        return
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield number, error


def _count_lines(path: Path) -> int:
    with path.open() as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if path.suffix.lower() == ".csv" else lines


@app.command("submit-batch")
def submit_batch(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL (any kind) or CSV (listings)")
    ],
    requester: Annotated[str | None, typer.Option(help="requester for lines that name none")] = None,
) -> None:
    """Submit every valid line of a batch; report each bad line with its field and rule."""
    submitted = duplicates = 0
    problems: list[str] = []
    bad_lines: set[int] = set()
    with (
        _producer() as producer,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress,
    ):
        task = progress.add_task("submitting", total=_count_lines(path))
        for number, data in read_batch(path):
            progress.advance(task)
            if isinstance(data, json.JSONDecodeError):
                problems.append(f"line {number}: not JSON: {data.msg} [json_invalid]")
                bad_lines.add(number)
                continue
            if requester is not None and isinstance(data, dict):
                data.setdefault("requester", requester)
            try:
                submission = producer.enqueue(parse_request(data))
            except ValidationError as error:
                problems.extend(f"line {number}: {line}" for line in describe_errors(error, tagged=True))
                bad_lines.add(number)
                continue
            except (PublishError, StoreError) as error:
                problems.append(f"line {number}: not queued: {error}")
                bad_lines.add(number)
                continue
            submitted += submission.created
            duplicates += not submission.created
    for problem in problems:
        err.print(f"[red]{escape(problem)}[/red]", highlight=False, soft_wrap=True)
    out.print(f"queued {submitted}, already queued (idempotency key) {duplicates}, refused {len(bad_lines)}")
    if problems:
        raise typer.Exit(EXIT_FAILED)


def record_table(record: JobRecord) -> Table:
    table = Table(title=f"job {record.job_id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows: list[tuple[str, Any]] = [
        ("state", record.state.value),
        ("kind", record.kind.value),
        ("requester", record.requester),
        ("subject", record.subject),
        ("created", record.created_at),
        ("started", record.started_at),
        ("finished", record.finished_at),
        ("attempts", record.attempts),
        ("model", f"{record.model or '-'} v{record.model_version or 'default'}"),
        ("seed", record.seed),
        ("idempotency key", record.idempotency_key),
        ("error", record.error and f"{record.error.code}: {record.error.message}"),
        ("callbacks", ", ".join(f"{k}: {v}" for k, v in record.callbacks.items()) or None),
    ]
    rows += [
        (f"image {image.variant}", f"s3://{image.bucket}/{image.key}\n{image.url}")
        for image in record.results
    ]
    for name, value in rows:
        table.add_row(name, Text("-" if value is None else str(value)))
    return table


@app.command()
def status(
    job_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="print the record as JSON")] = False,
) -> None:
    """Show a job's record."""
    with _producer() as producer:
        try:
            record = producer.status(job_id)
        except (JobNotFound, StoreError) as error:
            raise _fail(str(error)) from None
    if as_json:
        out.print_json(record.model_dump_json())
    else:
        out.print(record_table(record))


@app.command()
def watch(
    job_id: str,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 600.0,
) -> None:
    """Print each change of a job until it ends; exit 0 only if it succeeded."""
    last: JobRecord | None = None
    with _producer() as producer:
        try:
            for record in producer.watch(job_id, timeout):
                last = record
                detail = f" ({record.error.code}: {record.error.message})" if record.error else ""
                out.print(
                    f"{record.updated_at or record.created_at:%H:%M:%S} {record.state.value}{escape(detail)}",
                    highlight=False,
                    soft_wrap=True,
                )
        except WatchTimeout as error:
            raise _fail(str(error), EXIT_TIMEOUT) from None
        except (JobNotFound, StoreError) as error:
            raise _fail(str(error)) from None
    if last is not None:
        for image in last.results:
            out.print(f"  image {image.variant}: {image.url}", highlight=False, soft_wrap=True, markup=False)
    if last is None or last.state is not JobState.SUCCEEDED:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a job: a queued one at once; a running one stops at its next step, keeping none
    of its images."""
    with _producer() as producer:
        try:
            record = producer.cancel(job_id)
        except (JobNotFound, StoreError) as error:
            raise _fail(str(error)) from None
    reason = cancel_refusal(record)
    if reason is not None:
        raise _fail(f"job {job_id} not canceled: {reason}")
    said = "cancel requested: it stops at its next step" if cancel_pending(record) else "canceled"
    out.print(f"job {job_id} {said}", highlight=False, soft_wrap=True, markup=False)


@app.command()
def schema(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the *.json files")] = Path(
        "docs/schemas"
    ),
) -> None:
    """Write the JSON Schemas of the requests, the job record and the callback event."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem, model in SCHEMA_MODELS.items():
        path = out_dir / f"{stem}.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=False) + "\n")
        out.print(f"wrote {path}", highlight=False, soft_wrap=True, markup=False)


if __name__ == "__main__":  # pragma: no cover
    app()
