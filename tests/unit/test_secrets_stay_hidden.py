"""Settings never show a secret: reprs, validation errors (the log format: test_worker_logs.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import AtelierSettings
from core.worker_settings import WorkerSettings, new_webhook_secret

BROKER_PASSWORD = "broker-pass-8f1c2d"
S3_SECRET = "s3-secret-5b7e9a"


def test_settings_repr_and_str_mask_every_secret() -> None:
    callback = new_webhook_secret()
    settings = WorkerSettings(  # type: ignore[call-arg]
        _env_file=None,
        broker_url=f"amqp://atelier:{BROKER_PASSWORD}@rabbit:5672//",
        s3_secret_key=S3_SECRET,
        callback_secret=callback,
        callback_secrets={"shop-a": [new_webhook_secret()]},
    )
    for text in (repr(settings), str(settings), repr(settings.model_dump())):
        assert BROKER_PASSWORD not in text and S3_SECRET not in text and callback not in text


def test_a_refused_producer_setting_does_not_echo_its_value() -> None:
    with pytest.raises(ValidationError) as refused:
        AtelierSettings(_env_file=None, broker_url=f"amqp://u:{BROKER_PASSWORD}@h//", redis_timeout_s="x")  # type: ignore[call-arg]
    assert "redis_timeout_s" in str(refused.value)
    with pytest.raises(ValidationError) as secret_refused:
        AtelierSettings(_env_file=None, broker_url=[BROKER_PASSWORD])  # type: ignore[call-arg]
    assert "broker_url" in str(secret_refused.value) and BROKER_PASSWORD not in str(secret_refused.value)


def test_a_malformed_callback_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as refused:
        WorkerSettings(_env_file=None, callback_secret=f"whsec_{S3_SECRET}!")  # type: ignore[call-arg]
    assert "callback_secret" in str(refused.value) and S3_SECRET not in str(refused.value)
