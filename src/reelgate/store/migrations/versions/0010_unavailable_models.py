"""Models a provider said it no longer serves on a route, marked for a long while.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unavailable_models",
        sa.Column("deployment", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("marked_at", sa.BigInteger, nullable=False),
        sa.Column("until_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("unavailable_models")
