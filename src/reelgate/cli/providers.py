"""``reelgate providers check [--generate]``: does each configured provider work from
here, now? (``providers.check``). Exits 1 when any row failed.

``reelgate providers marks`` lists the models a provider said are gone (marked
unavailable for ``REELGATE_MODEL_GONE_MARK_SECONDS``), and ``reelgate providers
unmark MODEL`` lifts a mark (after a check shows the model served again, or a
fixed misconfiguration: a wrong base URL or project also answers 404)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from reelgate.catalog import load_catalog
from reelgate.catalog.lifecycle import Unavailable
from reelgate.config import Settings, with_config_file
from reelgate.providers.check import CheckRow, check_providers
from reelgate.providers.registry import build_registry
from reelgate.store.db import create_engine
from reelgate.store.jobs import now_ms
from reelgate.store.sql import SqlStore

__all__ = ["providers_app"]

providers_app = typer.Typer(no_args_is_help=True, help="The configured provider deployments.")
console = Console(emoji=False)  # ":gemini:" in a deployment key is not an emoji


async def _check(
    generate: bool, kinds: list[str], models: list[str], job_seconds: float
) -> list[CheckRow]:
    settings = with_config_file(Settings())
    registry = build_registry(settings)
    try:
        return await check_providers(
            registry,
            load_catalog(settings.config_file),
            generate=generate,
            kinds=kinds,
            models=models,
            job_seconds=job_seconds,
        )
    finally:
        await registry.aclose()


@providers_app.command("check")
def check(
    generate: bool = typer.Option(
        False, "--generate", help="Also make the cheapest, shortest video of each model (billed)."
    ),
    provider: list[str] = typer.Option([], "--provider", "-p", help="Only these kinds."),
    model: list[str] = typer.Option([], "--model", "-m", help="Only these catalog models."),
    job_seconds: float = typer.Option(900.0, help="How long one --generate job may take."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per configured deployment: whether it takes the credential, each model's life
    cycle on its route, and with --generate a real job end to end, with latency and
    the provider's reason for any failure."""
    rows = asyncio.run(_check(generate, provider, model, job_seconds))
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
    elif not rows:
        console.print("No provider is configured (reelgate providers check has nothing to do).")
    else:
        table = Table(title="Providers")
        for name in ("provider", "route", "checked", "ok", "seconds", "detail"):
            table.add_column(name, overflow="fold", no_wrap=name != "detail")
        for r in rows:
            table.add_row(
                r.provider,
                r.route or "",
                r.subject,
                "[green]ok[/]" if r.ok else "[red]FAILED[/]",
                "" if r.seconds is None else f"{r.seconds:.2f}",
                r.detail,
            )
        console.print(table)
    if not rows or not all(r.ok for r in rows):
        raise typer.Exit(1)


async def _marks() -> list[Unavailable]:
    db = create_engine(Settings().resolved_database_url(), pool_size=1)
    try:
        return await SqlStore(db).list_unavailable(now_ms())
    finally:
        await db.dispose()


async def _unmark(model: str | None) -> list[str]:
    db = create_engine(Settings().resolved_database_url(), pool_size=1)
    try:
        store = SqlStore(db)
        lifted = []
        for mark in await store.list_unavailable(now_ms()):
            if (model is None or mark.model == model) and await store.clear_unavailable(
                mark.deployment
            ):
                lifted.append(mark.deployment)
        return lifted
    finally:
        await db.dispose()


@providers_app.command("marks")
def marks(as_json: bool = typer.Option(False, "--json")) -> None:
    """Models a provider said are not served (skipped by the engine until the mark ends)."""
    found = asyncio.run(_marks())
    if as_json:
        typer.echo(json.dumps([asdict(m) for m in found], indent=2))
        return
    if not found:
        console.print("No model is marked unavailable.")
        return
    table = Table(title="Marked unavailable")
    for name in ("model", "deployment", "since", "until", "reason"):
        table.add_column(name, overflow="fold")
    for m in found:
        table.add_row(m.model, m.deployment, _when(m.marked_at), _when(m.until), m.reason)
    console.print(table)


@providers_app.command("unmark")
def unmark(
    model: str = typer.Argument(None, help="A catalog model id (all marks when omitted)."),
) -> None:
    """Lift the marks of MODEL (or all): the engine asks its provider again."""
    lifted = asyncio.run(_unmark(model))
    console.print(f"lifted {len(lifted)} mark(s): {', '.join(lifted) or '-'}")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
