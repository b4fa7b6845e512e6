"""Index the jobs in flight per account (the submit-time in-flight caps read them).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_active_account",
        "jobs",
        ["account_id"],
        postgresql_where=sa.text("next_run_at IS NOT NULL"),
        sqlite_where=sa.text("next_run_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_active_account", table_name="jobs")
