"""What a credit is worth: one unit for every price, balance, hold and bill.

Prices, balances and the ledger are kept in millicredits (integers). A credit stands
for ``credit_value`` of ``currency`` (a setting; by default one US cent, so the model
guide's credits are as it gives them: Veo 3.1 fast 20 credits/s is $0.20/s). Money
shown beside credits is exact decimal arithmetic on those integers, never a float;
the media-video-from-text service's ``token_cost`` is the one place the wire wants a
number, and it is made from the exact value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

__all__ = [
    "DEFAULT_CREDIT_VALUE",
    "MILLICREDITS_PER_USD",
    "CreditValue",
    "millicredits_for_usd",
]

DEFAULT_CREDIT_VALUE = Decimal("0.01")
MILLICREDITS_PER_USD = 100_000
"""At the default value (1 credit = $0.01): how catalog list prices given in US dollars
(fal's, Replicate's, the media service's $1.50/s) become credits."""


def millicredits_for_usd(usd: str) -> int:
    """Millicredits for a US-dollar amount at the default credit value (rounded up)."""
    exact = Decimal(usd) * MILLICREDITS_PER_USD
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class CreditValue:
    per_credit: Decimal = DEFAULT_CREDIT_VALUE
    currency: str = "USD"

    def millicredits_for_usd(self, usd: str) -> int:
        """Millicredits at this credit value for a USD amount (rounded up); for another
        currency the amount is taken at par (set the credit value in that currency)."""
        exact = Decimal(usd) * 1000 / self.per_credit
        return int(exact.to_integral_value(rounding=ROUND_CEILING))

    def amount(self, millicredits: int) -> Decimal:
        """The exact money ``millicredits`` stand for."""
        return Decimal(millicredits) * self.per_credit / 1000

    def text(self, millicredits: int) -> str:
        """An exact decimal string with at least two places: "6.00", "0.0045"."""
        value = self.amount(millicredits)
        places = max(2, -int(value.normalize().as_tuple().exponent))
        return f"{value:.{places}f}"

    def wire(self, millicredits: int) -> dict[str, Any]:
        return {"amount": self.text(millicredits), "currency": self.currency}
