"""Tenants and their API keys (issue 13).

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: written out rather than imported: a revision must keep meaning what it meant when written
PUBLISHABLE_SCOPES_SQL = "ARRAY['read', 'submit:tryons']"


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("requester", name="pk_tenants"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), server_default=sa.text("''"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("publishable", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "cors_origins", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["requester"], ["tenants.requester"], name="fk_api_keys_requester", ondelete="RESTRICT"
        ),
        sa.CheckConstraint(
            f"NOT publishable OR scopes <@ {PUBLISHABLE_SCOPES_SQL}::text[]",
            name="ck_api_keys_publishable_scopes",
        ),
        sa.CheckConstraint("cardinality(scopes) > 0", name="ck_api_keys_some_scope"),
    )
    op.create_index("ix_api_keys_requester", "api_keys", ["requester"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_requester", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
