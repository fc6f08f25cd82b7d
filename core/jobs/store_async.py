"""The status store's submit path from an event loop: the asyncio twin of ``JobStore.create`` and
``JobStore.get``, for a producer that lives in one (the HTTP API).

Only what a submit awaits is here; the rest (state changes, the rare ``publish_failed`` mark)
stays on :class:`core.jobs.store.JobStore`. The script, its keys and arguments and the reading of
its reply are the sync store's own (``create_arguments``, ``created_outcome``), so both create
the same record the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import asyncio as aioredis

from core.contracts.jobs import JobRecord
from core.jobs.connection import lua_script, redis_errors
from core.jobs.store import JobStore, created_outcome


class AsyncJobStore:
    """Creates and reads job records over ``redis.asyncio``, beside a :class:`JobStore` (``store``)
    whose settings, keys and script arguments it shares.

    Parameters: ``store``; keyword-only ``client``, a ``redis.asyncio.Redis`` that decodes
    responses (default one on ``redis_url`` with ``redis_timeout_s``, as the sync store's).
    """

    def __init__(self, store: JobStore, *, client: aioredis.Redis | None = None) -> None:
        settings = store.settings
        if client is None:
            client = aioredis.Redis.from_url(
                settings.redis_url.get_secret_value(),
                decode_responses=True,
                socket_timeout=settings.redis_timeout_s,
                socket_connect_timeout=settings.redis_timeout_s,
            )
        self.store = store
        self.redis = client
        self._create = client.register_script(lua_script("create"))

    async def create(
        self,
        record: JobRecord,
        idempotency_key: str | None = None,
        *,
        request: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> tuple[str, bool]:
        """As :meth:`JobStore.create`: ``(job_id, True)``, or an earlier job's ``(id, False)``."""
        keys, args = self.store.create_arguments(
            record, idempotency_key, request=request, fingerprint=fingerprint
        )
        with redis_errors():
            job_id, outcome = await self._create(keys=keys, args=args)
        return created_outcome(job_id, outcome)

    async def get(self, job_id: str) -> JobRecord | None:
        """As :meth:`JobStore.get`."""
        with redis_errors():
            raw = await self.redis.hget(self.store.keys.job(job_id), "record")
        return None if raw is None else JobRecord.model_validate_json(raw)

    async def close(self) -> None:
        await self.redis.aclose()
