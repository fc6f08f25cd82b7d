"""A test-only Celery app: the real worker (``worker.app``) plus one fault, a pool process
SIGKILLed right after the quality gate judged a listing job and before its images are uploaded.

``celery -A bench.faults.gate_kill_app worker ...`` with ``ATELIER_FAULTS_GATE_KILL_DIR`` (a
folder) and ``ATELIER_FAULTS_GATE_KILL_PREFIX`` in its environment: once the gate
(``worker.pipeline.gate_listing``) has judged a job whose ``listing_id`` starts with the prefix,
the pool process writes ``<folder>/<listing_id>`` (its pid) and sends itself SIGKILL. The
parent sees a lost worker and the message goes back to the queue (acks late, reject on worker
lost); the file already there lets every later delivery of that listing through, so each is
killed once, at the same point of its first run, with no timing involved. The fault suite's
``sigkill_between_gate_and_upload`` scenario starts workers of this app; the production worker
carries no such hook.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from core.contracts.v1 import ListingImageRequest
from worker import pipeline
from worker.app import app
from worker.boundaries import Inference, QualityGate
from worker.gating import Asked, Gated
from worker.inference import Generated

__all__ = ["GATE_KILL_APP", "GATE_KILL_DIR_VARIABLE", "GATE_KILL_PREFIX_VARIABLE", "app", "gate_then_kill"]

#: what ``celery -A`` names to run this app
GATE_KILL_APP = __name__
#: the folder where each kill leaves its listing id (and so happens once per listing)
GATE_KILL_DIR_VARIABLE = "ATELIER_FAULTS_GATE_KILL_DIR"
#: listing ids starting with this are killed after their gate
GATE_KILL_PREFIX_VARIABLE = "ATELIER_FAULTS_GATE_KILL_PREFIX"

_real_gate_listing = pipeline.gate_listing


def gate_then_kill(
    inference: Inference,
    gate: QualityGate,
    req: ListingImageRequest,
    generated: Generated,
    seeds: Sequence[int],
    asked: Asked,
) -> Gated:
    """The real gate; then, the first time for a doomed listing, SIGKILL this pool process."""
    gated = _real_gate_listing(inference, gate, req, generated, seeds, asked)
    folder, prefix = os.environ.get(GATE_KILL_DIR_VARIABLE), os.environ.get(GATE_KILL_PREFIX_VARIABLE)
    if folder and prefix and req.listing_id.startswith(prefix) and _first_time(Path(folder), req.listing_id):
        os.kill(os.getpid(), signal.SIGKILL)
    return gated


def _first_time(folder: Path, listing_id: str) -> bool:
    """Leave ``folder/listing_id`` (this pid) if it is not there yet; whether this call left it."""
    try:
        fd = os.open(folder / listing_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


pipeline.gate_listing = gate_then_kill
