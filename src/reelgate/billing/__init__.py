"""Credits: prices — integers (millicredits) only. Balances, holds and the ledger are
kept by ``store.ledger``.

1 credit = 1000 millicredits. Every movement is an immutable ``ledger`` row
written in the same transaction as the balance it changes, and a hold is
resolved exactly once (a guarded ``UPDATE ... WHERE status = 'open'``) in the
same transaction as the job's final state.
"""

from reelgate.billing.pricing import billable_seconds, charge_for, format_credits, hold_for

__all__ = [
    "billable_seconds",
    "charge_for",
    "format_credits",
    "hold_for",
]
