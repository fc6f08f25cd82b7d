"""Verified keys kept in memory for a few seconds, so an authenticated request is no database query.

Every ``/v1`` request authenticates its key; a PostgreSQL round trip (and the ORM around it) each
time was, after the submit itself, the largest cost of a submit through the API (about an eighth
of the API's CPU; ``docs/benchmarks/api.md``). A key that verified is kept ``ttl_s`` seconds
(``ATELIER_KEY_CACHE_S``, default 5), under the HMAC of its token, never the token itself: the
cache can only ever answer for the exact token that verified. A revoke through the same store
forgets the key at once; one made elsewhere (``atelier keys revoke``, another API replica) is seen
once the entry expires, so **a revoked key may still authenticate for up to ``ttl_s`` seconds** on
a replica that verified it just before. Unknown and revoked keys are never kept: a flood of bad
tokens cannot fill the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from api.keys.model import ApiKey


class VerifiedKeys:
    """A small TTL map from a token's HMAC to its verified key; thread-safe.

    Parameters: ``ttl_s``, how long a verified key is trusted without asking the database again
    (0: never kept); keyword-only ``max_entries`` (default 10,000: the oldest goes first past it)
    and ``clock`` (default ``time.monotonic``).
    """

    def __init__(
        self, ttl_s: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> ApiKey | None:
        """The key verified under ``token_hash`` less than ``ttl_s`` ago, if any."""
        with self._lock:
            entry = self._entries.get(token_hash)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[token_hash]
                return None
            return entry[1]

    def put(self, token_hash: str, key: ApiKey) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._entries.pop(token_hash, None)  # re-inserted last: the oldest stay first
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[token_hash] = (self._clock() + self.ttl_s, key)

    def forget(self, key_id: str) -> None:
        """Drop every entry of ``key_id`` (a revoke, a change of its limits)."""
        with self._lock:
            for token_hash in [h for h, (_, key) in self._entries.items() if key.key_id == key_id]:
                del self._entries[token_hash]

    def __len__(self) -> int:
        return len(self._entries)
