"""The verified-key cache (``api.keys.cache``) and the checks on a key's own limits
(``api.keys.rules``), with a fake clock: no database here (the store's use of the cache is
tested on the real PostgreSQL in ``tests/integration/test_api_key_limits.py``)."""

from __future__ import annotations

import pytest

from api.keys.cache import VerifiedKeys
from api.keys.errors import InvalidKeyRequest
from api.keys.model import ApiKey, Scope
from api.keys.rules import checked_daily_quota, checked_rate_limit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def key(key_id: str) -> ApiKey:
    return ApiKey(key_id=key_id, requester="shop-1", scopes=frozenset({Scope.READ}))


def test_a_verified_key_is_kept_for_its_ttl_and_not_a_moment_longer() -> None:
    clock = Clock()
    cache = VerifiedKeys(5.0, clock=clock)
    cache.put("hash-a", key("a"))
    clock.now += 4.99
    assert cache.get("hash-a") == key("a")
    clock.now += 0.01
    assert cache.get("hash-a") is None
    assert len(cache) == 0  # the expired entry is gone, not just hidden


def test_a_cache_of_zero_seconds_keeps_nothing() -> None:
    cache = VerifiedKeys(0.0)
    cache.put("hash-a", key("a"))
    assert cache.get("hash-a") is None and len(cache) == 0


def test_forgetting_a_key_drops_every_entry_of_it_and_only_those() -> None:
    cache = VerifiedKeys(60.0)
    cache.put("hash-a1", key("a"))
    cache.put("hash-a2", key("a"))  # the same key under another token hash (a new pepper, say)
    cache.put("hash-b", key("b"))
    cache.forget("a")
    assert cache.get("hash-a1") is None and cache.get("hash-a2") is None
    assert cache.get("hash-b") == key("b")


def test_past_its_size_the_oldest_entry_goes_first() -> None:
    cache = VerifiedKeys(60.0, max_entries=2)
    cache.put("hash-a", key("a"))
    cache.put("hash-b", key("b"))
    cache.put("hash-a", key("a"))  # put again: now the newest
    cache.put("hash-c", key("c"))
    assert cache.get("hash-b") is None
    assert cache.get("hash-a") == key("a") and cache.get("hash-c") == key("c")


@pytest.mark.parametrize(
    ("given", "kept"),
    [(None, None), ("", ""), (" 20/second ", "20/second"), ("600/minute;20/second", "600/minute;20/second")],
)
def test_a_keys_rate_limit_is_limits_notation_or_empty_for_none(given: str | None, kept: str | None) -> None:
    assert checked_rate_limit(given) == kept


@pytest.mark.parametrize("refused", ["fast", "20 per", "0/second", "-1/second", "x" * 300, "20/sécond"])
def test_a_rate_limit_that_does_not_parse_is_refused(refused: str) -> None:
    with pytest.raises(InvalidKeyRequest, match="rate limit"):
        checked_rate_limit(refused)


def test_a_daily_quota_is_zero_or_more_jobs() -> None:
    assert checked_daily_quota(None) is None and checked_daily_quota(0) == 0
    assert checked_daily_quota(1_000_000) == 1_000_000
    for refused in (-1, 2**31):
        with pytest.raises(InvalidKeyRequest, match="daily quota"):
            checked_daily_quota(refused)
