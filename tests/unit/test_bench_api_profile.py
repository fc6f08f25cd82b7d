"""How ``python -m bench.api.profile`` charges py-spy's samples to its buckets: only the submit
path's samples count (setup and teardown do not), each to the first bucket its stack passes through."""

from __future__ import annotations

from bench.api.profile import BUCKETS, shares

RAW = "\n".join(
    [
        # the event loop, inside the driver: a rate-limit sample and a plain routing sample
        "<module> (x.py:1);drive (profile.py:70);KeyLimits.count (api/limits.py:9);evalsha (r.py:3) 30",
        "<module> (x.py:1);drive (bench/api/profile.py:70);APIRouter.app (fastapi/routing.py:2) 10",
        # a submit thread: the enqueue, inside the submit (the enqueue bucket comes first)
        "_worker (thread.py:1);_accept_listing (api/routes/submit.py:1);Producer._enqueue (p.py:1) 50",
        "_worker (thread.py:1);Queue.get (queue.py:1) 10",
        # setup: not the submit path
        "<module> (x.py:1);migrate_key_store (embedded/up.py:1) 500",
    ]
)


def test_samples_go_to_the_first_bucket_on_their_stack_and_setup_is_left_out() -> None:
    found, total = shares(RAW)
    assert total == 100
    names = [name for name, _ in BUCKETS]
    assert found[names[0]] == 50.0  # Producer._enqueue
    assert found["rate limit and quota: one script (Redis, on the event loop)"] == 30.0
    assert found["thread hand-off"] == 10.0
    assert found[names[-1]] == 10.0  # middleware, routing and the event loop
    assert sum(found.values()) == 100.0 and list(found) == names
