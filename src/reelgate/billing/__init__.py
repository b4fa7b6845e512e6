"""Credits: prices, holds, captures and releases — integers (millicredits) only.

1 credit = 1000 millicredits. Every movement is an immutable ``ledger`` row
written in the same transaction as the balance it changes, and a hold is
resolved exactly once (a guarded ``UPDATE ... WHERE status = 'open'``) in the
same transaction as the job's final state.
"""

from reelgate.billing.ledger import (
    Balance,
    capture_hold,
    get_balance,
    grant,
    place_hold,
    release_hold,
)
from reelgate.billing.pricing import billable_seconds, charge_for, format_credits, hold_for

__all__ = [
    "Balance",
    "billable_seconds",
    "capture_hold",
    "charge_for",
    "format_credits",
    "get_balance",
    "grant",
    "hold_for",
    "place_hold",
    "release_hold",
]
