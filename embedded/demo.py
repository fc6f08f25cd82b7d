"""The embedded default: the whole pipeline on one machine with no services, in one command.

``python -m embedded.demo`` (what ``scripts/run.sh`` runs) starts, as child processes stopped
again at the end (also on Ctrl-C or an error):

- Triton serving ``triton_models/``, a SeaweedFS S3 server and a private Redis;
- a broker: RabbitMQ when ``ATELIER_BROKER_URL`` names one (queues private to this run, deleted
  at the end), else kombu's ``filesystem://`` in a folder of this run;
- three Celery workers started as an operator would (``celery -A worker.app worker -Q ...``),
  one per queue: listing, try-on, callbacks;
- a callback receiver (an HTTP server on a thread) that verifies every signature.

It submits listing and try-on examples through ``producer.Producer`` (one try-on wears an image
of a listing job, submitted once that job succeeded; the others name category and colour),
waits with a progress bar, prints where each image is (bucket/key and presigned link) and which
callbacks arrived, and writes a contact sheet of every image (``out/demo/contact_sheet.png``).
Logs of every process stay in ``.atelier/demo/logs/``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.contracts.jobs import JobEventType, JobRecord, JobState
from core.worker_settings import new_webhook_secret
from embedded.receiver import CallbackReceiver, Received
from embedded.stack import Pool, Stack
from embedded.triton import DEFAULT_REPOSITORY
from producer.client import Producer

_ROOT = Path(__file__).resolve().parent.parent

#: the run's state (broker folder, S3 data, logs); emptied at the start of each run
STATE_DIR = _ROOT / ".atelier" / "demo"
#: where the contact sheet and a JSON summary are written
DEFAULT_OUT_DIR = _ROOT / "out" / "demo"
#: side of one image on the contact sheet, and the width of its label column
TILE = 128
LABEL_WIDTH = 260

#: the two requesters: one signs with its own secret, one with the global secret
SHOP, APP = "shop-eu", "tryon-app"
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
    """One submitted (or waiting) example."""

    label: str
    request: dict[str, Any]
    job_id: str | None = None
    waits_for: str | None = None  #: the listing id whose job must succeed first
    record: JobRecord | None = None


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

    def tryon(ref: str, garment: dict[str, Any], size: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "tryon",
            "requester": APP,
            "shopper_ref": ref,
            "measurements": body,
            "garment": garment,
            "size": size,
            "seed": 21,
            "callback": {"url": receiver.url_for(APP), "events": ["job.succeeded", "job.failed"]},
        }

    jobs.append(
        Job(
            f"try-on anon-1, size M\nwears {GARMENT_LISTING} #0",
            tryon("anon-1", {"source": "listing", "job_id": "", "variant": 0}, "M", BODY),
            waits_for=GARMENT_LISTING,
        )
    )
    jobs.append(
        Job(
            "try-on anon-2, size S\ndress, purple (generated)",
            tryon(
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
            tryon("anon-3", {"source": "attributes", "category": "trouser", "colour": "black"}, "XL", BODY),
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
def running_stack(console: Console) -> Iterator[Stack]:
    """Start every part of the run (``embedded.stack.Stack``; stopped again on leaving, whatever
    happens): Redis, S3 and Triton, then the three workers."""
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
        with console.status("starting Redis, S3 and Triton"):
            started = time.monotonic()
            leaving.enter_context(stack)
        assert stack.triton is not None and stack.s3 is not None and stack.redis is not None
        console.print(
            f"[green]started[/] Triton ({stack.triton.grpc_url}), S3 ({stack.s3.endpoint}), "
            f"Redis ({stack.redis.url}) in {time.monotonic() - started:.0f} s"
        )
        with console.status("starting the workers (listing, try-on, callbacks)"):
            started = time.monotonic()
            stack.start_workers(Pool("listing"), Pool("tryon"), Pool("callbacks"))
        broker = "RabbitMQ" if "amqp" in stack.settings.broker_url.get_secret_value() else "filesystem://"
        console.print(f"[green]started[/] 3 Celery workers on {broker} in {time.monotonic() - started:.0f} s")
        yield stack


def run_jobs(producer: Producer, jobs: list[Job], console: Console, timeout_s: float) -> None:
    """Submit every job (a waiting one once its listing succeeded); wait until all have ended."""
    by_listing: dict[str, Job] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout_s
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("jobs", total=len(jobs))
        for job in jobs:
            if job.waits_for is None:
                job.job_id = producer.submit(job.request)
                if job.request["kind"] == "listing":
                    by_listing[job.request["listing_id"]] = job
        while True:
            for job in jobs:
                if job.job_id is None and job.waits_for is not None:
                    garment = by_listing[job.waits_for].record
                    if garment is not None and garment.state is JobState.SUCCEEDED:
                        job.request["garment"]["job_id"] = garment.job_id
                        job.job_id = producer.submit(job.request)
                if job.job_id is not None:
                    job.record = producer.status(job.job_id)
            done = sum(1 for job in jobs if job.record is not None and job.record.state.terminal)
            states = ", ".join(
                f"{state.value} {n}"
                for state in JobState
                if (n := sum(1 for job in jobs if job.record is not None and job.record.state is state))
            )
            progress.update(bar, completed=done, description=f"jobs ({states or 'submitting'})")
            if done == len(jobs):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still running after {timeout_s:.0f} s")
            time.sleep(0.2)


def expected_callbacks(jobs: list[Job]) -> int:
    """How many callbacks the jobs' subscriptions and outcomes call for."""
    count = 0
    for job in jobs:
        assert job.record is not None
        happened = {JobEventType.QUEUED, EVENT_OF_END[job.record.state]}
        if job.record.attempts:
            happened.add(JobEventType.STARTED)
        count += len({e.value for e in happened} & set(job.request["callback"]["events"]))
    return count


EVENT_OF_END = {
    JobState.SUCCEEDED: JobEventType.SUCCEEDED,
    JobState.FAILED: JobEventType.FAILED,
    JobState.CANCELED: JobEventType.CANCELED,
}


def print_results(jobs: list[Job], console: Console) -> None:
    """Where each image is: a table of jobs and keys, then one presigned link per image."""
    bucket = next((i.bucket for job in jobs if job.record for i in job.record.results), "")
    table = Table(title=f"Results in bucket {bucket!r}")
    for column in ("job", "state", "model, seed", "objects (keys)"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        record = job.record
        assert record is not None
        made = f"{record.model} v{record.model_version}\nseed {record.seed}" if record.model else ""
        keys = "\n".join(image.key for image in record.results) or (
            record.error.message if record.error else ""
        )
        table.add_row(f"{job.label}\n[dim]{record.job_id}[/]", record.state.value, made, keys)
    console.print(table)
    console.print("[bold]Presigned links[/] (GET, valid 1 h while the demo's S3 server runs):")
    for job in jobs:
        for image in job.record.results if job.record else []:
            console.print(f"{image.bucket}/{image.key}\n  {image.url}", soft_wrap=True, highlight=False)


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
    columns = max(len(job.record.results) for job in jobs if job.record is not None)
    sheet = Image.new("RGB", (LABEL_WIDTH + columns * TILE, len(jobs) * TILE), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    with httpx.Client(timeout=10) as client:
        for row, job in enumerate(jobs):
            assert job.record is not None
            top = row * TILE
            draw.multiline_text(
                (8, top + 8), f"{job.label}\n{job.record.state.value}", fill="black", font=font
            )
            for image in job.record.results:
                response = client.get(image.url)
                response.raise_for_status()
                with Image.open(io.BytesIO(response.content)) as picture:
                    tile = picture.convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS)
                sheet.paste(tile, (LABEL_WIDTH + image.variant * TILE, top))
            draw.line([(0, top + TILE - 1), (sheet.width, top + TILE - 1)], fill=(220, 220, 220))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def write_summary(jobs: list[Job], received: list[Received], path: Path) -> None:
    summary = {
        "jobs": [job.record.model_dump(mode="json") for job in jobs if job.record is not None],
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
    with running_stack(console) as stack:
        receiver = stack.receiver
        assert receiver is not None
        jobs = examples(receiver)
        run_jobs(stack.producer, jobs, console, timeout_s)
        want = expected_callbacks(jobs)
        with console.status(f"waiting for {want} callbacks"):
            receiver.wait_for(lambda got: len(got) >= want, timeout_s=30)
        received = receiver.received
        print_results(jobs, console)
        print_callbacks(received, console)
        sheet = contact_sheet(jobs, out_dir / "contact_sheet.png")
        write_summary(jobs, received, out_dir / "results.json")
        failed = [job for job in jobs if job.record is None or job.record.state is not JobState.SUCCEEDED]
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
