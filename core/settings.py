"""Settings shared by every Atelier process, from ``ATELIER_*`` environment variables.

The worker extends this model (``core.worker_settings``) with what only workers need. No host, port,
credential or timeout is written anywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.contracts.jobs import ReviewPolicy


class AtelierSettings(BaseSettings):
    # a refused value may be a secret (a broker URL carries its password): errors never echo input
    model_config = SettingsConfigDict(
        env_prefix="ATELIER_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    broker_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672//"),
        description="RabbitMQ (amqp://, amqps:// for TLS) or kombu's filesystem:// for the embedded default",
    )
    broker_ca_cert: Path | None = Field(
        default=None,
        description="PEM CA bundle that signed the broker's certificate (amqps://; default: system)",
    )
    broker_client_cert: Path | None = Field(default=None, description="PEM client certificate for mutual TLS")
    broker_client_key: Path | None = Field(default=None, description="PEM client key for mutual TLS")
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"), description="job status store"
    )
    redis_timeout_s: float = Field(
        default=5.0, gt=0, description="connect and reply timeout of status-store calls"
    )
    publish_confirm_timeout_s: float = Field(
        default=10.0, gt=0, description="how long a publish waits for the broker's confirm before raising"
    )
    idempotency_ttl_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="how long an idempotency key holds"
    )
    job_record_ttl_s: int = Field(default=30 * 24 * 3600, gt=0, description="how long job records are kept")
    broker_connect_timeout_s: float = Field(
        default=4.0,
        gt=0,
        description="how long opening a broker connection may take before it counts as failed",
    )
    publish_retries: int = Field(
        default=1,
        ge=0,
        description="publishes repeated on a new connection after the old one dropped or the message came "
        "back unroutable; a missing confirm or a nack is never retried",
    )
    broker_data_dir: Path = Field(
        default=Path(".atelier/broker"),
        description="message folder of the embedded filesystem:// broker (ignored for RabbitMQ)",
    )
    redis_key_prefix: str = Field(default="atelier:", description="prefix of every status-store key")
    default_version_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="how long a process (worker, API, producer) keeps the default versions set with "
        "`atelier ops set-default-version` (Redis) and the list of registered versions before reading "
        "them again; the defaults override the workers' *_MODEL_VERSION settings",
    )
    #: Broker topology (see ``core.topology``). Names are settings so tests can isolate themselves.
    exchange: str = Field(default="atelier", description="topic exchange the job and callback queues bind to")
    listing_queue: str = "atelier.listing"
    tryon_queue: str = "atelier.tryon"
    callback_queue: str = "atelier.callbacks"
    dead_letter_exchange: str = "atelier.dlx"
    dead_letter_queue: str = "atelier.dead_letter"
    delivery_limit: int = Field(
        default=5, ge=1, description="deliveries of one message before the quorum queue dead-letters it"
    )
    review_policy: ReviewPolicy = Field(
        default=ReviewPolicy.AUTO,
        description="review policy of a requester that has none of its own (auto: the quality gate "
        "alone; flagged: people review what the gate flagged; all: people review every image)",
    )
    max_message_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="largest task message body: the producer refuses a bigger one before publishing, "
        "a worker dead-letters it unread",
    )

    def environment(self) -> dict[str, str]:
        """These settings as ``ATELIER_*`` variables (secrets revealed), for a child process.

        Lists and dicts are JSON, as the settings read them back; unset optional fields are left out.
        """

        def plain(value: Any) -> Any:
            if isinstance(value, SecretStr):
                return value.get_secret_value()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            if isinstance(value, Path):
                return str(value)
            return value

        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = plain(getattr(self, name))
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, dict | list):
                text = json.dumps(value)
            else:
                text = str(value)
            env[f"ATELIER_{name.upper()}"] = text
        return env


class ServiceSettings(AtelierSettings):
    """Where Triton and S3 are and how to reach them: what a worker calls, and what the operator
    commands (``atelier ops``) check. ``core.worker_settings.WorkerSettings`` extends it."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    # --- Triton (worker/inference.py, ops/checks.py) ---
    triton_grpc_url: str = Field(default="127.0.0.1:8001", description="Triton gRPC endpoint, host:port")
    triton_timeout_s: float = Field(default=30.0, gt=0, description="client deadline for one infer call")
    triton_ssl: bool = Field(default=False, description="gRPC over TLS")
    triton_root_certificates: Path | None = Field(
        default=None, description="PEM CA bundle that signed Triton's certificate (TLS; default: system)"
    )
    triton_private_key: Path | None = Field(default=None, description="PEM client key for mutual TLS")
    triton_certificate_chain: Path | None = Field(default=None, description="PEM client chain for mutual TLS")
    triton_http_url: str = Field(
        default="",
        description="Triton HTTP endpoint, host:port, for health checks (/readyz, atelier ops health); "
        "empty: the host of triton_grpc_url, port 8000",
    )
    health_timeout_s: float = Field(
        default=2.0, gt=0, description="deadline of each readiness check (Triton, S3, Redis, broker)"
    )

    # --- S3 (worker/storage.py, ops/checks.py) ---
    s3_endpoint: str = Field(default="127.0.0.1:9000", description="S3 host:port, no scheme")
    s3_access_key: str = Field(default="atelier", description="S3 access key id")
    s3_secret_key: SecretStr = Field(default=SecretStr(""), description="S3 secret key (required)")
    s3_bucket: str = Field(default="atelier-images", description="private bucket for every image")
    s3_secure: bool = Field(default=False, description="HTTPS to S3")
    s3_ca_cert: Path | None = Field(default=None, description="PEM CA bundle for S3's certificate (HTTPS)")
    s3_region: str = Field(
        default="us-east-1", description="region requests and presigned links are signed for"
    )
    s3_public_endpoint: str = Field(
        default="",
        description=(
            "[https://]host[:port] that presigned links name, when requesters reach S3 by another "
            "address; empty: s3_endpoint"
        ),
    )
    s3_timeout_s: float = Field(default=10.0, gt=0, description="connect and read timeout per S3 request")
    presign_expiry_s: int = Field(
        default=24 * 3600, ge=60, le=7 * 24 * 3600, description="lifetime of presigned GET links (max 7 days)"
    )
