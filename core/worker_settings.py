"""The worker's settings, on top of ``ServiceSettings`` (where Triton and S3 are): inference retries,
callbacks, metrics, retry budgets. Kept in the core so that what starts or checks workers (the
embedded stack, the deploy checks) reads them without importing the worker.

Every field reads ``ATELIER_<FIELD>`` (case-insensitive); lists and dicts are JSON, e.g.
``ATELIER_CALLBACK_SECRETS='{"shop-eu": ["whsec_new...", "whsec_old..."]}'`` or
``ATELIER_CALLBACK_RETRY_SCHEDULE_S='[0.1, 0.2]'``. Secrets are ``SecretStr``: they print as
``**********`` and reach a client only through ``get_secret_value()``.
"""

from __future__ import annotations

import base64
import binascii
import secrets as random_secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from core.settings import ServiceSettings

#: the Standard Webhooks example schedule: delays before retries 1..9 (the first try is immediate)
STANDARD_WEBHOOKS_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
#: Standard Webhooks' symmetric secret serialization: ``whsec_`` + base64 of 24 to 64 random bytes
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = (24, 64)


def check_webhook_secret(value: str) -> str:
    """``value`` unchanged if it is ``whsec_`` + base64 of 24..64 bytes, else ``ValueError``.

    The message never repeats the value (it is a secret).
    """
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"a callback secret must start with {WEBHOOK_SECRET_PREFIX!r} (Standard Webhooks)")
    try:
        key = base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a callback secret must be whsec_ followed by standard base64") from None
    low, high = WEBHOOK_SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"a callback secret must encode {low} to {high} bytes; it encodes {len(key)}")
    return value


def new_webhook_secret(num_bytes: int = 32) -> str:
    """A fresh random callback secret in Standard Webhooks format (``whsec_`` + base64)."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(num_bytes)).decode()


class WorkerSettings(ServiceSettings):
    # a refused value may be a secret: validation errors name the field and rule, never the input
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    # --- Jobs (pipeline.py, app.py) ---
    job_retry_attempts: int = Field(
        default=4,
        ge=1,
        description="attempts per job (first run, retries after retryable errors, redeliveries) before it "
        "fails; keep it below delivery_limit so the job fails before its message is dead-lettered",
    )
    job_retry_backoff_base_s: float = Field(
        default=2.0, gt=0, description="delay before the first job retry; doubles per attempt, with jitter"
    )
    job_retry_backoff_max_s: float = Field(default=120.0, gt=0, description="cap on one job retry delay")
    worker_pool: Literal["threads", "prefork", "solo"] = Field(
        default="threads",
        description="Celery execution pool: threads keeps worker_concurrency jobs in flight in one "
        "process (their Triton calls meet in the dynamic batcher, each message keeps its own ack); "
        "prefork runs one job per process; an explicit --pool other than prefork wins",
    )
    worker_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="jobs one worker process runs at once (threads) or pool processes (prefork); "
        "a -c/--concurrency option wins; also the prefetch (prefetch multiplier 1)",
    )
    task_soft_time_limit_s: float = Field(
        default=120.0, gt=0, description="a task still running after this fails its job (Celery soft limit)"
    )
    task_time_limit_s: float = Field(
        default=180.0,
        gt=0,
        description="a task still running after this has its process killed (Celery hard limit)",
    )

    # --- Stuck jobs (sweeper.py) ---
    sweep_grace_s: float = Field(
        default=60.0,
        gt=0,
        description="a worker's lease on a job lasts task_time_limit_s plus this; a job running longer "
        "without a lease has no live worker and the sweeper retries or fails it",
    )
    sweep_interval_s: float = Field(default=60.0, gt=0, description="pause between two sweeps")
    sweep_batch_size: int = Field(default=100, ge=1, description="stuck-job candidates read per sweep")
    queued_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="a job still queued this long may have lost its message (dead-lettered before it "
        "started, or never published): the sweeper publishes it again (a duplicate is dropped), and "
        "fails it with job_stuck once queued_requeues such waits have passed; keep it above the longest "
        "queue wait you expect",
    )
    queued_requeues: int = Field(
        default=1, ge=0, description="times the sweeper publishes a stale queued job again before failing it"
    )

    # --- Triton (inference.py) ---
    inference_retry_attempts: int = Field(
        default=6, ge=1, description="tries per batch while Triton is unavailable or times out (1: no retry)"
    )
    inference_backoff_base_s: float = Field(
        default=0.5, gt=0, description="first backoff ceiling; doubles per try, full jitter"
    )
    inference_backoff_max_s: float = Field(default=10.0, gt=0, description="cap on one backoff wait")
    product_model_version: str = Field(
        default="", description="product_cgan version used when a request pins none; empty: Triton's latest"
    )
    tryon_model_version: str = Field(
        default="", description="tryon_cvae version used when a request pins none; empty: Triton's latest"
    )

    # --- Metrics and probes (metrics.py, health.py, endpoints.py) ---
    metrics_port: int = Field(
        default=9808,
        ge=0,
        le=65535,
        description="port of the worker's /metrics, /healthz and /readyz (main process); 0: none",
    )
    metrics_host: str = Field(default="0.0.0.0", description="address the metrics port listens on")
    metrics_dir: Path | None = Field(
        default=None,
        description="folder where the prefork pool processes write their samples (emptied at start, "
        "private to one worker); default: PROMETHEUS_MULTIPROC_DIR, else a temporary folder",
    )
    readiness_cache_s: float = Field(
        default=5.0, ge=0, description="how long /readyz answers from its last checks before checking again"
    )

    # --- Callbacks (callbacks.py) ---
    callback_secret: SecretStr | None = Field(
        default=None, description="global signing secret (whsec_...), used for requesters without their own"
    )
    callback_secrets: dict[str, list[SecretStr]] = Field(
        default_factory=dict,
        description="per-requester secrets, newest first; several sign at once while rotating",
    )
    callback_timeout_s: float = Field(default=15.0, gt=0, description="deadline for one delivery attempt")
    callback_retry_schedule_s: list[float] = Field(
        default_factory=lambda: list(STANDARD_WEBHOOKS_SCHEDULE_S),
        description="delay before each retry after a failed attempt; when exhausted, delivery fails",
    )
    callback_allow_http: bool = Field(default=False, description="accept http:// callback URLs (tests, dev)")
    callback_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="hosts (names or IPs) allowed to resolve to loopback, private or link-local addresses",
    )
    callback_ca_cert: Path | None = Field(
        default=None, description="PEM CA bundle for receivers' certificates (default: system store)"
    )

    @field_validator("callback_secret")
    @classmethod
    def _global_secret_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_secret(value.get_secret_value())
        return value

    @field_validator("callback_secrets", mode="before")
    @classmethod
    def _one_secret_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str | SecretStr) else v for k, v in value.items()}
        return value

    @field_validator("callback_secrets")
    @classmethod
    def _requester_secrets_format(cls, value: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        for requester, keys in value.items():
            if not keys:
                raise ValueError(f"requester {requester!r} has an empty secret list")
            for secret in keys:
                try:
                    check_webhook_secret(secret.get_secret_value())
                except ValueError as error:
                    raise ValueError(f"requester {requester!r}: {error}") from None
        return value

    @field_validator("callback_retry_schedule_s")
    @classmethod
    def _delays_not_negative(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must be >= 0")
        return value

    @model_validator(mode="after")
    def _soft_limit_before_hard(self) -> WorkerSettings:
        if self.task_soft_time_limit_s >= self.task_time_limit_s:
            raise ValueError("task_soft_time_limit_s must be below task_time_limit_s")
        return self

    @field_validator("callback_allowed_hosts")
    @classmethod
    def _hosts_lower_case(cls, value: list[str]) -> list[str]:
        return [host.strip().lower().strip("[]") for host in value if host.strip()]

    def signing_secrets(self, requester: str) -> list[str]:
        """The secrets that sign ``requester``'s callbacks: its own, else the global one.

        Raises ``LookupError`` when neither is configured.
        """
        secrets = self.callback_secrets.get(requester)
        if secrets:
            return [s.get_secret_value() for s in secrets]
        if self.callback_secret is not None:
            return [self.callback_secret.get_secret_value()]
        raise LookupError(
            f"no callback secret for requester {requester!r}: set ATELIER_CALLBACK_SECRET "
            "or an entry in ATELIER_CALLBACK_SECRETS"
        )
