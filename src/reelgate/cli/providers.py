"""``reelgate providers check [--generate]``: does each configured provider work from
here, now? (``providers.check``). Exits 1 when any row failed."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import typer
from rich.console import Console
from rich.table import Table

from reelgate.catalog import load_catalog
from reelgate.config import Settings, with_config_file
from reelgate.providers.check import CheckRow, check_providers
from reelgate.providers.registry import build_registry

__all__ = ["providers_app"]

providers_app = typer.Typer(no_args_is_help=True, help="The configured provider deployments.")
console = Console()


async def _check(generate: bool, kinds: list[str], job_seconds: float) -> list[CheckRow]:
    settings = with_config_file(Settings())
    registry = build_registry(settings)
    try:
        return await check_providers(
            registry,
            load_catalog(settings.config_file),
            generate=generate,
            kinds=kinds,
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
    job_seconds: float = typer.Option(900.0, help="How long one --generate job may take."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per configured deployment: whether it takes the credential, each model's life
    cycle on its route, and with --generate a real job end to end, with latency and
    the provider's reason for any failure."""
    rows = asyncio.run(_check(generate, provider, job_seconds))
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
