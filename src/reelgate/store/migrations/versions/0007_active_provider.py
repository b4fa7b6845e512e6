"""Which provider a job occupies while it is submitted upstream (per-deployment
concurrency caps count these).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("active_provider", sa.String(32), nullable=True))
    op.create_index(
        "ix_jobs_active_provider",
        "jobs",
        ["active_provider"],
        postgresql_where=sa.text("active_provider IS NOT NULL"),
        sqlite_where=sa.text("active_provider IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_active_provider", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("active_provider")
