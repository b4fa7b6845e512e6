"""Budgets: daily and monthly spend caps, per account and per API key.

A job counts against the budgets of the UTC day and month of its submit, for its
account (``key_id`` '') and for the key that submitted it. What counts is what the
scope's jobs of that period were charged (``spent``) plus what their open holds reserve
(``held``): a submit whose hold would take ``spent + held`` past a cap is refused
(402 ``budget_exceeded``), so no set of concurrent submits can pass a cap, and a job's
final charge never exceeds its hold.

The counters (``budget_spend``) are kept by the database, never by code: the submit adds
a hold (``reelgate_submit`` on PostgreSQL, ``sqlite_budgets_*`` below on SQLite's writer
thread), and a trigger on ``holds`` moves a settled hold into ``spent`` (migration
0018). A row exists only for a scope with a budget; setting a budget fills the current
period's row from the holds, under the account's lock, so it starts from the truth.

Reaching 80 % and then 100 % of a cap, or a first refusal, queues one ``budget.warning``
/ ``budget.exceeded`` webhook event per budget and period (``notified``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.billing import format_credits
from reelgate.billing.money import CreditValue
from reelgate.errors import NotFound, PaymentRequired, ValidationFailed
from reelgate.store.schema import accounts, api_keys, budget_spend, budgets, holds

__all__ = [
    "ACCOUNT",
    "ADJECTIVE",
    "PERIODS",
    "Budget",
    "BudgetStatus",
    "Period",
    "budget_exceeded",
    "budget_wire",
    "level",
    "list_budgets",
    "period_bounds",
    "period_key",
    "remove_budget",
    "set_budget",
    "sqlite_budgets",
    "sqlite_budgets_check",
    "sqlite_budgets_hold",
]

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
ACCOUNT = ""
"""The ``key_id`` of a budget on the whole account."""
ADJECTIVE = {"day": "daily", "month": "monthly"}
WARNING, EXCEEDED = "budget.warning", "budget.exceeded"


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def period_key(period: str, ms: int) -> str:
    """The period holding ``ms``: "day:2026-12-03" or "month:2026-12" (UTC), as the
    database writes it."""
    return f"{period}:{_utc(ms).strftime('%Y-%m-%d' if period == 'day' else '%Y-%m')}"


def period_bounds(period: str, ms: int) -> tuple[int, int]:
    """[start, end) of the period holding ``ms``, in ms."""
    at = _utc(ms)
    if period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromtimestamp(start.timestamp() + 86400, UTC)
    else:
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def level(committed: int, cap: int) -> int:
    """The threshold ``committed`` has reached: 100, 80 or 0 (integers: 80 % exactly)."""
    if committed >= cap:
        return 100
    return 80 if committed * 5 >= cap * 4 else 0


@dataclass(frozen=True)
class Budget:
    account_id: str
    key_id: str
    """'' for the whole account."""
    period: str
    cap: int
    """Millicredits."""
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    period_key: str
    starts_at: int
    resets_at: int
    spent: int
    held: int
    notified: int

    @property
    def committed(self) -> int:
        return self.spent + self.held

    @property
    def remaining(self) -> int:
        return max(0, self.budget.cap - self.committed)

    def to_wire(self, credit: CreditValue) -> dict[str, Any]:
        b = self.budget
        return {
            "object": "budget",
            "account_id": b.account_id,
            "scope": "key" if b.key_id else "account",
            "key_id": b.key_id or None,
            "period": b.period,
            "period_start": self.starts_at // 1000,
            "resets_at": self.resets_at // 1000,
            **_amounts(credit, cap=b.cap, spent=self.spent, held=self.held),
            "remaining": format_credits(self.remaining),
            "remaining_money": credit.wire(self.remaining),
            "used_percent": (self.committed * 100 // b.cap) if b.cap else 100,
            "notified_threshold": self.notified or None,
            "created_at": b.created_at // 1000,
            "updated_at": b.updated_at // 1000,
        }


def _amounts(credit: CreditValue, **amounts: int) -> dict[str, Any]:
    """Each amount as credits ("12.5"), millicredits and money."""
    out: dict[str, Any] = {}
    for name, value in amounts.items():
        out[name] = format_credits(value)
        out[f"{name}_millicredits"] = value
        out[f"{name}_money"] = credit.wire(value)
    return out


def budget_wire(account_id: str, detail: dict[str, Any], credit: CreditValue) -> dict[str, Any]:
    """A budget event's ``data``: the budget and its numbers when it was reached."""
    cap, spent, held, price = (int(detail[k]) for k in ("cap", "spent", "held", "price"))
    _, resets = period_bounds(detail["period"], _now_of(detail))
    return {
        "object": "budget.threshold",
        "account_id": account_id,
        "scope": "key" if detail["key_id"] else "account",
        "key_id": detail["key_id"] or None,
        "period": detail["period"],
        "threshold": int(detail["threshold"]),
        "reason": detail["reason"],
        "resets_at": resets // 1000,
        **_amounts(credit, cap=cap, spent=spent, held=held, price=price),
    }


def budget_exceeded(detail: dict[str, Any], credit: CreditValue) -> PaymentRequired:
    """The 402 for a submit a budget refused, with the numbers (``detail`` as the submit
    returns it: key_id, period, cap, spent, held, price)."""
    cap, spent, held, price = (int(detail[k]) for k in ("cap", "spent", "held", "price"))
    scope = f"API key {detail['key_id']}" if detail["key_id"] else "account"
    left = max(0, cap - spent - held)
    _, resets = period_bounds(detail["period"], _now_of(detail))
    refusal = PaymentRequired(
        f"This job would pass the {ADJECTIVE[detail['period']]} budget of this {scope}: its "
        "price "
        f"is {format_credits(price)} credits, and {format_credits(spent)} are spent and "
        f"{format_credits(held)} held of the cap of {format_credits(cap)} "
        f"({format_credits(left)} left). The budget resets at "
        f"{_utc(resets).strftime('%Y-%m-%d %H:%M')} UTC; ask an operator to raise it, or "
        "request fewer seconds.",
        code="budget_exceeded",
        scope="key" if detail["key_id"] else "account",
        key_id=detail["key_id"] or None,
        period=detail["period"],
        resets_at=resets // 1000,
        **_amounts(credit, cap=cap, spent=spent, held=held, price=price, remaining=left),
    )
    refusal.lasting = False  # a raised cap or the next period lifts it
    return refusal


def _now_of(detail: dict[str, Any]) -> int:
    """A time inside the refused period (its first ms) from its key."""
    _, _, name = str(detail["period_key"]).partition(":")
    parts = [int(p) for p in name.split("-")] + [1]
    return int(datetime(parts[0], parts[1], parts[2], tzinfo=UTC).timestamp() * 1000)


# ── the operator's side ──


def _upsert(conn: AsyncConnection, table: sa.Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


async def _lock_account(conn: AsyncConnection, account_id: str) -> None:
    query = sa.select(accounts.c.id).where(accounts.c.id == account_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    if (await conn.execute(query)).first() is None:
        raise NotFound(f"No account {account_id!r}.", param="account_id")


async def key_account(conn: AsyncConnection, key_id: str) -> str:
    """The account of an API key (404 if there is no such key)."""
    row = (
        await conn.execute(sa.select(api_keys.c.account_id).where(api_keys.c.id == key_id))
    ).first()
    if row is None:
        raise NotFound(f"No API key {key_id!r}.", param="key_id")
    return str(row.account_id)


def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise ValidationFailed(
            f"Unknown budget period {period!r}.",
            code="invalid_period",
            param="period",
            allowed=list(PERIODS),
        )


async def set_budget(
    conn: AsyncConnection, account_id: str, key_id: str, period: str, cap: int, now: int
) -> BudgetStatus:
    """Create or change a budget, and count the current period's jobs into it (in the
    caller's transaction, under the account's lock: no submit or settle can slip in)."""
    _check_period(period)
    if cap < 0:
        raise ValidationFailed("A budget's cap cannot be negative.", param="cap")
    await _lock_account(conn, account_id)
    if key_id and await key_account(conn, key_id) != account_id:
        raise NotFound(f"No API key {key_id!r} on account {account_id!r}.", param="key_id")
    insert = _upsert(conn, budgets).values(
        account_id=account_id,
        key_id=key_id,
        period=period,
        cap=cap,
        created_at=now,
        updated_at=now,
    )
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=["account_id", "key_id", "period"],
            set_={"cap": cap, "updated_at": now},
        )
    )
    start, end = period_bounds(period, now)
    scope = [holds.c.account_id == account_id, holds.c.created_at >= start]
    scope.append(holds.c.created_at < end)
    if key_id:
        scope.append(holds.c.key_id == key_id)
    spent, held = (
        await conn.execute(
            sa.select(
                sa.func.coalesce(
                    sa.func.sum(sa.case((holds.c.status != "open", holds.c.captured), else_=0)),
                    0,
                ),
                sa.func.coalesce(
                    sa.func.sum(sa.case((holds.c.status == "open", holds.c.amount), else_=0)),
                    0,
                ),
            ).where(*scope)
        )
    ).one()
    key = period_key(period, now)
    row = _upsert(conn, budget_spend).values(
        account_id=account_id, key_id=key_id, period_key=key, spent=spent, held=held, notified=0
    )
    # a cap raised past what was announced may warn again; a lowered one keeps its mark
    notified = level(int(spent) + int(held), cap)
    await conn.execute(
        row.on_conflict_do_update(
            index_elements=["account_id", "key_id", "period_key"],
            set_={
                "spent": int(spent),
                "held": int(held),
                "notified": sa.func.min(budget_spend.c.notified, notified)
                if conn.dialect.name == "sqlite"
                else sa.func.least(budget_spend.c.notified, notified),
            },
        )
    )
    found = await list_budgets(conn, account_id, now, key_id=key_id, period=period)
    return found[0]


async def remove_budget(conn: AsyncConnection, account_id: str, key_id: str, period: str) -> None:
    _check_period(period)
    gone = await conn.execute(
        budgets.delete().where(
            budgets.c.account_id == account_id,
            budgets.c.key_id == key_id,
            budgets.c.period == period,
        )
    )
    if gone.rowcount == 0:
        scope = f"key {key_id!r}" if key_id else f"account {account_id!r}"
        raise NotFound(f"No {ADJECTIVE[period]} budget on {scope}.", param="period")


async def list_budgets(
    conn: AsyncConnection,
    account_id: str,
    now: int,
    *,
    key_id: str | None = None,
    period: str | None = None,
    for_key: str | None = None,
) -> list[BudgetStatus]:
    """An account's budgets with the current period's figures: all of them, one scope's
    (``key_id``), or what binds one key (``for_key``: the account's and that key's)."""
    b = budgets
    query = sa.select(b).where(b.c.account_id == account_id)
    if key_id is not None:
        query = query.where(b.c.key_id == key_id)
    if for_key is not None:
        query = query.where(b.c.key_id.in_((ACCOUNT, for_key)))
    if period is not None:
        query = query.where(b.c.period == period)
    rows = (await conn.execute(query.order_by(b.c.key_id, b.c.period))).all()
    out = []
    for r in rows:
        budget = Budget(r.account_id, r.key_id, r.period, int(r.cap), r.created_at, r.updated_at)
        key = period_key(r.period, now)
        spend = (
            await conn.execute(
                sa.select(budget_spend).where(
                    budget_spend.c.account_id == account_id,
                    budget_spend.c.key_id == r.key_id,
                    budget_spend.c.period_key == key,
                )
            )
        ).first()
        start, end = period_bounds(r.period, now)
        out.append(
            BudgetStatus(
                budget,
                key,
                start,
                end,
                int(spend.spent) if spend else 0,
                int(spend.held) if spend else 0,
                int(spend.notified) if spend else 0,
            )
        )
    return out


# ── the submit on SQLite (the writer thread, inside its transaction) ──


Binding = list[tuple[str, str, int]]
"""(key_id, period, cap) of the budgets a submit counts against."""


def sqlite_budgets(conn: sqlite3.Connection, account_id: str, key_id: str) -> Binding:
    """The budgets of the account and of the submitting key (none, nearly always)."""
    return [
        (str(k), str(p), int(c))
        for k, p, c in conn.execute(
            "SELECT key_id, period, cap FROM budgets WHERE account_id = ? AND key_id IN ('', ?) "
            "ORDER BY key_id DESC, period",
            (account_id, key_id),
        )
    ]


def _sqlite_listened(conn: sqlite3.Connection, account_id: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM webhook_endpoints WHERE account_id = ? AND disabled_at IS NULL LIMIT 1",
            (account_id,),
        ).fetchone()
        is not None
    )


def _sqlite_event(
    conn: sqlite3.Connection, job_id: str, account_id: str, now: int, data: dict[str, Any]
) -> None:
    if _sqlite_listened(conn, account_id):
        conn.execute(
            "INSERT INTO webhook_outbox (job_id, seq, type, created_at, account_id, payload) "
            "VALUES (?, 0, ?, ?, ?, ?)",
            (
                job_id,
                EXCEEDED if data["threshold"] == 100 else WARNING,
                now,
                account_id,
                json.dumps(data),
            ),
        )


def sqlite_budgets_check(
    conn: sqlite3.Connection, binding: Binding, account_id: str, amount: int, now: int
) -> dict[str, Any] | None:
    """The refusal's numbers if a budget cannot take a hold of ``amount`` (the first
    refusal of a period also queues its ``budget.exceeded``), else None. Mirrors
    ``reelgate_submit`` (migration 0018)."""
    for budget_key, period, cap in binding:
        key = period_key(period, now)
        found = conn.execute(
            "SELECT spent, held, notified FROM budget_spend "
            "WHERE account_id = ? AND key_id = ? AND period_key = ?",
            (account_id, budget_key, key),
        ).fetchone()
        spent, held, notified = (int(v) for v in found) if found else (0, 0, 0)
        if spent + held + amount <= cap:
            continue
        detail = {
            "key_id": budget_key,
            "period": period,
            "period_key": key,
            "cap": cap,
            "spent": spent,
            "held": held,
            "price": amount,
            "threshold": 100,
            "reason": "refused",
        }
        if notified < 100:
            conn.execute(
                "INSERT INTO budget_spend (account_id, key_id, period_key, spent, held, notified) "
                "VALUES (?, ?, ?, 0, 0, 100) ON CONFLICT (account_id, key_id, period_key) "
                "DO UPDATE SET notified = 100",
                (account_id, budget_key, key),
            )
            _sqlite_event(conn, "", account_id, now, detail)  # the job was never written
        return detail
    return None


def sqlite_budgets_hold(
    conn: sqlite3.Connection,
    binding: Binding,
    account_id: str,
    amount: int,
    now: int,
    job_id: str,
) -> None:
    """Count an accepted job's hold into its budgets; announce a threshold reached."""
    for budget_key, period, cap in binding:
        key = period_key(period, now)
        spent, held, notified = conn.execute(
            "INSERT INTO budget_spend (account_id, key_id, period_key, spent, held, notified) "
            "VALUES (?, ?, ?, 0, ?, 0) ON CONFLICT (account_id, key_id, period_key) "
            "DO UPDATE SET held = held + excluded.held RETURNING spent, held, notified",
            (account_id, budget_key, key, amount),
        ).fetchone()
        reached = level(int(spent) + int(held), cap)
        if reached > int(notified):
            conn.execute(
                "UPDATE budget_spend SET notified = ? "
                "WHERE account_id = ? AND key_id = ? AND period_key = ?",
                (reached, account_id, budget_key, key),
            )
            _sqlite_event(
                conn,
                job_id,
                account_id,
                now,
                {
                    "key_id": budget_key,
                    "period": period,
                    "period_key": key,
                    "cap": cap,
                    "spent": int(spent),
                    "held": int(held),
                    "price": amount,
                    "threshold": reached,
                    "reason": "reached",
                },
            )
