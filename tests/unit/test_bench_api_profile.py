"""How ``python -m bench.api.profile`` charges py-spy's samples to its buckets: only the submit
path's samples count (setup and teardown do not), each to the first bucket its stack passes through."""

from __future__ import annotations

from bench.api.profile import BUCKETS, shares

RAW = "\n".join(
    [
        # the event loop, inside the driver: a rate-limit sample and a plain routing sample
        "<module> (x.py:1);drive (profile.py:70);plain_submit.<locals>.make.<locals>.answer (s.py:1);"
        "submitting (s.py:2);KeyLimits.count (api/limits.py:9);evalsha (r.py:3) 20",
        # the submit shortcut: its body validation, and its own work
        "drive (profile.py:70);plain_submit.<locals>.make.<locals>.answer (s.py:1);"
        "BaseModel.model_validate (pydantic/main.py:1) 5",
        "drive (profile.py:70);plain_submit.<locals>.make.<locals>.answer (s.py:1);Headers.get (d.py:1) 5",
        "<module> (x.py:1);drive (bench/api/profile.py:70);APIRouter.app (fastapi/routing.py:2) 10",
        # a submit thread: the enqueue, inside the submit (the enqueue bucket comes first)
        "BlockingThreads._serve (api/threads.py:1);_accept_listing (api/routes/submit.py:1);"
        "Producer._enqueue (p.py:1) 50",
        "BlockingThreads._serve (api/threads.py:1);SimpleQueue.get (queue.py:1) 10",
        # setup: not the submit path
        "<module> (x.py:1);migrate_key_store (embedded/up.py:1) 500",
    ]
)


def test_samples_go_to_the_first_bucket_on_their_stack_and_setup_is_left_out() -> None:
    found, total = shares(RAW)
    assert total == 100
    names = [name for name, _ in BUCKETS]
    assert found[names[0]] == 50.0  # Producer._enqueue
    assert found["rate limit and quota: one script (Redis, on the event loop)"] == 20.0
    assert found["request body parsing and validation"] == 5.0
    assert found["the submit shortcut, the rest (headers, admission, the answer's headers)"] == 5.0
    assert found["thread hand-off (to a submit thread and back)"] == 10.0
    assert found[names[-1]] == 10.0  # middleware, routing and the event loop
    assert sum(found.values()) == 100.0 and list(found) == names
