"""What a job may cost (the hold) and what it does cost (the capture)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the catalog's list prices need billing.money: no import cycle
    from reelgate.catalog import Catalog

__all__ = ["billable_seconds", "charge_for", "format_credits", "hold_for"]


def format_credits(millicredits: int) -> str:
    """An exact decimal string, for wire formats that want one (never a float)."""
    sign = "-" if millicredits < 0 else ""
    whole, frac = divmod(abs(millicredits), 1000)
    return f"{sign}{whole}.{frac:03d}"


def hold_for(
    catalog: Catalog,
    chain: Sequence[str],
    resolution: str,
    seconds: int,
    *,
    audio: bool | None = None,
    provider_params: Mapping[str, Any] | None = None,
) -> int:
    """The most any model of the chain could charge for ``seconds`` at ``resolution``
    (a synced model's price may also depend on ``audio`` and its own inputs)."""
    return (
        max(catalog.get(m).price_for_request(resolution, audio, provider_params) for m in chain)
        * seconds
    )


def billable_seconds(requested: int, delivered: float | None) -> int:
    """Whole seconds delivered, never more than requested (nor less than one)."""
    if delivered is None:
        return requested
    return max(1, min(requested, round(delivered)))


def charge_for(
    catalog: Catalog,
    model: str,
    resolution: str,
    seconds: int,
    *,
    audio: bool | None = None,
    provider_params: Mapping[str, Any] | None = None,
) -> int:
    """The delivering model's price for what was delivered (the hold caps it on capture)."""
    return catalog.get(model).price_for_request(resolution, audio, provider_params) * seconds
