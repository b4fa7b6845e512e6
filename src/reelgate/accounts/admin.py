"""Operator actions on accounts, keys and credits — shared by the admin API and the CLI.

Each action is one transaction of the store (``store.base``), so it runs the same on
SQLite, PostgreSQL and the in-memory twin."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from reelgate.errors import NotFound, ValidationFailed
from reelgate.store.accounts import ALL_SCOPES, KeyRow
from reelgate.store.ambiguous import AmbiguousCreate
from reelgate.store.base import Store, Tx
from reelgate.store.jobs import now_ms
from reelgate.store.ledger import Balance

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


async def _require_account(tx: Tx, account_id: str) -> None:
    if not await tx.account_exists(account_id):
        raise NotFound(f"No account {account_id!r}.", param="account_id")


Then = Callable[[Tx, Any], Awaitable[None]]
"""Runs inside the action's own transaction with its result (the API stores its
Idempotency-Key answer there, so the answer and the action commit together)."""


async def create_account_with(
    store: Store,
    name: str,
    *,
    credits: int = 0,
    flags: dict[str, Any] | None = None,
    then: Then | None = None,
) -> tuple[str, Balance]:
    async with store.begin() as tx:
        account_id = await tx.create_account(name)
        if flags:
            await tx.set_flags(account_id, flags)
        balance = (
            await tx.grant(account_id, credits, "initial grant")
            if credits
            else await tx.get_balance(account_id)
        )
        if then is not None:
            await then(tx, (account_id, balance))
    return account_id, balance


async def update_flags(store: Store, account_id: str, **flags: Any) -> dict[str, Any]:
    async with store.begin() as tx:
        await _require_account(tx, account_id)
        return await tx.set_flags(account_id, flags)


async def grant_credits(
    store: Store, account_id: str, amount: int, note: str, *, then: Then | None = None
) -> Balance:
    async with store.begin() as tx:
        balance = await tx.grant(account_id, amount, note or "operator grant")
        if then is not None:
            await then(tx, balance)
    return balance


async def issue_key(
    store: Store,
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
    async with store.begin() as tx:
        await _require_account(tx, account_id)
        key = await tx.create_key(account_id, scopes=checked, name=name, expires_at=expires_at)
        shown = await tx.key_row(key)
        if then is not None:
            await then(tx, shown)
    return key, shown


async def list_keys(store: Store, account_id: str) -> list[KeyRow]:
    async with store.reading() as tx:
        await _require_account(tx, account_id)
        return await tx.key_rows(account_id)


async def revoke_key(store: Store, key_id: str, account_id: str | None = None) -> None:
    async with store.begin() as tx:
        if await tx.revoke_key(key_id, account_id, now_ms()) is None:
            raise NotFound(f"No API key {key_id!r}.", param="key_id")


async def ambiguous_creates(
    store: Store, *, include_resolved: bool = False, limit: int = 100
) -> list[AmbiguousCreate]:
    """Upstream creates whose outcome reelgate could not settle: each may be a video
    the provider bills. Check the provider's console, then resolve them."""
    async with store.reading() as tx:
        return await tx.list_ambiguous(include_resolved=include_resolved, limit=limit)


async def resolve_ambiguous_create(store: Store, row_id: str, resolution: str) -> None:
    async with store.begin() as tx:
        if not await tx.resolve_ambiguous(row_id, resolution, now_ms()):
            raise NotFound(
                f"No open ambiguous create {row_id!r} (unknown, or already resolved).",
                param="id",
            )
