"""The ``kwargsrepr`` header of Atelier's task messages (``core.publish.kwargs_repr``): the scalar
arguments as Celery would show them, a nested request or payload as ``{...}``."""

from __future__ import annotations

from core.publish import ARGS_REPR, kwargs_repr


def test_a_job_message_shows_its_id_and_not_its_request() -> None:
    request = {"callback": {"url": "https://shop.example/hook?token=abc"}, "variants": 4}
    shown = kwargs_repr({"job_id": "3f2a", "request": request})
    assert shown == "{'job_id': '3f2a', 'request': {...}}"
    assert "shop.example" not in shown


def test_scalar_arguments_are_shown_as_python_reprs() -> None:
    assert kwargs_repr({"job_id": "j", "variant": 2, "regeneration": 1}) == (
        "{'job_id': 'j', 'variant': 2, 'regeneration': 1}"
    )
    assert kwargs_repr({"job_id": "j", "event": "job.failed", "payload": {"type": "job.failed"}}) == (
        "{'job_id': 'j', 'event': 'job.failed', 'payload': {...}}"
    )
    assert kwargs_repr({}) == "{}"
    assert repr(()) == ARGS_REPR
