"""Each requester's review policy (``review_policies``), and the API's short-lived copy of it.

A policy is read on every listing submission (``Producer.review_policy_for``), so the API keeps
each requester's for :data:`POLICY_CACHE_S` seconds: a change made with ``atelier review policy``
holds for new jobs within that long on every API replica. A job keeps the policy it was
submitted under (it is on its record), whatever changes later.

When PostgreSQL does not answer, a policy read in the last :data:`STALE_LIMIT_S` seconds is
used again rather than failing the submission; with none, the submission fails (503): a
policy that asks people to look is never replaced by ``auto`` because a database was down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from api.database import Database
from api.keys.errors import KeyStoreUnavailable
from api.keys.rules import checked_requester
from api.review.tables import ReviewPolicyRow
from core.contracts.jobs import ReviewPolicy

#: how long the API trusts a policy it read
POLICY_CACHE_S: Final = 5.0
#: how long a policy read earlier stands in while PostgreSQL does not answer
STALE_LIMIT_S: Final = 300.0


class PolicyStore:
    """Policies in PostgreSQL; ``default`` for a requester without a row (``ATELIER_REVIEW_POLICY``)."""

    def __init__(self, database: Database, *, default: ReviewPolicy = ReviewPolicy.AUTO) -> None:
        self.database = database
        self.default = default

    def policy_for(self, requester: str) -> ReviewPolicy:
        with self.database.session() as session:
            row = session.get(ReviewPolicyRow, requester)
        return ReviewPolicy(row.policy) if row is not None else self.default

    def set(self, requester: str, policy: ReviewPolicy | str) -> None:
        """Set ``requester``'s policy for its jobs submitted from now on."""
        requester = checked_requester(requester)
        chosen = ReviewPolicy(policy)
        statement = insert(ReviewPolicyRow).values(requester=requester, policy=chosen.value)
        statement = statement.on_conflict_do_update(
            index_elements=[ReviewPolicyRow.requester],
            set_={"policy": statement.excluded.policy, "updated_at": statement.excluded.updated_at},
        )
        with self.database.session() as session:
            session.execute(statement)
            session.commit()

    def all(self) -> dict[str, ReviewPolicy]:
        """Every requester with a policy of its own."""
        with self.database.session() as session:
            rows = session.scalars(select(ReviewPolicyRow).order_by(ReviewPolicyRow.requester))
            return {row.requester: ReviewPolicy(row.policy) for row in rows}


class CachedPolicies:
    """:meth:`PolicyStore.policy_for` answered from memory for ``ttl_s`` seconds; thread-safe.

    Parameters: the ``store``; keyword-only ``ttl_s`` (default :data:`POLICY_CACHE_S`),
    ``stale_limit_s`` (default :data:`STALE_LIMIT_S`) and ``clock`` (default ``time.monotonic``).
    """

    def __init__(
        self,
        store: PolicyStore,
        *,
        ttl_s: float = POLICY_CACHE_S,
        stale_limit_s: float = STALE_LIMIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.stale_limit_s = stale_limit_s
        self._clock = clock
        self._read: dict[str, tuple[float, ReviewPolicy]] = {}
        self._lock = threading.Lock()

    def policy_for(self, requester: str) -> ReviewPolicy:
        now = self._clock()
        with self._lock:
            cached = self._read.get(requester)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            policy = self.store.policy_for(requester)
        except KeyStoreUnavailable:
            if cached is not None and now - cached[0] < self.stale_limit_s:
                return cached[1]
            raise
        with self._lock:
            self._read[requester] = (now, policy)
        return policy

    def forget(self, requester: str) -> None:
        """Read ``requester``'s policy afresh next time (this process set it)."""
        with self._lock:
            self._read.pop(requester, None)
