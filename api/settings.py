"""The HTTP API's settings, from ``ATELIER_*`` environment variables like every other process.

The API submits and reads jobs through the same core as the producer (broker, Redis: the
:class:`core.settings.AtelierSettings` fields) and signs output links itself, so it reads the S3
fields of :class:`core.settings.ServiceSettings` too; it never calls Triton.
"""

from __future__ import annotations

from pydantic import Field
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
    api_prefer_wait_max_s: float = Field(
        default=60.0,
        gt=0,
        description="cap on RFC 7240 'Prefer: wait=N' on the submit routes (honoured in a later release)",
    )
    api_public_url: str = Field(
        default="",
        description="base URL callers reach the API by, for the OpenAPI 'servers' entry; empty: none",
    )
