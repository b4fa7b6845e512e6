"""What each delivered job cost upstream, and the route that delivered it.

Plain ADD COLUMNs (no batch rebuild on SQLite): the in-flight triggers of 0012 stay.
``reelgate_step`` writes a step's changed columns by name, so it needs no change.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("delivered_route", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("upstream_cost", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("upstream_cost")
        batch.drop_column("delivered_route")
