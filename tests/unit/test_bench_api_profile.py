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
        # the front: its own work around the shortcut
        "drive (profile.py:70);FrontedApp.__call__ (a.py:1);ShortcutFront._shortcut (s.py:1) 4",
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
    assert total == 104
    names = [name for name, _ in BUCKETS]

    def share(count: int) -> float:
        return round(100 * count / 104, 1)

    assert found[names[0]] == share(50)  # Producer._enqueue
    assert found["rate limit in a round trip of its own (only off the plain path)"] == share(20)
    assert found["request body parsing and validation"] == share(5)
    assert found["the submit shortcut, the rest (headers, admission, the answer's headers)"] == share(5)
    assert found["the shortcut's front (headers and body read from ASGI, the answer sent, metrics)"] == share(
        4
    )
    assert found["thread hand-off (to a submit thread and back; none when the submit runs inline)"] == share(
        10
    )
    assert found[names[-1]] == share(10)  # middleware, routing and the event loop
    assert abs(sum(found.values()) - 100.0) < 0.5 and list(found) == names
