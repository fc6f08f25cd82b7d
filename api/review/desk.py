"""Everything the review routes use, built once per API app over the key store's database and
the API's producer (its job store and publisher): the policies, the audit trail, the decisions.
:meth:`ReviewDesk.attach` makes the producer write each tenant's policy on its new jobs."""

from __future__ import annotations

from sqlalchemy import Engine

from api.database import Database
from api.review.audit import DecisionLog
from api.review.decide import Decisions
from api.review.policies import POLICY_CACHE_S, CachedPolicies, PolicyStore
from producer.client import Producer


class ReviewDesk:
    """The review services over ``engine`` (shared, never disposed here) and ``producer``.

    Keyword-only ``policy_cache_s``: how long a tenant's policy is trusted once read
    (default :data:`api.review.policies.POLICY_CACHE_S`).
    """

    def __init__(self, engine: Engine, producer: Producer, *, policy_cache_s: float = POLICY_CACHE_S) -> None:
        database = Database(engine)
        self.producer = producer
        self.policies = PolicyStore(database, default=producer.settings.review_policy)
        self.cached_policies = CachedPolicies(self.policies, ttl_s=policy_cache_s)
        self.audit = DecisionLog(database)
        self.decisions = Decisions(producer, self.audit)

    def attach(self) -> None:
        """Have the producer record each new listing job under its tenant's policy."""
        self.producer.review_policy_for = self.cached_policies.policy_for
