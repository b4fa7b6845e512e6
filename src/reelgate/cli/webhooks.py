"""``reelgate webhooks``: an account's webhook endpoints and a job's deliveries, run on
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

from reelgate.cli.common import Refused, in_transaction
from reelgate.config import Settings
from reelgate.errors import ReelgateError
from reelgate.netsafe import check_url
from reelgate.store.accounts import account_exists
from reelgate.store.jobs import now_ms
from reelgate.webhooks import store as hooks

__all__ = ["webhooks_app"]

webhooks_app = typer.Typer(
    no_args_is_help=True,
    help="Outbound webhooks: endpoints (secrets shown once), deliveries, redelivery.",
)
console = Console()
T = TypeVar("T")
HOUR_MS = 3600 * 1000


def _run(action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    return in_transaction(action, console)


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _show(endpoint: hooks.Endpoint, as_json: bool, secret: bool = False) -> None:
    wire = endpoint.to_wire()
    if secret:
        wire["secret"] = endpoint.secret
    if as_json:
        typer.echo(json.dumps(wire))
        return
    console.print(f"{endpoint.id}  {endpoint.url}  ({wire['status']})", markup=False)
    if secret:
        console.print(f"secret (shown only now): {endpoint.secret}")


@webhooks_app.command("create")
def create(
    account_id: str,
    url: str,
    event: list[str] = typer.Option([], help="An event type to deliver (repeat); none: all."),
    description: str = typer.Option(""),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add an endpoint to an account; prints its signing secret once."""
    try:
        check_url(url, Settings().net_policy(), param="url")
    except ReelgateError as exc:
        console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from None
    unknown = sorted(set(event) - set(hooks.EVENT_TYPES))
    if unknown:
        console.print(
            f"[red]unknown event {unknown[0]}[/red]; one of {', '.join(hooks.EVENT_TYPES)}"
        )
        raise typer.Exit(1)

    async def action(conn: AsyncConnection) -> hooks.Endpoint:
        if not await account_exists(conn, account_id):
            raise Refused(f"no account {account_id!r}")
        return await hooks.create_endpoint(conn, account_id, url, event, description, now_ms())

    _show(_run(action), as_json, secret=True)


@webhooks_app.command("list")
def list_(account_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """An account's endpoints (never their secrets)."""
    rows = _run(lambda conn: hooks.list_endpoints(conn, account_id))
    if as_json:
        typer.echo(json.dumps([r.to_wire() for r in rows]))
        return
    table = Table("id", "url", "events", "status", "created")
    for r in rows:
        wire = r.to_wire()
        table.add_row(
            r.id,
            r.url,
            ",".join(r.events) or "all",
            wire["status"] + (f" ({r.disabled_reason})" if r.disabled_reason else ""),
            _when(r.created_at),
        )
    console.print(table)


def _endpoint_or_exit(found: hooks.Endpoint | None, endpoint_id: str) -> hooks.Endpoint:
    if found is None:
        console.print(f"[red]no webhook endpoint {endpoint_id!r}[/red]")
        raise typer.Exit(1)
    return found


@webhooks_app.command("rotate")
def rotate(
    endpoint_id: str,
    keep_previous_hours: float = typer.Option(24.0, help="The old secret signs too this long."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A new signing secret (printed once); the old one keeps signing for a while."""
    keep = int(keep_previous_hours * HOUR_MS)
    found = _run(lambda conn: hooks.rotate_endpoint(conn, endpoint_id, keep, now_ms()))
    _show(_endpoint_or_exit(found, endpoint_id), as_json, secret=True)


@webhooks_app.command("disable")
def disable(endpoint_id: str) -> None:
    """Stop delivering to an endpoint (its pending deliveries stop too)."""
    found = _run(
        lambda conn: hooks.set_endpoint_enabled(
            conn, endpoint_id, enabled=False, reason=None, now=now_ms()
        )
    )
    _show(_endpoint_or_exit(found, endpoint_id), False)


@webhooks_app.command("enable")
def enable(endpoint_id: str) -> None:
    """Deliver to an endpoint again (one disabled by hand or by a 410)."""
    found = _run(
        lambda conn: hooks.set_endpoint_enabled(
            conn, endpoint_id, enabled=True, reason=None, now=now_ms()
        )
    )
    _show(_endpoint_or_exit(found, endpoint_id), False)


@webhooks_app.command("deliveries")
def deliveries(job_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A job's deliveries and how each went."""
    rows = _run(lambda conn: hooks.list_deliveries(conn, job_id))
    if as_json:
        typer.echo(json.dumps([r.to_wire() for r in rows]))
        return
    table = Table("id", "event", "target", "status", "attempts", "last", "next")
    for r in rows:
        table.add_row(
            r.id,
            r.event_type,
            r.endpoint_id or "webhook_url",
            r.status,
            str(r.attempts),
            str(r.last_status or r.last_error or "-"),
            _when(r.next_attempt_at) if r.status == "pending" else "-",
        )
    console.print(table)


@webhooks_app.command("redeliver")
def redeliver(job_id: str, delivery_id: str) -> None:
    """Send a delivery again now (the same webhook-id and body)."""
    found = _run(lambda conn: hooks.redeliver(conn, job_id, delivery_id, now_ms()))
    if found is None:
        console.print(f"[red]no delivery {delivery_id!r} for job {job_id!r}[/red]")
        raise typer.Exit(1)
    console.print(f"{delivery_id}: pending, sent by the next worker to look")


@webhooks_app.command("default-secret")
def default_secret(
    account_id: str,
    rotate: bool = typer.Option(False, "--rotate", help="Make a new one first."),
    keep_previous_hours: float = typer.Option(24.0),
) -> None:
    """The secret signing an account's per-request webhook_url deliveries."""

    async def action(conn: AsyncConnection) -> str:
        if not await account_exists(conn, account_id):
            raise Refused(f"no account {account_id!r}")
        if rotate:
            keep = int(keep_previous_hours * HOUR_MS)
            return await hooks.rotate_default_secret(conn, account_id, keep, now_ms())
        return (await hooks.default_secret(conn, account_id, now_ms()))[0]

    typer.echo(_run(action))
