"""What the stuck-job sweeper reads (``worker/sweeper.py``): the workers' leases and the indexes
of running and queued jobs, in Redis.

A worker holds ``{prefix}lease:{job_id}`` (with a TTL) while it runs the job: no lease, no live
worker. A worker's start takes it in the transition's own write (``JobStore.start_attempt``).
The indexes ``{prefix}running`` and ``{prefix}queued`` are kept by the same script as the job's
state (``scripts/write_change.lua``, ``scripts/create.lua``), so they never disagree with it;
here they are only read and trimmed.
"""

from __future__ import annotations

import time
from datetime import datetime

import redis

from core.jobs.connection import ThreadClients, lua_script, redis_errors
from core.jobs.keys import JobKeys


class JobLeases:
    """Leases and the running and queued indexes, over ``client`` (a decoding ``redis.Redis``)
    in the namespace of ``keys``. Redis failures raise ``StoreUnavailable``."""

    def __init__(self, client: redis.Redis, keys: JobKeys) -> None:
        self._clients = ThreadClients(client)
        self.keys = keys
        self._release_lease = client.register_script(lua_script("release_lease"))

    @property
    def redis(self) -> redis.Redis:
        """The calling thread's client (``core.jobs.connection.ThreadClients``) over the pool of
        the client the store was given; scripts run on it too (``client=self.redis``)."""
        return self._clients.get()

    # --- the workers' leases ---

    def take_lease(
        self, job_id: str, ttl_s: float, *, holder: str = "worker", only_new: bool = False
    ) -> bool:
        """Hold ``job_id``'s lease for ``ttl_s`` seconds (a worker running it, or the sweeper that
        re-queued it); ``only_new``: only if nobody holds it. ``True`` when taken."""
        with redis_errors():
            taken = self.redis.set(self.keys.lease(job_id), holder, px=max(1, int(ttl_s * 1000)), nx=only_new)
        return bool(taken)

    def lease_holder(self, job_id: str) -> str | None:
        """Who holds ``job_id``'s lease now, or ``None`` (expired, or never taken)."""
        with redis_errors():
            holder = self.redis.get(self.keys.lease(job_id))
        return None if holder is None else str(holder)

    def release_lease(self, job_id: str, *, holder: str) -> bool:
        """Give ``job_id``'s lease back, only while ``holder`` still holds it."""
        with redis_errors():
            return bool(self._release_lease(keys=[self.keys.lease(job_id)], args=[holder], client=self.redis))

    # --- running jobs ---

    def running_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]:
        """Ids of jobs that entered ``running`` before ``cutoff`` (oldest first, at most ``limit``)."""
        with redis_errors():
            ids = self.redis.zrangebyscore(
                self.keys.running(), "-inf", cutoff.timestamp(), start=0, num=limit
            )
        return [str(job_id) for job_id in ids]

    def forget_running(self, job_id: str) -> None:
        """Drop ``job_id`` from the running index (its record expired, or is no longer running)."""
        with redis_errors():
            self.redis.zrem(self.keys.running(), job_id)

    # --- queued jobs: for jobs whose message went missing ---

    def queued_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]:
        """Ids of jobs queued (or re-queued by the sweeper) before ``cutoff``, oldest first."""
        with redis_errors():
            ids = self.redis.zrangebyscore(self.keys.queued(), "-inf", cutoff.timestamp(), start=0, num=limit)
        return [str(job_id) for job_id in ids]

    def forget_queued(self, job_id: str) -> None:
        """Drop ``job_id`` from the queued index (its record expired, or it left ``queued``)."""
        with redis_errors():
            self.redis.zrem(self.keys.queued(), job_id)

    def count_requeue(self, job_id: str) -> int:
        """Note that the sweeper published ``job_id`` again and restart its wait in the queued
        index; returns how many times that has happened (0 when the job is gone)."""
        with redis_errors():
            if not self.redis.exists(self.keys.job(job_id)):
                return 0
            pipe = self.redis.pipeline()
            pipe.hincrby(self.keys.job(job_id), "requeued", 1)
            pipe.zadd(self.keys.queued(), {job_id: time.time()}, xx=True)
            count, _ = pipe.execute()
        return int(count)

    def requeue_count(self, job_id: str) -> int:
        """How many times the sweeper published ``job_id`` again."""
        with redis_errors():
            return int(self.redis.hget(self.keys.job(job_id), "requeued") or 0)
