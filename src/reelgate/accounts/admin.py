"""Operator actions on accounts, keys and credits — shared by the admin API and the CLI."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.errors import NotFound, ValidationFailed
from reelgate.store.accounts import (
    ALL_SCOPES,
    KeyRow,
    account_exists,
    create_account,
    create_key,
    key_row,
    key_rows,
    revoke,
    set_flags,
)
from reelgate.store.ambiguous import AmbiguousCreate, list_ambiguous, resolve_ambiguous
from reelgate.store.db import reading
from reelgate.store.jobs import now_ms
from reelgate.store.ledger import Balance, get_balance, grant

__all__ = [
    "MAX_CREDITS",
    "KeyRow",
    "ambiguous_creates",
    "create_account_with",
    "grant_credits",
    "issue_key",
    "list_keys",
    "parse_credits",
    "resolve_ambiguous_create",
    "revoke_key",
    "update_flags",
]


MAX_CREDITS = 1_000_000_000
"""The most credits one grant may add or remove (and so the most an account starts with)."""
MAX_KEY_DAYS = 3650
_CREDITS = re.compile(r"-?[0-9]{1,10}(\.[0-9]{1,3})?")


def parse_credits(value: str | int) -> int:
    """Credits as given by a person ("12.5", 12) to exact millicredits; never a float.
    ASCII digits only (Decimal also takes fullwidth digits), at most 3 decimals, and at most
    ``MAX_CREDITS`` either way."""
    if isinstance(value, bool) or not (isinstance(value, int) or _CREDITS.fullmatch(value)):
        raise ValidationFailed(
            f"{str(value)[:40]!r} is not a number of credits: use digits with at most 3 "
            'decimals, like "12.5".',
            param="amount",
        )
    amount = Decimal(str(value)) * 1000
    if abs(amount) > MAX_CREDITS * 1000:
        raise ValidationFailed(
            f"At most {MAX_CREDITS} credits can be granted or removed at once.",
            param="amount",
            limit=MAX_CREDITS,
        )
    return int(amount)


def _check_scopes(scopes: Sequence[str]) -> list[str]:
    bad = [s for s in scopes if s not in ALL_SCOPES]
    if bad or not scopes:
        raise ValidationFailed(
            f"Unknown or missing scopes {bad}; choose from {list(ALL_SCOPES)}.",
            param="scopes",
            allowed=list(ALL_SCOPES),
        )
    return list(dict.fromkeys(scopes))


async def _require_account(conn: Any, account_id: str) -> None:
    if not await account_exists(conn, account_id):
        raise NotFound(f"No account {account_id!r}.", param="account_id")


Then = Callable[[AsyncConnection, Any], Awaitable[None]]
"""Runs inside the action's own transaction with its result (the API stores its
Idempotency-Key answer there, so the answer and the action commit together)."""


async def create_account_with(
    db: AsyncEngine,
    name: str,
    *,
    credits: int = 0,
    flags: dict[str, Any] | None = None,
    then: Then | None = None,
) -> tuple[str, Balance]:
    async with db.begin() as conn:
        account_id = await create_account(conn, name)
        if flags:
            await set_flags(conn, account_id, **flags)
        balance = (
            await grant(conn, account_id, credits, "initial grant")
            if credits
            else await get_balance(conn, account_id)
        )
        if then is not None:
            await then(conn, (account_id, balance))
    return account_id, balance


async def update_flags(db: AsyncEngine, account_id: str, **flags: Any) -> dict[str, Any]:
    async with db.begin() as conn:
        await _require_account(conn, account_id)
        return await set_flags(conn, account_id, **flags)


async def grant_credits(
    db: AsyncEngine, account_id: str, amount: int, note: str, *, then: Then | None = None
) -> Balance:
    async with db.begin() as conn:
        balance = await grant(conn, account_id, amount, note or "operator grant")
        if then is not None:
            await then(conn, balance)
    return balance


async def issue_key(
    db: AsyncEngine,
    account_id: str,
    *,
    scopes: Sequence[str] = ALL_SCOPES,
    name: str = "",
    expires_in_days: float | None = None,
    then: Then | None = None,
) -> tuple[str, KeyRow]:
    """A new key, returned once (with its listing row); only its hash is stored."""
    checked = _check_scopes(scopes)
    expires_at = None
    if expires_in_days is not None:
        if not 0 < expires_in_days <= MAX_KEY_DAYS:
            raise ValidationFailed(
                f"expires_in_days must be more than 0 and at most {MAX_KEY_DAYS}.",
                param="expires_in_days",
            )
        expires_at = now_ms() + int(expires_in_days * 86_400_000)
    async with db.begin() as conn:
        await _require_account(conn, account_id)
        key = await create_key(conn, account_id, scopes=checked, name=name, expires_at=expires_at)
        shown = await key_row(conn, key)
        if then is not None:
            await then(conn, shown)
    return key, shown


async def list_keys(db: AsyncEngine, account_id: str) -> list[KeyRow]:
    async with reading(db) as conn:
        await _require_account(conn, account_id)
        return await key_rows(conn, account_id)


async def revoke_key(db: AsyncEngine, key_id: str, account_id: str | None = None) -> None:
    async with db.begin() as conn:
        if await revoke(conn, key_id, account_id, now_ms()) is None:
            raise NotFound(f"No API key {key_id!r}.", param="key_id")


async def ambiguous_creates(
    db: AsyncEngine, *, include_resolved: bool = False, limit: int = 100
) -> list[AmbiguousCreate]:
    """Upstream creates whose outcome reelgate could not settle: each may be a video
    the provider bills. Check the provider's console, then resolve them."""
    async with reading(db) as conn:
        return await list_ambiguous(conn, include_resolved=include_resolved, limit=limit)


async def resolve_ambiguous_create(db: AsyncEngine, row_id: str, resolution: str) -> None:
    async with db.begin() as conn:
        if not await resolve_ambiguous(conn, row_id, resolution, now_ms()):
            raise NotFound(
                f"No open ambiguous create {row_id!r} (unknown, or already resolved).",
                param="id",
            )
