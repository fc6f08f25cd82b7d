"""Settings passed to a child process as ``ATELIER_*`` variables come back unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.worker_settings import WorkerSettings, new_webhook_secret


def test_settings_survive_the_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret, rotated = new_webhook_secret(), new_webhook_secret()
    original = WorkerSettings(
        _env_file=None,  # type: ignore[call-arg]
        broker_url="filesystem://",
        broker_data_dir=Path("/tmp/broker"),
        s3_secret_key="s3-secret",
        callback_secret=secret,
        callback_secrets={"shop-eu": [rotated, secret]},
        callback_allow_http=True,
        callback_allowed_hosts=["127.0.0.1"],
        callback_retry_schedule_s=[0.5, 1.0],
        job_retry_attempts=2,
    )
    env = original.environment()
    assert env["ATELIER_S3_SECRET_KEY"] == "s3-secret" and env["ATELIER_CALLBACK_ALLOW_HTTP"] == "true"
    assert "ATELIER_TRITON_ROOT_CERTIFICATES" not in env  # unset optional fields are left out
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert WorkerSettings(_env_file=None) == original  # type: ignore[call-arg]
