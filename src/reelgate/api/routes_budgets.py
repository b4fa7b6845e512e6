"""Budgets on the API (``store.budgets``): daily and monthly spend caps.

- ``GET /v1/budgets``: the budgets that bind the calling key (its account's and its
  own), with this period's spent, held and remaining;
- ``/v1/admin/accounts/{id}/budgets[/{period}]`` and ``/v1/admin/keys/{id}/budgets/
  {period}``: list, set (PUT, the cap in credits) and remove (DELETE).

PUT and DELETE are idempotent by nature: the same request twice leaves the same budget.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
)

from reelgate.accounts.admin import parse_credits
from reelgate.api.auth import require_admin, require_read, runtime
from reelgate.api.openapi import errors
from reelgate.errors import NotFound
from reelgate.runtime import Runtime
from reelgate.store import budgets as store
from reelgate.store.accounts import KeyInfo, account_exists
from reelgate.store.db import reading
from reelgate.store.jobs import now_ms

__all__ = ["router"]

router = APIRouter(tags=["budgets"])


class BudgetPeriod(StrEnum):
    DAY = "day"
    MONTH = "month"


def _whole(value: Any) -> Any:
    """A JSON integer may be written 500.0 (JSON Schema calls it an integer too): taken
    as 500; never a boolean, never a fraction (that is what the string form is for)."""
    if isinstance(value, bool):
        raise ValueError("a cap is a number of credits, not a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError('a fractional cap is written as a string, like "12.5"')
        return int(value)
    return value


BudgetCap = (
    Annotated[StrictStr, StringConstraints(pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?$")]
    | Annotated[int, Field(ge=0, le=999_999_999), BeforeValidator(_whole)]
)
"""Credits as a decimal string ("500", "12.5") or a whole number, 0 or more."""


class BudgetSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cap: BudgetCap = Field(description='The cap in credits, e.g. "500" or "12.5".')


def _listing(rt: Runtime, found: list[store.BudgetStatus]) -> dict[str, Any]:
    credit = rt.settings.credit()
    return {"object": "list", "data": [b.to_wire(credit) for b in found]}


@router.get("/v1/budgets")
async def my_budgets(
    key: KeyInfo = Depends(require_read), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """The budgets your submits count against: your account's and your key's."""
    async with reading(rt.db) as conn:
        found = await store.list_budgets(conn, key.account_id, now_ms(), for_key=key.key_id)
    return _listing(rt, found)


@router.get("/v1/admin/accounts/{account_id}/budgets", responses=errors(404))
async def account_budgets(
    account_id: str, _key: KeyInfo = Depends(require_admin), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Every budget of the account and of its keys."""
    async with reading(rt.db) as conn:
        if not await account_exists(conn, account_id):
            raise NotFound(f"No account {account_id!r}.", param="account_id")
        found = await store.list_budgets(conn, account_id, now_ms())
    return _listing(rt, found)


async def _set(
    rt: Runtime, account_id: str | None, key_id: str, period: str, cap: str | int
) -> Any:
    amount = parse_credits(cap)
    async with rt.db.begin() as conn:
        account = account_id or await store.key_account(conn, key_id)
        status = await store.set_budget(conn, account, key_id, period, amount, now_ms())
    return status.to_wire(rt.settings.credit())


async def _remove(rt: Runtime, account_id: str | None, key_id: str, period: str) -> Any:
    async with rt.db.begin() as conn:
        account = account_id or await store.key_account(conn, key_id)
        await store.remove_budget(conn, account, key_id, period)
    return {
        "object": "budget",
        "account_id": account,
        "key_id": key_id or None,
        "period": period,
        "deleted": True,
    }


@router.put("/v1/admin/accounts/{account_id}/budgets/{period}", responses=errors(400, 404))
async def set_account_budget(
    account_id: str,
    period: BudgetPeriod,
    body: BudgetSet,
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Cap what the whole account may spend per UTC ``day`` or ``month``."""
    result: dict[str, Any] = await _set(rt, account_id, store.ACCOUNT, period.value, body.cap)
    return result


@router.delete("/v1/admin/accounts/{account_id}/budgets/{period}", responses=errors(400, 404))
async def remove_account_budget(
    account_id: str,
    period: BudgetPeriod,
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    result: dict[str, Any] = await _remove(rt, account_id, store.ACCOUNT, period.value)
    return result


@router.put("/v1/admin/keys/{key_id}/budgets/{period}", responses=errors(400, 404))
async def set_key_budget(
    key_id: str,
    period: BudgetPeriod,
    body: BudgetSet,
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Cap what one API key may spend per UTC ``day`` or ``month`` (the account's
    budgets apply too)."""
    result: dict[str, Any] = await _set(rt, None, key_id, period.value, body.cap)
    return result


@router.delete("/v1/admin/keys/{key_id}/budgets/{period}", responses=errors(400, 404))
async def remove_key_budget(
    key_id: str,
    period: BudgetPeriod,
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    result: dict[str, Any] = await _remove(rt, None, key_id, period.value)
    return result
