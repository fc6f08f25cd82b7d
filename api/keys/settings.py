"""Where tenants and keys live, from ``ATELIER_*`` environment variables.

Apart from ``core.settings.AtelierSettings`` because only the API process and the ``atelier keys``
commands talk to PostgreSQL: a worker or a producer never needs these.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: the local PostgreSQL (trust auth) that ``scripts/services.sh`` starts
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/atelier"


class DatabaseSettings(BaseSettings):
    # a URL may carry a password: refused values are never echoed
    model_config = SettingsConfigDict(
        env_prefix="ATELIER_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        description="SQLAlchemy URL of the PostgreSQL database holding tenants and API keys "
        "(driver psycopg 3: postgresql+psycopg://)",
    )
    key_pepper: SecretStr = Field(
        default=SecretStr(""),
        description="server-side secret mixed into every key hash (HMAC-SHA256): a copy of the database "
        "alone then cannot check a guessed key. Changing it invalidates every key.",
    )
    key_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="how long the API trusts a key it verified without asking the database again "
        "(api.keys.cache): a key revoked elsewhere may still authenticate for up to this long; 0: "
        "every request asks",
    )
    database_connect_timeout_s: int = Field(
        default=5, gt=0, description="how long opening a database connection may take before it fails"
    )
