"""One unit of money: a credit is one US cent (it was one US dollar).

Until now one credit stood for a dollar (the media-video-from-text service's
``token_cost`` was the credits charged), while the model guide's prices are in credits
of about a cent. From here a credit is worth ``credit_value`` (default $0.01) and every
catalog price is in those credits (the service's $1.50/s is 150 credits/s). So that
nobody's money changes, every stored amount is multiplied by 100: balances, holds,
ledger lines and what jobs were charged. A balance of 12.5 credits ($12.50) becomes
1,250 credits ($12.50). The ledger is append-only by rule; this change of unit is the
one rewrite, in the same transaction as the balances it explains, so its sums still
equal the balances.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

FACTOR = 100

_COLUMNS = {
    "accounts": ("balance", "held"),
    "holds": ("amount", "captured"),
    "ledger": ("balance_delta", "held_delta"),
    "jobs": ("cost",),
}


def _scale(multiply: bool) -> None:
    for table, columns in _COLUMNS.items():
        sets = ", ".join(
            f"{c} = {c} * {FACTOR}" if multiply else f"{c} = {c} / {FACTOR}" for c in columns
        )
        op.execute(f"UPDATE {table} SET {sets}")  # noqa: S608 - fixed names, no input


def upgrade() -> None:
    _scale(multiply=True)


def downgrade() -> None:
    # back to dollar credits: exact for amounts made before the upgrade; a later amount
    # that is not a whole hundred loses its cents' fractions (integer division)
    _scale(multiply=False)
