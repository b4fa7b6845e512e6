"""``reelgate catalog sync``: fetch fal's and Replicate's video models and their input
schemas into the synced catalog (``catalog.synced.sync``), and say what moved.
``reelgate catalog synced`` lists what is stored."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from rich.table import Table

from reelgate.catalog import load_catalog
from reelgate.catalog.synced.store import all_rows, specs_of
from reelgate.catalog.synced.sync import CATEGORIES, PROVIDERS, SyncReport, run_sync, source_of
from reelgate.config import Settings, with_config_file
from reelgate.store.db import create_engine, reading

__all__ = ["catalog_app"]

catalog_app = typer.Typer(no_args_is_help=True, help="The synced catalog (fal, Replicate).")
console = Console(emoji=False, highlight=False)


def _split(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    bad = sorted(set(out) - set(allowed))
    if bad:
        raise typer.BadParameter(f"{bad}: choose from {list(allowed)}", param_hint=what)
    return out or list(allowed)


async def _sync(providers: list[str], categories: list[str]) -> SyncReport:
    settings = with_config_file(Settings())
    catalog = load_catalog(settings.config_file)
    db = create_engine(settings.resolved_database_url(), pool_size=1)
    try:
        return await run_sync(
            db,
            source_of(settings),
            providers=providers,
            categories=categories,
            prices=catalog.synced_settings.prices,
            timeout_seconds=settings.timeout_for("fal"),
        )
    finally:
        await db.dispose()


@catalog_app.command("sync")
def sync(
    provider: list[str] = typer.Option(
        [], "--provider", "-p", help="fal or replicate (repeat or comma-separate; default both)."
    ),
    category: list[str] = typer.Option(
        [], "--category", "-c", help="text-to-video, image-to-video (default both)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fetch the video models and their input schemas; print what is new, changed (and
    whether the mapping still fits) and gone (now retired). Exits 1 if a fetch failed."""
    providers = _split(provider, PROVIDERS, "--provider")
    categories = _split(category, CATEGORIES, "--category")
    report = asyncio.run(_sync(providers, categories))
    if as_json:
        typer.echo(json.dumps(report.to_wire(), indent=2))
    else:
        for line in report.lines():
            console.print(line, markup=False)
    if report.errors:
        raise typer.Exit(1)


async def _stored() -> list[dict[str, object]]:
    settings = with_config_file(Settings())
    catalog = load_catalog(settings.config_file)
    db = create_engine(settings.resolved_database_url(), pool_size=1)
    try:
        async with reading(db) as conn:
            rows = await all_rows(conn)
    finally:
        await db.dispose()
    out: list[dict[str, object]] = []
    for spec in specs_of(catalog, rows):
        info = spec.synced
        assert info is not None
        out.append(
            {
                "id": spec.id,
                "status": info.status,
                "mapping": info.mapping.status,
                "priced": info.price is not None,
                "usable": info.usable and info.status == "active",
                "durations": list(spec.allowed.durations),
                "resolutions": list(spec.allowed.resolutions),
                "problems": list(info.mapping.problems),
            }
        )
    return out


@catalog_app.command("synced")
def synced(as_json: bool = typer.Option(False, "--json")) -> None:
    """The stored synced models: status, mapping, price, what they offer."""
    rows = asyncio.run(_stored())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Synced models ({len(rows)})")
    for name in ("id", "status", "mapping", "priced", "durations", "resolutions"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["status"]),
            str(r["mapping"]),
            "yes" if r["priced"] else "no",
            ",".join(str(x) for x in r["durations"]),  # type: ignore[attr-defined]
            ",".join(str(x) for x in r["resolutions"]),  # type: ignore[attr-defined]
        )
    console.print(table)
