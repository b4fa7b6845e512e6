"""Storyboards: shots run as jobs, then joined into one video.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
_DUE = "next_run_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "storyboards",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key_id", sa.String(48), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.SmallInteger, nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("shots", Json, nullable=False),
        sa.Column("result", Json, nullable=True),
        sa.Column("error", Json, nullable=True),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("next_run_at", sa.BigInteger, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("cancel_requested_at", sa.BigInteger, nullable=True),
        sa.Column("expired_at", sa.BigInteger, nullable=True),
        sa.Column("purged_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_storyboards_account_id_id", "storyboards", ["account_id", "id"])
    op.create_index(
        "ix_storyboards_due",
        "storyboards",
        ["next_run_at"],
        postgresql_where=sa.text(_DUE),
        sqlite_where=sa.text(_DUE),
    )


def downgrade() -> None:
    op.drop_index("ix_storyboards_due", table_name="storyboards")
    op.drop_index("ix_storyboards_account_id_id", table_name="storyboards")
    op.drop_table("storyboards")
