"""The HTTP API's settings, from ``ATELIER_*`` environment variables like every other process.

The API submits and reads jobs through the same core as the producer (broker, Redis: the
:class:`core.settings.AtelierSettings` fields) and signs output links itself, so it reads the S3
fields of :class:`core.settings.ServiceSettings` too; it never calls Triton.
"""

from __future__ import annotations

from limits import parse_many
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from core.settings import ServiceSettings


class ApiSettings(ServiceSettings):
    """Where the API listens, and the bounds it keeps on what callers send and ask for."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)

    api_host: str = Field(default="127.0.0.1", description="address the API binds to")
    api_port: int = Field(default=8080, ge=0, le=65535, description="port the API binds to (0: any free one)")
    api_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="largest request body: a bigger one gets 413 before it is parsed",
    )
    api_page_limit_max: int = Field(
        default=100, ge=1, le=1000, description="most jobs one GET /v1/jobs page returns"
    )
    api_page_limit_default: int = Field(
        default=20, ge=1, le=1000, description="jobs per GET /v1/jobs page when limit is not given"
    )
    api_async_submit: bool = Field(
        default=False,
        description="run the submit routes' record and publish on the event loop (redis.asyncio and "
        "an asyncio AMQP client, producer.accept_async) instead of in submit threads; RabbitMQ only",
    )
    api_prefer_wait_max_s: float = Field(
        default=60.0,
        gt=0,
        description="cap on RFC 7240 'Prefer: wait=N' on the submit routes: the longest a submit "
        "waits for its job to end",
    )
    api_events_keepalive_s: float = Field(
        default=15.0,
        gt=0,
        description="a GET /v1/jobs/{id}/events stream sends a comment this often while no event "
        "comes, so proxies keep it open",
    )
    api_events_max_s: float = Field(
        default=300.0,
        gt=0,
        description="longest one GET /v1/jobs/{id}/events stream stays open; the client reconnects "
        "with Last-Event-ID and misses nothing",
    )
    api_public_url: str = Field(
        default="",
        description="base URL callers reach the API by, for the OpenAPI 'servers' entry; empty: none",
    )

    # --- limits (api.limits, api.admission); per-key overrides may come from the key record later
    api_rate_limit: str = Field(
        default="50/second;1000/minute",
        description="requests one key may make on /v1 (limits' notation, ';' between limits; "
        "a moving window each); empty: no rate limit",
    )
    api_daily_quota: int = Field(
        default=100_000,
        ge=0,
        description="jobs one key may submit per day (a batch item counts one); 0: none",
    )
    api_max_batch_items: int = Field(
        default=1000, ge=1, le=1000, description="most listings one POST /v1/listings:batch takes"
    )
    api_max_batch_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="largest POST /v1/listings:batch body: a bigger one gets 413 before it is parsed",
    )
    api_listing_queue_bound: int = Field(
        default=10_000,
        ge=0,
        description="listing messages ready in the broker above which new listing submits get 503; 0: none",
    )
    api_queue_depth_cache_s: float = Field(
        default=1.0, ge=0, description="how long a queue depth read from the broker is reused"
    )
    api_admission_retry_after_s: int = Field(
        default=30, ge=1, description="Retry-After of a listing submit refused by admission control"
    )

    @field_validator("api_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        if value.strip():
            parse_many(value)  # raises ValueError naming what it cannot read
        return value
