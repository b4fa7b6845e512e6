"""Provider cooldowns: a deployment that answered 'quota' is skipped until a time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_cooldowns",
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("until_at", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("deployment", name="pk_provider_cooldowns"),
    )


def downgrade() -> None:
    op.drop_table("provider_cooldowns")
