"""Credits (balances, holds, an immutable ledger), billing fields on jobs, idempotency keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("held", sa.BigInteger, nullable=False, server_default="0"))
        batch.create_check_constraint("balance_not_negative", "balance >= 0")
        batch.create_check_constraint("held_not_negative", "held >= 0")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("hold_id", sa.String(48), nullable=True))
        batch.add_column(sa.Column("delivered_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("units_consumed", sa.Integer, nullable=True))
        batch.add_column(sa.Column("cost", sa.BigInteger, nullable=True))
    op.create_table(
        "holds",
        sa.Column("id", sa.String(48), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(48), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("captured", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("resolved_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_holds_account_id_accounts"
        ),
        sa.UniqueConstraint("job_id", name="uq_holds_job_id"),
        sa.CheckConstraint("amount >= 0", name="ck_holds_amount_not_negative"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.String(48), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("balance_delta", sa.BigInteger, nullable=False),
        sa.Column("held_delta", sa.BigInteger, nullable=False),
        sa.Column("hold_id", sa.String(48), nullable=True),
        sa.Column("job_id", sa.String(48), nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_ledger_account_id_accounts"
        ),
    )
    op.create_index("ix_ledger_account_id_id", "ledger", ["account_id", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_body", Json, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_ledger_account_id_id", table_name="ledger")
    op.drop_table("ledger")
    op.drop_table("holds")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cost")
        batch.drop_column("units_consumed")
        batch.drop_column("delivered_by")
        batch.drop_column("hold_id")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint(op.f("ck_accounts_held_not_negative"), type_="check")
        batch.drop_constraint(op.f("ck_accounts_balance_not_negative"), type_="check")
        batch.drop_column("held")
        batch.drop_column("balance")
