"""A key's own rate limit and daily quota (issue 13): nullable, NULL meaning the service's.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rate_limit", sa.String(200), nullable=True))
    op.add_column("api_keys", sa.Column("daily_quota", sa.Integer(), nullable=True))
    op.create_check_constraint("ck_api_keys_daily_quota_not_negative", "api_keys", "daily_quota >= 0")


def downgrade() -> None:
    op.drop_constraint("ck_api_keys_daily_quota_not_negative", "api_keys", type_="check")
    op.drop_column("api_keys", "daily_quota")
    op.drop_column("api_keys", "rate_limit")
