"""``reelgate budgets``: daily and monthly spend caps per account and per API key, run on
the gateway's host against its database (as ``reelgate keys``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.accounts.admin import parse_credits
from reelgate.cli.common import in_transaction
from reelgate.config import Settings
from reelgate.store import budgets as store
from reelgate.store.jobs import now_ms

__all__ = ["budgets_app"]

budgets_app = typer.Typer(
    no_args_is_help=True,
    help="Spend caps per UTC day or month, on an account or one of its API keys.",
)
console = Console()
T = TypeVar("T")


def _run(action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    return in_transaction(action, console)


def _print(found: list[store.BudgetStatus], as_json: bool) -> None:
    credit = Settings().credit()
    if as_json:
        typer.echo(json.dumps([b.to_wire(credit) for b in found]))
        return
    table = Table("scope", "period", "cap", "spent", "held", "remaining", "used", "resets (UTC)")
    for b in found:
        w = b.to_wire(credit)
        table.add_row(
            f"key {b.budget.key_id}" if b.budget.key_id else "account",
            b.budget.period,
            f"{w['cap']} ({credit.currency} {credit.text(b.budget.cap)})",
            w["spent"],
            w["held"],
            w["remaining"],
            f"{w['used_percent']} %",
            datetime.fromtimestamp(b.resets_at / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@budgets_app.command("set")
def budgets_set(
    account_id: str,
    cap: str = typer.Argument(..., help="Credits per period, e.g. 500 or 12.5."),
    period: str = typer.Option("day", help="day or month (UTC)."),
    key: str = typer.Option("", help="An API key id: cap that key instead of the account."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create or change a budget (what is already spent this period counts)."""
    amount = parse_credits(cap)

    async def action(conn: AsyncConnection) -> store.BudgetStatus:
        return await store.set_budget(conn, account_id, key, period, amount, now_ms())

    _print([_run(action)], as_json)


@budgets_app.command("list")
def budgets_list(account_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """An account's budgets and its keys', with this period's figures."""

    async def action(conn: AsyncConnection) -> list[store.BudgetStatus]:
        return await store.list_budgets(conn, account_id, now_ms())

    _print(_run(action), as_json)


@budgets_app.command("remove")
def budgets_remove(
    account_id: str,
    period: str = typer.Option("day", help="day or month."),
    key: str = typer.Option("", help="The API key id of a key budget."),
) -> None:
    """Remove a budget."""
    _run(lambda conn: store.remove_budget(conn, account_id, key, period))
    scope = f"key {key}" if key else account_id
    console.print(f"removed the {store.ADJECTIVE.get(period, period)} budget of {scope}")
