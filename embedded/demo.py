"""The embedded default: the whole pipeline on one machine with no services, in one command.

``python -m embedded.demo`` (what ``scripts/run.sh`` runs) starts, as child processes stopped
again at the end (also on Ctrl-C or an error):

- Triton serving ``triton_models/``, a SeaweedFS S3 server and a private Redis;
- a broker: RabbitMQ when ``ATELIER_BROKER_URL`` names one (queues private to this run, deleted
  at the end), else kombu's ``filesystem://`` in a folder of this run;
- the key store: the private PostgreSQL cluster ``atelier up`` would start (``embedded.up``:
  ``launch_database``; its data kept in ``.atelier/demo-postgres``, so later runs skip
  ``initdb``), unless ``ATELIER_DATABASE_URL`` names a server;
- three Celery workers started as an operator would (``celery -A worker.app worker -Q ...``),
  one per queue: listing, try-on, callbacks;
- the HTTP API (``atelier api serve``), with a fresh key per requester: the shop's (listings,
  try-ons, read) and the try-on app's publishable one (try-ons and read only);
- a callback receiver (an HTTP server on a thread) that verifies every signature.

It submits the listing and try-on examples as any client would, over HTTP with ``httpx``
(``POST /v1/listings``, ``POST /v1/tryons`` with an ``Idempotency-Key``), never through the
Python ``Producer``: the requester comes from the key. Each job is followed on its Server-Sent
Events stream (``GET /v1/jobs/{id}/events``) and read once ended (``GET /v1/jobs/{id}``, links
signed on the read). One try-on wears an image of the shop's own listing job, submitted once
that job succeeded (a garment from a listing must name a job of the same requester); the others
name category and colour. It waits with a progress bar, prints where each image is (bucket/key
and presigned link), the events streamed and the callbacks that arrived, and writes a contact
sheet of every image (``out/demo/contact_sheet.png``). Logs of every process stay in
``.atelier/demo/logs/``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import httpx
import typer
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.keys.model import Scope
from core.contracts.jobs import JobEventType, JobState
from core.worker_settings import new_webhook_secret
from embedded.process import DEFAULT_STATE_DIR
from embedded.receiver import CallbackReceiver, Received
from embedded.stack import Pool, Stack
from embedded.triton import DEFAULT_REPOSITORY
from embedded.up import create_key, launch_database, migrate_key_store

_ROOT = Path(__file__).resolve().parent.parent

#: the run's state (broker folder, S3 data, logs); emptied at the start of each run
STATE_DIR = DEFAULT_STATE_DIR / "demo"
#: the private PostgreSQL cluster's data and key pepper; kept between runs (``initdb`` once)
DATABASE_DIR = DEFAULT_STATE_DIR / "demo-postgres"
#: seconds one HTTP call to the API may take (an SSE stream is reconnected after its end)
HTTP_TIMEOUT_S = 30.0
#: where the contact sheet and a JSON summary are written
DEFAULT_OUT_DIR = _ROOT / "out" / "demo"
#: side of one image on the contact sheet, and the width of its label column
TILE = 128
LABEL_WIDTH = 260

#: the two requesters: one signs with its own secret, one with the global secret
SHOP, APP = "shop-eu", "tryon-app"
#: what each requester's key may do: the shop's is a server key; the app's is publishable (the
#: kind a shopper's browser holds)
KEYS: dict[str, tuple[list[Scope], bool]] = {
    SHOP: ([Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ], False),
    APP: ([Scope.SUBMIT_TRYONS, Scope.READ], True),
}
#: the submit route of each kind
ROUTES = {"listing": "/v1/listings", "tryon": "/v1/tryons"}
ALL_EVENTS = [e.value for e in JobEventType]
BODY = {"unit_system": "metric", "height": 172, "weight": 68, "chest": 94, "waist": 78, "hips": 98}
IMPERIAL_BODY = {"unit_system": "imperial", "height": 64, "weight": 130, "chest": 35, "waist": 28, "hips": 38}

#: listing examples: (listing id, category, colour (a name or #rrggbb), seed or None: derived)
LISTINGS = [
    ("SKU-TEE-RED", "t_shirt", "red", 11),
    ("SKU-DRESS-NAVY", "dress", "navy", 12),
    ("SKU-COAT-GREEN", "coat", "#2e8b57", 13),
    ("SKU-SNEAKER-WHITE", "sneaker", "white", 14),
    ("SKU-BAG-BROWN", "bag", "brown", None),
    ("SKU-TROUSER-BLUE", "trouser", "blue", 16),
]
#: the listing whose first image the first try-on wears
GARMENT_LISTING = "SKU-TEE-RED"


@dataclass
class Job:
    """One submitted (or waiting) example: its request, then what the API says of it."""

    label: str
    request: dict[str, Any]
    job_id: str | None = None
    waits_for: str | None = None  #: the listing id whose job must succeed first
    state: JobState | None = None  #: as last streamed
    events: list[str] = field(default_factory=list)  #: SSE event types, in order
    resource: dict[str, Any] | None = None  #: ``GET /v1/jobs/{id}`` once ended

    @property
    def ended(self) -> bool:
        return self.resource is not None

    @property
    def final_state(self) -> JobState:
        assert self.resource is not None
        return JobState(self.resource["state"])


def examples(receiver: CallbackReceiver) -> list[Job]:
    """The listing and try-on requests the demo submits."""
    jobs = []
    for listing_id, category, colour, seed in LISTINGS:
        request: dict[str, Any] = {
            "kind": "listing",
            "requester": SHOP,
            "listing_id": listing_id,
            "attributes": {"category": category, "colour": colour, "style": {"season": "demo"}},
            "variants": 4,
            "output": {"format": "webp" if category == "dress" else "png", "size": 256},
            "callback": {"url": receiver.url_for(SHOP), "events": ALL_EVENTS},
            "idempotency_key": f"demo-{listing_id.lower()}",
        }
        if seed is not None:
            request["seed"] = seed
        jobs.append(Job(f"{listing_id}\n{category}, {colour}", request))

    def tryon(
        requester: str, ref: str, garment: dict[str, Any], size: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "kind": "tryon",
            "requester": requester,
            "shopper_ref": ref,
            "measurements": body,
            "garment": garment,
            "size": size,
            "seed": 21,
            "callback": {"url": receiver.url_for(requester), "events": ["job.succeeded", "job.failed"]},
        }

    jobs.append(
        Job(
            f"try-on anon-1, size M\nwears {GARMENT_LISTING} #0",
            tryon(SHOP, "anon-1", {"source": "listing", "job_id": "", "variant": 0}, "M", BODY),
            waits_for=GARMENT_LISTING,
        )
    )
    jobs.append(
        Job(
            "try-on anon-2, size S\ndress, purple (generated)",
            tryon(
                APP,
                "anon-2",
                {"source": "attributes", "category": "dress", "colour": "purple"},
                "S",
                IMPERIAL_BODY,
            ),
        )
    )
    jobs.append(
        Job(
            "try-on anon-3, size XL\ntrouser, black (generated)",
            tryon(
                APP, "anon-3", {"source": "attributes", "category": "trouser", "colour": "black"}, "XL", BODY
            ),
        )
    )
    return jobs


def demo_settings() -> dict[str, Any]:
    """Settings of the run on top of the stack's: the requesters' secrets, quick retries, links
    valid for an hour."""
    return {
        "presign_expiry_s": 3600,
        "callback_secret": new_webhook_secret(),
        "callback_secrets": {SHOP: [new_webhook_secret()]},
        "callback_retry_schedule_s": [0.5, 1.0, 2.0],
        "job_retry_backoff_base_s": 0.5,
    }


@contextlib.contextmanager
def running_stack(console: Console) -> Iterator[tuple[Stack, dict[str, str]]]:
    """Start every part of the run (``embedded.stack.Stack``; stopped again on leaving, whatever
    happens): PostgreSQL, Redis, S3 and Triton, then the three workers, then the API; with the
    secret token of each requester's fresh key."""
    if STATE_DIR.exists():
        shutil.rmtree(STATE_DIR)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # Triton's python backend runs torch
    stack = Stack(
        tag="demo",
        workdir=STATE_DIR,
        triton_repository=DEFAULT_REPOSITORY,
        redis="private",
        broker_url=os.environ.get("ATELIER_BROKER_URL") or "filesystem://",
        settings=demo_settings(),
    )
    with contextlib.ExitStack() as leaving:
        with console.status("starting PostgreSQL, Redis, S3 and Triton"):
            started = time.monotonic()
            database, postgres = launch_database(
                DATABASE_DIR, log_path=STATE_DIR / "logs" / "postgres.log", leaving=leaving
            )
            leaving.enter_context(stack)  # stopped before the database: the API is the stack's
            if postgres is not None:
                postgres.wait_ready()
        assert stack.triton is not None and stack.s3 is not None and stack.redis is not None
        console.print(
            f"[green]started[/] Triton ({stack.triton.grpc_url}), S3 ({stack.s3.endpoint}), "
            f"Redis ({stack.redis.url}), PostgreSQL ({'private' if postgres else 'ATELIER_DATABASE_URL'}) "
            f"in {time.monotonic() - started:.0f} s"
        )
        with console.status("starting the workers (listing, try-on, callbacks)"):
            started = time.monotonic()
            stack.start_workers(Pool("listing"), Pool("tryon"), Pool("callbacks"))
        broker = "RabbitMQ" if "amqp" in stack.settings.broker_url.get_secret_value() else "filesystem://"
        console.print(f"[green]started[/] 3 Celery workers on {broker} in {time.monotonic() - started:.0f} s")
        with console.status("starting the HTTP API; a key per requester"):
            started = time.monotonic()
            migrate_key_store(database)
            tokens = {
                requester: create_key(
                    database, requester, scopes=scopes, publishable=publishable, name="demo"
                )
                for requester, (scopes, publishable) in KEYS.items()
            }
            api = stack.start_api(database_url=database.url, key_pepper=database.pepper)
        console.print(
            f"[green]started[/] the API ({api.url}) with a key for {', '.join(tokens)} "
            f"in {time.monotonic() - started:.0f} s"
        )
        yield stack, tokens


class ApiClient:
    """The demo's HTTP client: one keep-alive connection pool, a bearer token per requester."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)
        self.tokens = tokens

    def auth(self, requester: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[requester]}"}

    def submit(self, request: dict[str, Any]) -> str:
        """``POST /v1/listings`` or ``/v1/tryons`` with the requester's key: the job id. The body
        leaves ``requester`` out (it is the key's) and the idempotency key goes in the header."""
        body = {k: v for k, v in request.items() if k not in ("requester", "idempotency_key")}
        headers = self.auth(request["requester"])
        if request.get("idempotency_key"):
            headers["Idempotency-Key"] = request["idempotency_key"]
        response = self.http.post(ROUTES[request["kind"]], json=body, headers=headers)
        if response.status_code not in (200, 202):
            raise RuntimeError(f"submit refused: {response.status_code} {response.text[:500]}")
        job_id: str = response.json()["id"]
        return job_id

    def follow(self, job: Job) -> None:
        """Stream the job's events until its terminal one (reconnecting with ``Last-Event-ID``
        if a stream ends early), then read the job."""
        assert job.job_id is not None
        requester = job.request["requester"]
        last_id: str | None = None
        while job.state is None or not job.state.terminal:
            headers = self.auth(requester) | ({"Last-Event-ID": last_id} if last_id else {})
            with self.http.stream("GET", f"/v1/jobs/{job.job_id}/events", headers=headers) as stream:
                stream.raise_for_status()
                for line in stream.iter_lines():
                    name, _, value = line.partition(":")
                    value = value.strip()
                    if name == "id":
                        last_id = value
                    elif name == "event":
                        job.events.append(value)
                        job.state = STATE_OF_EVENT.get(JobEventType(value), JobState.QUEUED)
        response = self.http.get(f"/v1/jobs/{job.job_id}", headers=self.auth(requester))
        response.raise_for_status()
        job.resource = response.json()

    def close(self) -> None:
        self.http.close()


def run_jobs(client: ApiClient, jobs: list[Job], console: Console, timeout_s: float) -> None:
    """Submit every job over HTTP (a waiting one once its listing succeeded) and follow each on
    its event stream (a thread per job); wait until all have ended."""
    by_listing: dict[str, Job] = {}
    followers: list[threading.Thread] = []
    failures: list[BaseException] = []

    def follow(job: Job) -> None:
        try:
            client.follow(job)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    def submit(job: Job) -> None:
        job.job_id = client.submit(job.request)
        thread = threading.Thread(target=follow, args=(job,), name=f"follow-{job.job_id}", daemon=True)
        thread.start()
        followers.append(thread)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout_s
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("jobs", total=len(jobs))
        for job in jobs:
            if job.waits_for is None:
                submit(job)
                if job.request["kind"] == "listing":
                    by_listing[job.request["listing_id"]] = job
        while True:
            if failures:
                raise RuntimeError(f"following a job failed: {failures[0]!r}") from failures[0]
            for job in jobs:
                if job.job_id is None and job.waits_for is not None:
                    garment = by_listing[job.waits_for]
                    if garment.ended and garment.final_state is JobState.SUCCEEDED:
                        job.request["garment"]["job_id"] = garment.job_id
                        submit(job)
            done = sum(1 for job in jobs if job.ended)
            states = ", ".join(
                f"{state.value} {n}"
                for state in JobState
                if (n := sum(1 for job in jobs if job.state is state))
            )
            progress.update(bar, completed=done, description=f"jobs ({states or 'submitting'})")
            if done == len(jobs):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still running after {timeout_s:.0f} s")
            time.sleep(0.1)


def expected_callbacks(jobs: list[Job]) -> int:
    """How many callbacks the jobs' subscriptions and outcomes call for."""
    count = 0
    for job in jobs:
        assert job.resource is not None
        happened = {JobEventType.QUEUED, EVENT_OF_END[job.final_state]}
        if job.resource["attempts"]:
            happened.add(JobEventType.STARTED)
        count += len({e.value for e in happened} & set(job.request["callback"]["events"]))
    return count


EVENT_OF_END = {
    JobState.SUCCEEDED: JobEventType.SUCCEEDED,
    JobState.FAILED: JobEventType.FAILED,
    JobState.CANCELED: JobEventType.CANCELED,
}
#: the state each streamed event means (``job.queued``: queued, also on a retry)
STATE_OF_EVENT = {event: state for state, event in EVENT_OF_END.items()} | {
    JobEventType.QUEUED: JobState.QUEUED,
    JobEventType.STARTED: JobState.RUNNING,
}


def object_path(url: str) -> str:
    """``bucket/key`` of a presigned link (the S3 server is addressed path-style)."""
    return unquote(urlsplit(url).path.lstrip("/"))


def print_results(jobs: list[Job], console: Console) -> None:
    """Where each image is: a table of jobs, the events streamed and the objects (bucket/key),
    then one presigned link per image (signed by the API on the read)."""
    table = Table(title="Jobs, as GET /v1/jobs/{id} and its event stream tell")
    for column in ("job", "state", "model, seed", "events (SSE)", "objects (bucket/key)"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        resource = job.resource
        assert resource is not None
        made = (
            f"{resource['model']} v{resource['model_version']}\nseed {resource['seed']}"
            if resource["model"]
            else ""
        )
        error = resource.get("error") or {}
        keys = "\n".join(object_path(output["url"]) for output in resource["outputs"]) or error.get(
            "message", ""
        )
        events = "\n".join(job.events)
        table.add_row(f"{job.label}\n[dim]{resource['id']}[/]", resource["state"], made, events, keys)
    console.print(table)
    console.print("[bold]Presigned links[/] (GET, valid 1 h while the demo's S3 server runs):")
    for job in jobs:
        for output in job.resource["outputs"] if job.resource else []:
            console.print(f"{object_path(output['url'])}\n  {output['url']}", soft_wrap=True, highlight=False)


def print_callbacks(received: list[Received], console: Console) -> None:
    """The callbacks each job's requester got, in order of arrival, and whether each verified."""
    by_job: dict[str, list[Received]] = {}
    for item in sorted(received, key=lambda r: r.at):
        job_id = str(item.event.data.get("job_id")) if item.event else "(unverified)"
        by_job.setdefault(job_id, []).append(item)
    table = Table(
        title="Callbacks received (Standard Webhooks signatures checked by producer.webhook_verify)"
    )
    for column in ("job", "requester", "events, in order of arrival"):
        table.add_column(column, overflow="fold")
    for job_id, items in by_job.items():
        events = ", ".join(
            f"{i.event.type.value} [green]verified[/]" if i.event else f"[red]refused: {i.error}[/]"
            for i in items
        )
        table.add_row(job_id, items[0].requester, events)
    console.print(table)


def contact_sheet(jobs: list[Job], path: Path) -> Path:
    """One row per job: its label, then every image it made (fetched through its presigned link)."""
    columns = max(len(job.resource["outputs"]) for job in jobs if job.resource is not None)
    sheet = Image.new("RGB", (LABEL_WIDTH + columns * TILE, len(jobs) * TILE), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    with httpx.Client(timeout=10) as client:
        for row, job in enumerate(jobs):
            assert job.resource is not None
            top = row * TILE
            draw.multiline_text(
                (8, top + 8), f"{job.label}\n{job.resource['state']}", fill="black", font=font
            )
            for output in job.resource["outputs"]:
                response = client.get(output["url"])
                response.raise_for_status()
                with Image.open(io.BytesIO(response.content)) as picture:
                    tile = picture.convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS)
                sheet.paste(tile, (LABEL_WIDTH + output["variant"] * TILE, top))
            draw.line([(0, top + TILE - 1), (sheet.width, top + TILE - 1)], fill=(220, 220, 220))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def write_summary(jobs: list[Job], received: list[Received], path: Path) -> None:
    summary = {
        "jobs": [job.resource | {"events": job.events} for job in jobs if job.resource is not None],
        "callbacks": [
            {"path": r.path, "webhook-id": r.headers.get("webhook-id"), "verified": r.event is not None}
            for r in received
        ],
    }
    path.write_text(json.dumps(summary, indent=2))


def shown(path: Path) -> str:
    """``path`` relative to the checkout when inside it."""
    return str(path.relative_to(_ROOT)) if path.is_relative_to(_ROOT) else str(path)


def run(out_dir: Path, timeout_s: float, console: Console) -> None:
    began = time.monotonic()
    with running_stack(console) as (stack, tokens):
        receiver = stack.receiver
        assert receiver is not None and stack.api is not None
        jobs = examples(receiver)
        client = ApiClient(stack.api.url, tokens)
        try:
            run_jobs(client, jobs, console, timeout_s)
        finally:
            client.close()
        want = expected_callbacks(jobs)
        with console.status(f"waiting for {want} callbacks"):
            receiver.wait_for(lambda got: len(got) >= want, timeout_s=30)
        received = receiver.received
        print_results(jobs, console)
        print_callbacks(received, console)
        sheet = contact_sheet(jobs, out_dir / "contact_sheet.png")
        write_summary(jobs, received, out_dir / "results.json")
        failed = [job for job in jobs if not job.ended or job.final_state is not JobState.SUCCEEDED]
        refused = [item for item in received if item.event is None]
        console.print(
            f"\n{len(jobs) - len(failed)}/{len(jobs)} jobs succeeded, {len(received)}/{want} callbacks "
            f"received ({len(refused)} refused). Contact sheet: [bold]{shown(sheet)}[/], "
            f"summary: {shown(out_dir / 'results.json')}, logs: {shown(stack.logs)}/"
        )
        console.print("[dim]The presigned links work while the demo's S3 server runs; it stops now.[/]")
    console.print(f"stopped everything it started; {time.monotonic() - began:.0f} s in all")
    if failed or refused or len(received) < want:
        raise typer.Exit(1)


def main() -> None:
    app = typer.Typer(add_completion=False)

    @app.command()
    def demo(
        out_dir: Annotated[
            Path, typer.Option("--out", help="where the contact sheet goes")
        ] = DEFAULT_OUT_DIR,
        timeout_s: Annotated[float, typer.Option("--timeout", help="seconds the jobs may take")] = 300.0,
    ) -> None:
        """Run the pipeline on embedded services: submit examples, wait, show the results."""
        console = Console()
        # Ctrl-C (even if started with SIGINT ignored, e.g. in the background) and SIGTERM both
        # stop everything the demo started
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            run(out_dir.resolve(), timeout_s, console)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopped everything it started[/]")
            raise typer.Exit(130) from None

    app()


if __name__ == "__main__":
    main()
