"""``atelier up`` as a user runs it: a subprocess that prints the API's URL and a key, serves a
listing submitted over real HTTP with that key until it succeeds, runs its printed ``curl`` lines as
printed, and on SIGINT stops every process it started."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from embedded.process import ROOT

#: seconds until the banner: RabbitMQ, PostgreSQL, Triton, S3, Redis, three pools, sweeper, API
UP_TIMEOUT_S = 240.0
#: seconds a listing job may take once submitted
JOB_TIMEOUT_S = 60.0
#: seconds ``atelier up`` may take to stop everything after SIGINT (warm worker shutdowns, broker)
STOP_TIMEOUT_S = 90.0

pytestmark = [pytest.mark.triton, pytest.mark.slow]


@dataclass
class Up:
    process: subprocess.Popen[str]
    lines: list[str]
    url: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def printed(self, prefix: str) -> str:
        (line,) = (line.strip() for line in self.lines if line.strip().startswith(prefix))
        return line


def read_lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (``/proc/<pid>/stat`` field 22): with the pid, it
    names one process even after the pid is reused; ``None`` once it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` (children in their own sessions too), by pid, with its start time."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found and (started := start_time(pid)) is not None:
                found[pid] = started
                frontier.append(pid)
    return found


@pytest.fixture
def up() -> Iterator[Up]:
    # a state folder the postgres system user can reach when we are root (not under pytest's 0700 one)
    state_dir = Path(tempfile.mkdtemp(prefix="atelier-up-"))
    state_dir.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "ATELIER_DATABASE_URL"}  # the private cluster
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "up", "--port", "0", "--state-dir", str(state_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while not any(line.startswith("Submit a listing") for line in seen):
            if process.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.5)
                seen += drain(lines)
                pytest.fail("atelier up did not come up:\n" + "".join(seen[-60:]))
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.5))
        time.sleep(0.5)
        seen += drain(lines)
        text = "".join(seen)
        url = re.search(r"API:\s+(http://\S+)", text)
        key = re.search(r"key:\s+(\S+)", text)
        assert url and key, text
        yield Up(process, seen, url[1], key[1])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(state_dir, ignore_errors=True)


def drain(lines: queue.Queue[str]) -> list[str]:
    found = []
    while True:
        try:
            found.append(lines.get_nowait())
        except queue.Empty:
            return found


def test_up_serves_a_listing_over_http_with_the_printed_key_and_stops_everything_on_sigint(up: Up) -> None:
    children = descendants(up.process.pid)
    assert len(children) >= 10, children  # broker, database, Redis, S3, Triton, 3 pools, sweeper, API

    with httpx.Client(base_url=up.url, headers=up.auth, timeout=10) as client:
        assert client.get("/readyz").status_code == 200
        submitted = client.post(
            "/v1/listings",
            json={
                "listing_id": "SKU-UP",
                "attributes": {"category": "dress", "colour": "navy"},
                "variants": 1,
            },
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.json()["requester"] == "local"
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] != "succeeded":
            assert job["state"] in ("queued", "running"), job
            assert time.monotonic() < deadline, f"not done after {JOB_TIMEOUT_S:.0f} s: {job}"
            time.sleep(0.5)
        assert job["model"] == "product_cgan" and len(job["outputs"]) == 1
        image = httpx.get(job["outputs"][0]["url"], timeout=10)
        assert image.status_code == 200 and image.content

    # the printed lines work as printed: submit, read, then the SSE watch, which ends after the
    # job's terminal event
    submit_line, read_line, watch_line = (up.printed(p) for p in ("JOB=$(curl", "curl -s", "curl -N"))
    script = f'{submit_line}\ntest -n "$JOB"\n{read_line}\necho\ntimeout {JOB_TIMEOUT_S:.0f} {watch_line}\n'
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert '"requester":"local"' in ran.stdout and '"subject":"SKU-1"' in ran.stdout
    assert "event: job.queued" in ran.stdout and "event: job.succeeded" in ran.stdout, ran.stdout

    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=STOP_TIMEOUT_S) == 0
    deadline = time.monotonic() + 10  # orphans of a killed group are reaped by init
    while left := {pid for pid, started in children.items() if start_time(pid) == started}:
        assert time.monotonic() < deadline, f"still running after atelier up stopped: {sorted(left)}"
        time.sleep(0.2)
