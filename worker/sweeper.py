"""The stuck-job sweeper: a job left ``running`` with no live worker, or ``queued`` with no
message, is retried or failed.

A worker that starts an attempt takes the job's lease (``JobStore.take_lease``) for the hard
time limit plus ``sweep_grace_s``; Celery kills a task at the hard limit, so once the lease has
expired no worker is running the job. That happens when a task is killed by the hard limit (Celery
acknowledges its message, so nothing redelivers it) or when its message was dead-lettered.

Each sweep reads the oldest entries of the running index (``{prefix}running``, kept by the
store's Lua script) that entered ``running`` more than a lease ago, and for each one whose lease
is gone:

- **attempts left** (``attempts < job_retry_attempts``): the sweeper takes the lease itself (so a
  second sweeper, or the next sweep, leaves the job alone while the new message waits) and
  re-publishes the stored request as a retry (``retries = attempts``); the worker's ``start``
  runs a retried message of a running job as one more attempt. If the publish fails, the lease
  is given back and the next sweep tries again.
- **attempts used up**: ``running -> failed`` with ``JobError(code="job_stuck")`` and the
  ``job.failed`` callback queued, if the request subscribed to it.

A job can also stay ``queued`` with no message to run it: its worker crashed on every delivery
until the queue's delivery limit dead-lettered the message, or the producer died between
storing the record and publishing. The store keeps an index of queued jobs (``{prefix}queued``);
a job still queued ``queued_timeout_s`` after it was queued is published again (if its first
message is still waiting in a long backlog, the worker that gets the second finds the job no
longer queued and drops it), up to ``queued_requeues`` times, and then fails with ``job_stuck``.

Every change is a compare-and-set on the record: a job that finishes or starts another attempt
meanwhile is left as it is. Run it with ``python -m worker.sweeper`` (every ``sweep_interval_s``; it serves
``/metrics`` with ``atelier_sweeper_outcomes_total`` on ``metrics_port``) or ``--once`` (from cron).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import prometheus_client
import typer
from pydantic import ValidationError

from core.contracts.jobs import JobEventType, JobRecord, JobState
from core.contracts.v1 import parse_request
from core.errors import ErrorCode, RetryableError
from core.jobs import JobStore, StoreError, utcnow
from core.publish import Publisher, PublishError
from core.topology import TASK_FOR_KIND
from core.worker_settings import WorkerSettings
from worker import metrics
from worker.boundaries import StatusStore
from worker.logs import use_json_format

log = logging.getLogger(__name__)

#: who holds the lease of a job the sweeper re-queued, until a worker starts it
SWEEPER = "sweeper"


class Outcome(StrEnum):
    """What one sweep did with one candidate."""

    REQUEUED = "requeued"
    FAILED = "failed"
    ALIVE = "alive"  #: a worker (or the sweeper's re-queued message) still holds the lease
    CHANGED = "changed"  #: the job finished or started another attempt meanwhile
    GONE = "gone"  #: the record expired or is no longer running: dropped from the index
    ERROR = "error"  #: the broker refused a publish; the next sweep tries again


@dataclass
class SweepReport:
    """The outcome of one sweep per job id."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def ids(self, outcome: Outcome) -> list[str]:
        return [job_id for job_id, seen in self.outcomes.items() if seen is outcome]


class Sweeper:
    """Finds ``running`` jobs without a live worker and retries or fails them.

    Parameters (keyword-only besides ``settings``):

    - ``store``: the status store; default one built from ``settings``.
    - ``publisher``: sends the retried job and the ``job.failed`` callback; default one built
      from ``settings``.
    - ``clock``: the current time (UTC); default :func:`core.jobs.utcnow`.

    Reads from settings: ``task_time_limit_s`` + ``sweep_grace_s`` (the lease),
    ``job_retry_attempts``, ``sweep_batch_size`` and ``sweep_interval_s``.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        store: StatusStore | None = None,
        publisher: Publisher | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.store: StatusStore = store if store is not None else JobStore(settings)
        self.publisher = publisher if publisher is not None else Publisher(settings)
        self.clock = clock

    @property
    def lease_s(self) -> float:
        """How long an attempt may hold a job: the hard time limit plus the grace period."""
        return self.settings.task_time_limit_s + self.settings.sweep_grace_s

    def sweep(self) -> SweepReport:
        """One pass over the jobs that entered ``running`` more than a lease ago, then over those
        queued more than ``queued_timeout_s`` ago."""
        report = SweepReport()
        now, batch = self.clock(), self.settings.sweep_batch_size
        for job_id in self.store.running_since_before(now - timedelta(seconds=self.lease_s), limit=batch):
            report.outcomes[job_id] = outcome = self.sweep_job(job_id)
            metrics.swept(JobState.RUNNING.value, outcome.value)
        stale = now - timedelta(seconds=self.settings.queued_timeout_s)
        for job_id in self.store.queued_since_before(stale, limit=batch):
            report.outcomes[job_id] = outcome = self.sweep_queued(job_id)
            metrics.swept(JobState.QUEUED.value, outcome.value)
        return report

    def sweep_job(self, job_id: str) -> Outcome:
        """Retry or fail ``job_id`` if it is running with no lease; else leave it."""
        store = self.store
        record = store.get(job_id)
        if record is None or record.state is not JobState.RUNNING:
            store.forget_running(job_id)
            return Outcome.GONE
        if store.lease_holder(job_id) is not None:
            return Outcome.ALIVE
        if record.attempts < self.settings.job_retry_attempts:
            return self._requeue(record)
        return self._fail(record)

    def sweep_queued(self, job_id: str) -> Outcome:
        """Publish ``job_id`` again if it is still queued and has re-queues left, else fail it."""
        store = self.store
        record = store.get(job_id)
        if record is None or record.state is not JobState.QUEUED:
            store.forget_queued(job_id)
            return Outcome.GONE
        if store.requeue_count(job_id) < self.settings.queued_requeues:
            request = store.get_request(job_id)
            if request is None:
                return Outcome.CHANGED
            try:
                self.publisher.publish(TASK_FOR_KIND[record.kind], job_id, request)
            except PublishError as error:
                _log(logging.ERROR, job_id, f"stale in queued, and publishing it again failed: {error}")
                return Outcome.ERROR
            store.count_requeue(job_id)
            _log(
                logging.WARNING,
                job_id,
                f"queued for over {self.settings.queued_timeout_s:g} s: published again",
            )
            return Outcome.REQUEUED
        failure = RetryableError(
            ErrorCode.JOB_STUCK,
            f"the job stayed queued with no worker starting it (over {self.settings.queued_timeout_s:g} s, "
            f"published again {store.requeue_count(job_id)} times): its message was dead-lettered or "
            "never published; see `atelier dlq list`, or submit it again",
        )
        return self._fail_job(job_id, failure, only_from=JobState.QUEUED, only_if=None)

    def _requeue(self, record: JobRecord) -> Outcome:
        job_id, store = record.job_id, self.store
        if not store.take_lease(job_id, self.lease_s, holder=SWEEPER, only_new=True):
            return Outcome.ALIVE
        current = store.get(job_id)
        request = store.get_request(job_id)
        if current is None or request is None or not _same_attempt(record)(current):
            store.release_lease(job_id, holder=SWEEPER)
            return Outcome.CHANGED
        try:
            self.publisher.publish(TASK_FOR_KIND[record.kind], job_id, request, retries=record.attempts)
        except PublishError as error:
            store.release_lease(job_id, holder=SWEEPER)
            _log(logging.ERROR, job_id, f"stuck, and its retry was not published: {error}")
            return Outcome.ERROR
        _log(logging.WARNING, job_id, "stuck with no live worker: published again", attempt=record.attempts)
        return Outcome.REQUEUED

    def _fail(self, record: JobRecord) -> Outcome:
        failure = RetryableError(
            ErrorCode.JOB_STUCK,
            f"the job stayed running with no live worker (over {self.lease_s:g} s) "
            f"after {record.attempts} attempts",
        )
        return self._fail_job(
            record.job_id,
            failure,
            only_from=JobState.RUNNING,
            only_if=_same_attempt(record),
            attempts=record.attempts,
        )

    def _fail_job(
        self,
        job_id: str,
        failure: RetryableError,
        *,
        only_from: JobState,
        only_if: Callable[[JobRecord], bool] | None,
        attempts: int = 0,
    ) -> Outcome:
        """``only_from -> failed`` with ``failure`` (if ``only_if`` still holds), then the
        ``job.failed`` callback if the request subscribed to it."""
        failed = self.store.transition(
            job_id, JobState.FAILED, only_from=[only_from], only_if=only_if, error=failure.to_job_error()
        )
        if not failed:
            return Outcome.CHANGED
        _log(logging.WARNING, job_id, f"failed: {failure}", attempt=attempts)
        if self._subscribed(job_id, JobEventType.FAILED):
            try:
                self.publisher.publish_callback(job_id, JobEventType.FAILED.value)
            except PublishError as error:
                _log(logging.ERROR, job_id, f"job.failed callback not queued: {error}")
                return Outcome.ERROR
        return Outcome.FAILED

    def _subscribed(self, job_id: str, event: JobEventType) -> bool:
        try:
            request = parse_request(self.store.get_request(job_id))
        except ValidationError:
            return False
        return request.callback is not None and event in request.callback.events

    def run(self, *, once: bool = False) -> None:
        """Sweep now, then every ``sweep_interval_s`` (until interrupted) unless ``once``."""
        while True:
            try:
                report = self.sweep()
                if report.outcomes:
                    counts = {o.value: len(report.ids(o)) for o in Outcome if report.ids(o)}
                    log.info("sweep: %s", counts)
            except StoreError as error:
                if once:
                    raise
                log.error("sweep skipped: %s", error)
            if once:
                return
            time.sleep(self.settings.sweep_interval_s)

    def close(self) -> None:
        self.publisher.close()
        self.store.close()


def _same_attempt(seen: JobRecord) -> Callable[[JobRecord], bool]:
    """A check that the record is still running the attempt the sweeper looked at."""
    return lambda record: record.state is JobState.RUNNING and record.attempts == seen.attempts


def _log(level: int, job_id: str, what: str, **extra: object) -> None:
    log.log(level, "job %s %s", job_id, what, extra={"job_id": job_id, **extra})


#: ``python -m worker.sweeper``: one command, so its options follow the module name directly
cli = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@cli.command()
def main(
    once: Annotated[bool, typer.Option("--once", help="sweep once and exit (for cron)")] = False,
) -> None:
    """Retry or fail stuck jobs (running with no live worker, queued with no message), every
    sweep_interval_s, serving /metrics on metrics_port; or once."""
    logging.basicConfig(level=logging.INFO)
    use_json_format(logging.getLogger())
    settings = WorkerSettings()
    if settings.metrics_port and not once:
        # one process: its own registry, no multiprocess folder
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.metrics_host)
        log.info("serving /metrics on %s:%s", settings.metrics_host, settings.metrics_port)
    sweeper = Sweeper(settings)
    try:
        sweeper.run(once=once)
    except KeyboardInterrupt:
        pass
    finally:
        sweeper.close()


if __name__ == "__main__":
    cli(prog_name="python -m worker.sweeper")
