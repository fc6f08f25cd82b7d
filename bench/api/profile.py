"""``python -m bench.api.profile [--submits N]``: where the API's CPU goes on a submit, by py-spy.

The app is built in this process on the machine's Redis, RabbitMQ and PostgreSQL (a private
namespace and a scratch key store, removed afterwards), with the load benchmark's limits
(``bench.api.rig``), and driven over ASGI, one ``POST /v1/listings`` after another: no socket, no
HTTP parsing (uvicorn's share of a real server's CPU) and no client. ``py-spy record --gil``
samples whichever thread holds the interpreter lock, so the samples are the Python CPU time of
the event loop and the submit threads together; each is charged to the first of :data:`BUCKETS` its
stack passes through. Submits come one at a time, so each is the only request in flight and runs
inline on the event loop (``api.threads``), as at one client in the load benchmark. Writes
``bench/api/profile.json`` (the CPU per submit, measured without the profiler, and each bucket's
share), which ``docs/benchmarks/api.md`` shows.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

RESULT = Path(__file__).parent / "profile.json"
#: py-spy's name of a plain submit's handler (``api.routes.submit.plain_submit``)
SHORTCUT_FRAME: Final = "plain_submit.<locals>.make.<locals>.answer"
#: what a sample is charged to: the first bucket whose frames its stack holds, in this order
BUCKETS: Final = (
    (
        "Producer: record and publish (the core a direct submit runs; "
        "the rate and quota ride in its record script)",
        ("Producer._enqueue",),
    ),
    ("Producer.status: a job read back (now only for an idempotent replay)", ("Producer.status",)),
    ("validation and the job resource, in the submit thread", ("_accept_listing",)),
    ("rate limit in a round trip of its own (only off the plain path)", ("KeyLimits.count",)),
    ("key check (from the cache)", ("authenticated",)),
    (
        "request body parsing and validation",
        ("request_body_to_args", "BaseModel.model_validate", "loads", "Request.body"),
    ),
    ("FastAPI's dependency solving, the rest", ("solve_dependencies",)),
    (
        "thread hand-off (to a submit thread and back; none when the submit runs inline)",
        ("in_submit_thread", "BlockingThreads.run", "BlockingThreads._serve", "_settle", "run_in_threadpool"),
    ),
    (
        "response serialization and sending",
        ("serialize_response", "Response.__call__", "TypeAdapter.dump_json"),
    ),
    (
        "the submit shortcut, the rest (headers, admission, the answer's headers)",
        (SHORTCUT_FRAME,),
    ),
    (
        "the shortcut's front (headers and body read from ASGI, the answer sent, metrics)",
        ("ShortcutFront._shortcut",),
    ),
    ("middleware, routing and the event loop, the rest", ("drive",)),
)
#: the frames that mark a sample as the submit path's (setup and teardown are left out): the
#: driver on the event loop, the submit threads (``api.threads``) and FastAPI's thread pool
#: (anyio's ``WorkerThread``, where the listing queue's depth is read)
PATH_FRAMES: Final = frozenset({"drive", "BlockingThreads._serve", "WorkerThread.run"})


def listing_body(n: int) -> bytes:
    return json.dumps(
        {
            "kind": "listing",
            "listing_id": f"SKU-PROFILE-{n}",
            "attributes": {"category": "t_shirt", "colour": "red"},
            "variants": 1,
        }
    ).encode()


async def drive(app: Any, token: str, first: int, count: int) -> None:
    """``count`` submits through ``app``'s ASGI interface, one after another."""
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")]
    for n in range(first, first + count):
        body = listing_body(n)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/listings",
            "raw_path": b"/v1/listings",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive(messages: list[dict[str, Any]] = messages) -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # no disconnect while the answer is written
            raise AssertionError

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 202:
            raise RuntimeError(f"submit {n}: {sent[0]['status']} {sent[-1].get('body', b'')[:300]!r}")


def run_submits(submits: int) -> float:
    """Build the app on a private namespace and drive it; CPU ms per submit of a second pass
    (the first warms connections and caches)."""
    from api.app import create_app
    from api.keys.model import Scope
    from api.keys.settings import DatabaseSettings
    from api.keys.store import KeyStore
    from api.settings import ApiSettings
    from bench.api.rig import LIMITS_ENV, REQUESTER
    from embedded.namespace import namespace, remove_namespace
    from embedded.postgres import scratch_database
    from embedded.up import Database, create_key, migrate_key_store
    from producer.client import Producer

    limits: dict[str, Any] = {
        name.removeprefix("ATELIER_").lower(): value for name, value in LIMITS_ENV.items()
    }
    # the environment's services (ApiSettings()), on a private namespace, with the benchmark's limits
    settings = ApiSettings.model_validate(
        {**ApiSettings().model_dump(), **namespace("bench-api-profile"), **limits}
    )
    server = DatabaseSettings().database_url.get_secret_value()
    with scratch_database(server, prefix="atelier_bench") as url:
        database = Database(url, SecretStr(secrets.token_urlsafe(32)))
        migrate_key_store(database)
        token = create_key(database, REQUESTER, scopes=[Scope.SUBMIT_LISTINGS], name="profile")
        keys = KeyStore(url, pepper=database.pepper, cache_s=DatabaseSettings().key_cache_s)
        producer = Producer(settings)
        try:
            app = create_app(producer=producer, keys=keys, settings=settings)

            async def both_passes() -> float:
                await drive(app, token, 0, submits)
                began = time.process_time()
                await drive(app, token, submits, submits)
                return (time.process_time() - began) * 1000 / submits

            return asyncio.run(both_passes())
        finally:
            producer.close()
            keys.close()
            remove_namespace(settings)


def shares(raw: str) -> tuple[dict[str, float], int]:
    """Each bucket's share (%) of the submit path's samples in py-spy's raw output, and their count."""
    counted: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = {re.sub(r" \(.*", "", frame) for frame in stack.split(";")}
        if not frames & PATH_FRAMES:
            continue
        bucket = next((name for name, marks in BUCKETS if frames.intersection(marks)), BUCKETS[-1][0])
        counted[bucket] += int(count)
    total = sum(counted.values())
    return {name: round(100 * counted[name] / total, 1) if total else 0.0 for name, _ in BUCKETS}, total


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed (pip install -e '.[dev]')")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api.profile", description=__doc__)
    parser.add_argument("--submits", type=int, default=1500, help="submits per pass (two passes)")
    parser.add_argument("--output", type=Path, default=RESULT)
    parser.add_argument("--drive", type=Path, help=argparse.SUPPRESS)  # the child: where its CPU goes
    args = parser.parse_args(argv)
    if args.drive is not None:
        args.drive.write_text(json.dumps({"cpu_ms_per_submit": run_submits(args.submits)}))
        return 0
    load_average = round(os.getloadavg()[0], 2)  # other work on the machine skews the shares
    with tempfile.TemporaryDirectory(prefix="bench-api-profile-") as workdir:
        samples, measured = Path(workdir) / "samples.txt", Path(workdir) / "cpu.json"
        child = [
            sys.executable,
            "-m",
            "bench.api.profile",
            "--submits",
            str(args.submits),
            "--drive",
            str(measured),
        ]
        record = [py_spy(), "record", "--gil", "--rate", "400", "--format", "raw", "--output", str(samples)]
        subprocess.run([*record, "--", *child], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
        spent, total = shares(samples.read_text())
        cpu = json.loads(measured.read_text())["cpu_ms_per_submit"]
    result = {
        "command": "python -m bench.api.profile",
        "submits": args.submits,
        "note": "CPU per submit measured under py-spy (its sampling costs a little); shares of the "
        "Python CPU samples (py-spy --gil) of the event loop and the submit threads",
        "load_average": load_average,
        "cpu_ms_per_submit": round(cpu, 3),
        "samples": total,
        "shares_percent": spent,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
