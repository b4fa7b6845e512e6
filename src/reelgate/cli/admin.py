"""Operator commands, run on the gateway's host against its database:
``reelgate accounts create|flags``, ``reelgate keys create|list|revoke``,
``reelgate credits grant``, ``reelgate ambiguous list|resolve``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from reelgate.accounts import admin
from reelgate.billing import format_credits
from reelgate.cli.common import on_database
from reelgate.config import Settings
from reelgate.store.base import Store
from reelgate.store.sql import SqlStore

__all__ = ["accounts_app", "ambiguous_app", "credits_app", "keys_app"]

accounts_app = typer.Typer(no_args_is_help=True, help="Accounts and their flags.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (shown once, stored hashed).")
credits_app = typer.Typer(no_args_is_help=True, help="Credit grants.")
ambiguous_app = typer.Typer(
    no_args_is_help=True,
    help="Upstream creates whose answer was lost and could not be settled (maybe billed).",
)
T = TypeVar("T")
console = Console()


def _run(action: Callable[[Store], Awaitable[T]]) -> T:
    return on_database(lambda db: action(SqlStore(db)), console)


@accounts_app.command("create")
def accounts_create(
    name: str,
    credits: str = typer.Option("0", help="Initial credits, e.g. 250 or 12.5."),
    allow_model: list[str] = typer.Option([], help="Models on this account's allow-list."),
    prc_opt_in: bool = typer.Option(False, help="Opt in to PRC-hosted models (wan-2-1)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an account."""
    flags = {"allowed_models": allow_model, "prc_opt_in": prc_opt_in}
    account_id, balance = _run(
        lambda store: admin.create_account_with(
            store, name, credits=admin.parse_credits(credits), flags=flags
        )
    )
    if as_json:
        typer.echo(
            json.dumps({"id": account_id, "name": name, "flags": flags, **balance.to_wire()})
        )
    else:
        console.print(
            f"account [bold]{account_id}[/bold] ({name}), balance "
            f"{balance.to_wire()['balance']} credits"
        )


@accounts_app.command("flags")
def accounts_flags(
    account_id: str,
    allow_model: list[str] = typer.Option(None, help="Replace the allow-list with these."),
    prc_opt_in: bool | None = typer.Option(None, "--prc-opt-in/--no-prc-opt-in"),
) -> None:
    """Show or change an account's flags."""
    changes: dict[str, Any] = {}
    if allow_model is not None:
        changes["allowed_models"] = allow_model
    if prc_opt_in is not None:
        changes["prc_opt_in"] = prc_opt_in
    flags = _run(lambda store: admin.update_flags(store, account_id, **changes))
    typer.echo(json.dumps(flags))


@keys_app.command("create")
def keys_create(
    account_id: str,
    scope: list[str] = typer.Option(["jobs:write", "jobs:read"], help="Repeat for several."),
    name: str = typer.Option(""),
    expires_in_days: float | None = typer.Option(None),
) -> None:
    """Create a key and print it: the only time it is shown."""
    key, row = _run(
        lambda store: admin.issue_key(
            store, account_id, scopes=scope, name=name, expires_in_days=expires_in_days
        )
    )
    console.print(f"key id {row.id}  scopes {','.join(row.scopes)}")
    typer.echo(key)


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M") if ms else "-"


@keys_app.command("list")
def keys_list(account_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """List an account's keys (prefixes only)."""
    rows = _run(lambda store: admin.list_keys(store, account_id))
    if as_json:
        typer.echo(json.dumps([r.to_wire() for r in rows]))
        return
    table = Table("id", "name", "prefix", "scopes", "created", "expires", "revoked")
    for r in rows:
        table.add_row(
            r.id,
            r.name,
            r.prefix + "…",
            ",".join(r.scopes),
            _when(r.created_at),
            _when(r.expires_at),
            _when(r.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: it answers 401 from now on."""
    _run(lambda store: admin.revoke_key(store, key_id))
    console.print(f"revoked {key_id}")


@credits_app.command("grant")
def credits_grant(
    account_id: str,
    amount: str = typer.Argument(..., help="Credits, e.g. 100 or 12.5; negative removes."),
    note: str = typer.Option(""),
) -> None:
    """Add (or remove) credits; every grant is a ledger row."""
    balance = _run(
        lambda store: admin.grant_credits(store, account_id, admin.parse_credits(amount), note)
    )
    credit = Settings().credit()
    console.print(
        f"{account_id}: balance {format_credits(balance.balance)} credits "
        f"({credit.currency} {credit.text(balance.balance)}), "
        f"available {format_credits(balance.available)}",
        markup=False,
    )


@ambiguous_app.command("list")
def ambiguous_list(
    all_: bool = typer.Option(False, "--all", help="Include resolved ones."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Creates that may have started an upstream job reelgate does not track."""
    rows = _run(lambda store: admin.ambiguous_creates(store, include_resolved=all_))
    if as_json:
        typer.echo(json.dumps([r.to_wire() for r in rows]))
        return
    table = Table("id", "job", "model", "provider", "upstream id", "sent", "outcome", "resolved")
    for r in rows:
        table.add_row(
            r.id,
            r.job_id,
            r.model,
            r.provider,
            r.upstream_id or "unknown",
            _when(r.sent_at),
            r.outcome,
            r.resolution or "-",
        )
    console.print(table)


@ambiguous_app.command("resolve")
def ambiguous_resolve(
    row_id: str, note: str = typer.Option(..., help="What you found or did upstream.")
) -> None:
    """Mark one as checked (after looking in the provider's console)."""
    _run(lambda store: admin.resolve_ambiguous_create(store, row_id, note))
    console.print(f"resolved {row_id}")
