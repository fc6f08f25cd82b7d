"""Review policies per requester and the audit trail of people's decisions (issue 14).

``review_decisions`` is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION review_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'review_decisions is an append-only audit trail: % refused', TG_OP;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "review_policies",
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("requester", name="pk_review_policies"),
        sa.CheckConstraint("policy IN ('auto', 'flagged', 'all')", name="ck_review_policies_known_policy"),
    )
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("variant", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("regenerate", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reviewer", sa.String(32), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_decisions"),
        sa.ForeignKeyConstraint(
            ["reviewer"], ["api_keys.key_id"], name="fk_review_decisions_reviewer", ondelete="RESTRICT"
        ),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="ck_review_decisions_known_decision"),
        sa.CheckConstraint(
            "decision = 'reject' OR NOT regenerate", name="ck_review_decisions_only_reject_regenerates"
        ),
        sa.CheckConstraint(
            "decision = 'approve' OR reason IS NOT NULL", name="ck_review_decisions_reject_has_reason"
        ),
    )
    op.create_index("ix_review_decisions_job_id", "review_decisions", ["job_id", "variant"])
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER review_decisions_append_only BEFORE UPDATE OR DELETE ON review_decisions "
        "FOR EACH ROW EXECUTE FUNCTION review_decisions_append_only()"
    )
    op.execute(
        "CREATE TRIGGER review_decisions_no_truncate BEFORE TRUNCATE ON review_decisions "
        "FOR EACH STATEMENT EXECUTE FUNCTION review_decisions_append_only()"
    )


def downgrade() -> None:
    op.drop_index("ix_review_decisions_job_id", table_name="review_decisions")
    op.drop_table("review_decisions")
    op.execute("DROP FUNCTION review_decisions_append_only()")
    op.drop_table("review_policies")
