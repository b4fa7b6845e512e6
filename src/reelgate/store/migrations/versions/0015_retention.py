"""Retention: pinned, expired and purged videos, and the sweeper's indexes.

Plain ADD COLUMNs (no batch rebuild on SQLite): the in-flight triggers of 0012 stay.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_KEPT = "completed_at IS NOT NULL AND expired_at IS NULL AND pinned_at IS NULL"
_UNPURGED = "expired_at IS NOT NULL AND purged_at IS NULL"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("pinned_at", sa.BigInteger, nullable=True))
    op.add_column("jobs", sa.Column("expired_at", sa.BigInteger, nullable=True))
    op.add_column("jobs", sa.Column("purged_at", sa.BigInteger, nullable=True))
    op.create_index(
        "ix_jobs_retention",
        "jobs",
        ["completed_at"],
        postgresql_where=sa.text(_KEPT),
        sqlite_where=sa.text(_KEPT),
    )
    op.create_index(
        "ix_jobs_unpurged",
        "jobs",
        ["expired_at"],
        postgresql_where=sa.text(_UNPURGED),
        sqlite_where=sa.text(_UNPURGED),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_unpurged", table_name="jobs")
    op.drop_index("ix_jobs_retention", table_name="jobs")
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("expired_at")
        batch.drop_column("pinned_at")
