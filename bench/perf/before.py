"""An earlier commit's worker measured in the same run as this one: ``python -m bench.perf
--before REF``.

:func:`checkout` extracts REF's tree (``git archive``) into the run's workdir with this
checkout's ``bench/`` in place of REF's, so REF's worker runs with today's instrumentation
(``bench.perf.accounted_app``, ``bench.perf.stage_cpu``: a boundary REF lacks is skipped with a
warning and its CPU stays in the orchestration remainder). The pipeline benchmark starts that
point's listing and callback workers from the tree (their working folder, first on
``PYTHONPATH``: ``embedded.stack.Pool.source``) with the pool REF deploys, against a Triton
serving REF's own model repository (``bench.perf.pipeline.point``). The rest of the point is
this checkout's: S3, RabbitMQ, Redis, the receiver, and the producer, which runs in the
benchmark process (today's and db5119c's differ by about 0.03 ms CPU per image), its bodies
without their null fields (:func:`send_fields_ref_knows`). The tree is removed at the end of
the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.perf import rounds

if TYPE_CHECKING:
    from producer.client import Prepared, Producer

#: the repository root (this checkout)
ROOT = Path(__file__).resolve().parents[2]
#: asks REF's own settings what ``pipeline.default_pool`` asks of this checkout's: the pool it
#: deploys (``threads`` where it has a ``worker_pool`` setting) and its jobs in flight per process
LAYOUT = (
    "from core.worker_settings import WorkerSettings as S\n"
    "print('threads' if 'worker_pool' in S.model_fields else 'prefork', "
    "getattr(S(), 'worker_concurrency', 1))"
)


@dataclass(frozen=True)
class Before:
    """REF's tree, ready to start workers from: ``ref`` as given, ``commit`` (its full sha),
    ``tree``, ``pool`` (what REF deploys; ``ATELIER_BENCH_POOL`` overrides it, as for this
    checkout) and ``in_flight`` (REF's jobs in flight per process, for the threads pool)."""

    ref: str
    commit: str
    tree: Path
    pool: str
    in_flight: int


@contextlib.contextmanager
def checkout(ref: str, workdir: Path) -> Iterator[Before]:
    """REF's tree under ``workdir`` with this checkout's ``bench/`` (a context manager that removes
    it); ``ValueError`` if REF names no commit."""
    found = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode:
        raise ValueError(f"--before {ref!r}: not a commit of this repository")
    commit = found.stdout.strip()
    tree = workdir / f"before-{commit[:12]}"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    try:
        with subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE) as archive:
            subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
        if archive.returncode:
            raise subprocess.CalledProcessError(archive.returncode, archive.args)
        shutil.rmtree(tree / "bench", ignore_errors=True)
        shutil.copytree(ROOT / "bench", tree / "bench", ignore=shutil.ignore_patterns("__pycache__"))
        pool, in_flight = _layout(tree)
        yield Before(ref, commit, tree, os.environ.get("ATELIER_BENCH_POOL") or pool, in_flight)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def summary(before: Before, points: list[dict[str, Any]]) -> dict[str, Any]:
    """The result of REF's pipeline points, every round's (``bench.perf.rounds.summary``)."""
    return {"ref": before.ref, "commit": before.commit, **rounds.summary(points)}


def send_fields_ref_knows(producer: Producer) -> None:
    """Have ``producer`` leave its bodies' null fields out (each is a field left at its default).
    REF's contract forbids fields it does not know, even null ones: db5119c's worker refuses
    today's ``attributes.pattern: null`` (added by 6ea728a) as ``invalid_request``. The walk over
    each body costs the producer's row microseconds per job."""
    prepare = producer.prepare

    def prepare_for_ref(request: Any) -> Prepared:
        found = prepare(request)
        return found._replace(body=without_nulls(found.body))

    producer.prepare = prepare_for_ref  # type: ignore[method-assign]


def without_nulls(value: Any) -> Any:
    """``value`` with the ``None`` entries of its dicts left out, at any depth."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def _layout(tree: Path) -> tuple[str, int]:
    """REF's pool and jobs in flight, read by REF's own code in a child process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", LAYOUT], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])
