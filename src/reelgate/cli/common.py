"""What the operator commands share: one transaction on the gateway's database, and a
refusal printed as one red line (exit 1) instead of a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.config import Settings
from reelgate.errors import ReelgateError
from reelgate.store.db import create_engine

__all__ = ["Refused", "in_transaction", "on_database"]

T = TypeVar("T")


class Refused(Exception):
    """A command's own "no" (its message is printed as is)."""


def on_database(action: Callable[[AsyncEngine], Awaitable[T]], console: Console) -> T:
    """Run ``action`` with an engine on the configured database (closed after)."""

    async def main() -> T:
        db = create_engine(Settings().resolved_database_url(), pool_size=1)
        try:
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ReelgateError as exc:
        console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from None
    except Refused as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def in_transaction(action: Callable[[AsyncConnection], Awaitable[T]], console: Console) -> T:
    """Run ``action`` in one transaction on the configured database."""

    async def transaction(db: AsyncEngine) -> T:
        async with db.begin() as conn:
            return await action(conn)

    return on_database(transaction, console)
