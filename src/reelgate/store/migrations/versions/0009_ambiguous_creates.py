"""Upstream creates whose outcome reelgate could not settle, listed for operators;
and an index to tell whether an upstream job is already some job's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ambiguous_creates",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("job_id", sa.String(48), nullable=False),
        sa.Column("attempt_no", sa.Integer, nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("upstream_id", sa.String(256), nullable=True),
        sa.Column("sent_at", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger, nullable=True),
        sa.Column("resolution", sa.String(500), nullable=True),
    )
    op.create_index(
        "ix_ambiguous_creates_open",
        "ambiguous_creates",
        ["id"],
        postgresql_where=sa.text("resolved_at IS NULL"),
        sqlite_where=sa.text("resolved_at IS NULL"),
    )
    op.create_index(
        "ix_jobs_upstream_id",
        "jobs",
        ["upstream_id"],
        postgresql_where=sa.text("upstream_id IS NOT NULL"),
        sqlite_where=sa.text("upstream_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_upstream_id", table_name="jobs")
    op.drop_index("ix_ambiguous_creates_open", table_name="ambiguous_creates")
    op.drop_table("ambiguous_creates")
