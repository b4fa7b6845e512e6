"""Balances, holds and the ledger. Every function runs inside the caller's
transaction, so a job's state change and its money movement commit together.

Concurrency: the account row is locked first (``FOR UPDATE`` on PostgreSQL;
SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so N concurrent
submits against a balance covering K jobs admit exactly K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.billing.money import CreditValue
from reelgate.billing.pricing import format_credits
from reelgate.errors import NotFound, PaymentRequired, ValidationFailed
from reelgate.ids import new_id
from reelgate.store.jobs import now_ms
from reelgate.store.schema import accounts, holds, ledger
from reelgate.store.step import settlement_lines

__all__ = [
    "MAX_BALANCE",
    "Balance",
    "capture_hold",
    "check_grant",
    "get_balance",
    "grant",
    "hold_rows",
    "ledger_row",
    "not_enough",
    "place_hold",
    "release_hold",
]


@dataclass(frozen=True)
class Balance:
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held

    def to_wire(self, credit: CreditValue | None = None) -> dict[str, object]:
        """Credits (exact decimal strings), millicredits, and the money they stand for."""
        credit = credit or CreditValue()
        return {
            "balance": format_credits(self.balance),
            "held": format_credits(self.held),
            "available": format_credits(self.available),
            "millicredits": {
                "balance": self.balance,
                "held": self.held,
                "available": self.available,
            },
            "money": {
                "currency": credit.currency,
                "balance": credit.text(self.balance),
                "held": credit.text(self.held),
                "available": credit.text(self.available),
            },
        }


def not_enough(current: Balance, amount: int) -> PaymentRequired:
    """The 402 for a hold of ``amount`` that ``current`` cannot cover, with the numbers."""
    shortfall = amount - current.available
    return PaymentRequired(
        f"Not enough credits: this job needs a hold of {format_credits(amount)} credits "
        f"but only {format_credits(current.available)} are available "
        f"(short by {format_credits(shortfall)}). Add credits or request fewer seconds.",
        balance=format_credits(current.balance),
        held=format_credits(current.held),
        available=format_credits(current.available),
        hold_needed=format_credits(amount),
        shortfall=format_credits(shortfall),
    )


async def _lock(conn: AsyncConnection, account_id: str) -> Balance:
    query = sa.select(accounts.c.balance, accounts.c.held).where(accounts.c.id == account_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"No account {account_id!r}.", param="account_id")
    return Balance(balance=int(row.balance), held=int(row.held))


async def get_balance(conn: AsyncConnection, account_id: str) -> Balance:
    row = (
        await conn.execute(
            sa.select(accounts.c.balance, accounts.c.held).where(accounts.c.id == account_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"No account {account_id!r}.", param="account_id")
    return Balance(balance=int(row.balance), held=int(row.held))


def ledger_row(
    account_id: str,
    kind: str,
    *,
    balance_delta: int = 0,
    held_delta: int = 0,
    hold_id: str | None = None,
    job_id: str | None = None,
    note: str = "",
    now: int | None = None,
) -> dict[str, Any]:
    """One ``ledger`` line, every column."""
    return {
        "id": new_id("led"),
        "account_id": account_id,
        "kind": kind,
        "balance_delta": balance_delta,
        "held_delta": held_delta,
        "hold_id": hold_id,
        "job_id": job_id,
        "note": note[:500],
        "created_at": now_ms() if now is None else now,
    }


def hold_rows(
    account_id: str, job_id: str, hold_id: str, amount: int, now: int, key_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new open hold (every column) and the ledger line that moves it into ``held``:
    what ``place_hold`` writes, and what ``store.submit`` writes in its one call."""
    hold = {
        "id": hold_id,
        "account_id": account_id,
        "job_id": job_id,
        "amount": amount,
        "status": "open",
        "captured": None,
        "created_at": now,
        "resolved_at": None,
        "key_id": key_id,
    }
    line = ledger_row(
        account_id,
        "hold",
        held_delta=amount,
        hold_id=hold_id,
        job_id=job_id,
        note="hold for job",
        now=now,
    )
    return hold, line


async def _apply(conn: AsyncConnection, line: dict[str, Any]) -> None:
    """Move the account's balance and held by a ledger line's deltas, and write it."""
    await conn.execute(
        accounts.update()
        .where(accounts.c.id == line["account_id"])
        .values(
            balance=accounts.c.balance + line["balance_delta"],
            held=accounts.c.held + line["held_delta"],
        )
    )
    await conn.execute(_INSERT_LEDGER, line)


_INSERT_LEDGER = ledger.insert()
_INSERT_HOLD = holds.insert()
"""Parameters go with the execute: the compiled statements are reused."""

MAX_BALANCE = 10**15
"""Millicredits (a trillion credits): far from the 64-bit columns' limit."""


async def grant(
    conn: AsyncConnection, account_id: str, amount: int, note: str = "grant"
) -> Balance:
    """Add credits (a negative amount takes them away, never below zero)."""
    current = await _lock(conn, account_id)
    check_grant(current, amount)
    await _apply(conn, ledger_row(account_id, "grant", balance_delta=amount, note=note))
    return Balance(current.balance + amount, current.held)


def check_grant(current: Balance, amount: int) -> None:
    """Refuse a grant that would pass ``MAX_BALANCE`` or leave less than is held."""
    if current.balance + amount > MAX_BALANCE:
        raise ValidationFailed(
            f"A balance may not exceed {format_credits(MAX_BALANCE)} credits.",
            param="amount",
        )
    if current.balance + amount < current.held:
        raise PaymentRequired(
            f"Cannot remove {format_credits(-amount)} credits: only "
            f"{format_credits(current.available)} are available.",
            code="insufficient_credits",
        )


async def place_hold(conn: AsyncConnection, account_id: str, job_id: str, amount: int) -> str:
    """Reserve ``amount`` for ``job_id`` or raise 402 with the numbers."""
    current = await _lock(conn, account_id)
    if current.available < amount:
        raise not_enough(current, amount)
    hold_id = new_id("hold")
    hold, line = hold_rows(account_id, job_id, hold_id, amount, now_ms())
    await conn.execute(_INSERT_HOLD, hold)
    await _apply(conn, line)
    return hold_id


async def _resolve(conn: AsyncConnection, hold_id: str, charge: int) -> int | None:
    """Close an open hold, charging ``charge`` (at most the hold) and releasing the rest;
    None if it was already resolved (the exactly-once guard)."""
    now = now_ms()
    captured = sa.case((holds.c.amount < charge, holds.c.amount), else_=charge)
    row = (
        await conn.execute(
            holds.update()
            .where(holds.c.id == hold_id, holds.c.status == "open")
            .values(status="captured" if charge else "released", captured=captured, resolved_at=now)
            .returning(holds.c.amount, holds.c.captured, holds.c.account_id, holds.c.job_id)
        )
    ).first()
    if row is None:
        return None
    lines = settlement_lines(
        row.account_id, hold_id, row.job_id, int(row.amount), int(row.captured), now
    )
    # the update locks the account's row (SQLite's writer holds the whole file)
    await conn.execute(
        accounts.update()
        .where(accounts.c.id == row.account_id)
        .values(
            balance=accounts.c.balance + sum(line["balance_delta"] for line in lines),
            held=accounts.c.held + sum(line["held_delta"] for line in lines),
        )
    )
    await conn.execute(_INSERT_LEDGER, lines)
    return int(row.amount)


async def capture_hold(conn: AsyncConnection, hold_id: str, amount: int) -> bool:
    """Charge ``amount`` (capped by the hold) and release the rest. False if already resolved."""
    return await _resolve(conn, hold_id, amount) is not None


async def release_hold(conn: AsyncConnection, hold_id: str) -> bool:
    """Release the whole hold. False if already resolved."""
    return await _resolve(conn, hold_id, 0) is not None
