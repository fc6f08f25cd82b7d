"""A test-only Celery app: the real worker (``worker.app``) plus one fault, a job that kills the
pool process running it, on every delivery.

``celery -A bench.faults.crash_app worker ...`` with ``ATELIER_FAULTS_CRASH_LISTING_ID`` set in
its environment: a listing job whose ``listing_id`` equals that value ends its pool process
(``os._exit``) just before the task body runs, as if the process were SIGKILLed mid-job. The
parent sees a lost worker and the message goes back to the queue, so each delivery crashes again
until RabbitMQ's delivery limit dead-letters it. The fault suite's ``crash_loop`` scenario and
the dead-letter integration tests start workers of this app; the production worker carries no
such hook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from celery import signals

from worker.app import app

__all__ = ["CRASH_APP", "CRASH_EXIT_CODE", "CRASH_LISTING_VARIABLE", "app", "crash_on_listing"]

#: what ``celery -A`` names to run this app
CRASH_APP = __name__
#: the variable naming the listing id whose jobs crash their pool process
CRASH_LISTING_VARIABLE = "ATELIER_FAULTS_CRASH_LISTING_ID"
#: exit status of a pool process this hook ends
CRASH_EXIT_CODE = 70


@signals.task_prerun.connect
def crash_on_listing(kwargs: Mapping[str, Any] | None = None, **_: Any) -> None:
    """In the pool process, before the task: exit at once if the job is the doomed listing."""
    doomed = os.environ.get(CRASH_LISTING_VARIABLE)
    request = (kwargs or {}).get("request")
    if doomed and isinstance(request, Mapping) and request.get("listing_id") == doomed:
        os._exit(CRASH_EXIT_CODE)
