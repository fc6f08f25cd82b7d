"""Where the job store keeps what in Redis, all under ``redis_key_prefix``.

- ``{prefix}job:{job_id}``: one hash per job (``record``, ``state``, ``version``, ``request``,
  ``event:{type}`` claims, ``requeued``), expiring after ``job_record_ttl_s``;
- ``{prefix}idem:{requester}/{key}`` -> job id, expiring after ``idempotency_ttl_s`` (``/``
  cannot occur in an identifier, so requesters never collide); the request's fingerprint is
  the job hash's ``fingerprint`` field, beside it;
- ``{prefix}requester:{requester}``: a sorted set of the requester's job ids scored by creation
  time (epoch seconds), which ``GET /v1/jobs`` pages through newest first (``core.jobs.listing``);
- ``{prefix}changes:{job_id}``: the channel each change is announced on (``watch`` wakes on it);
- ``{prefix}events:{job_id}``: a stream of the job's events, one per state change, entry id
  ``<record version>-0`` (``core.jobs.events``), expiring with the record;
- ``{prefix}running`` and ``{prefix}queued``: sorted sets of job ids, scored by when the job
  entered that state (epoch seconds), which the stuck-job sweeper reads oldest first;
- ``{prefix}lease:{job_id}``: held (with a TTL) by the worker running the job;
- ``{prefix}review:{requester}``: a sorted set of the requester's jobs awaiting review, scored by
  when each entered that state (epoch seconds), which ``GET /v1/review/images`` pages through
  oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobKeys:
    """The Redis key names of one namespace (``prefix``)."""

    prefix: str

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def idempotency(self, requester: str, key: str) -> str:
        return f"{self.prefix}idem:{requester}/{key}"

    def requester(self, requester: str) -> str:
        return f"{self.prefix}requester:{requester}"

    def changes(self, job_id: str) -> str:
        return f"{self.prefix}changes:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}events:{job_id}"

    def running(self) -> str:
        return f"{self.prefix}running"

    def queued(self) -> str:
        return f"{self.prefix}queued"

    def lease(self, job_id: str) -> str:
        return f"{self.prefix}lease:{job_id}"

    def awaiting_review(self, requester: str) -> str:
        return f"{self.prefix}review:{requester}"
