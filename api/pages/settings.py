"""The pages' settings, from ``ATELIER_*`` environment variables like every other process.

Apart from :class:`api.settings.ApiSettings` because only the pages read them: the API's routes
never hand a key out, and a page that does must be told which one, by the operator.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PageSettings(BaseSettings):
    """What the operator tells the pages (``api.pages``)."""

    # a refused value may be a key: errors never echo input
    model_config = SettingsConfigDict(
        env_prefix="ATELIER_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    tryon_page_key: SecretStr = Field(
        default=SecretStr(""),
        description="a publishable API key (submit:tryons and read) the try-on page at /try-on "
        "submits with, written into the page; a secret key is refused and the page is not served. "
        "Empty: the page asks for a publishable key once and keeps it in the browser",
    )
