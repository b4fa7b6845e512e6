"""The ``synced_models`` table (``store.schema``), and loading it into the catalog.

Every process builds its synced entries from this table: at start, then whenever its
content changed (count and last write, checked at most every ``CHECK_SECONDS``), so a
``reelgate catalog sync`` run by an operator reaches running APIs and workers without
a restart.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from reelgate.catalog.catalog import Catalog
from reelgate.catalog.models import ModelSpec
from reelgate.catalog.synced.model import SyncedModel, to_spec
from reelgate.catalog.synced.prices import price_of
from reelgate.catalog.synced.schema import InputSchema
from reelgate.store.db import reading
from reelgate.store.schema import synced_models

__all__ = ["CHECK_SECONDS", "all_rows", "load_into", "refresh", "specs_of", "upsert"]

CHECK_SECONDS = 2.0


_SCHEMAS: dict[str, InputSchema] = {}
_CACHE_MAX = 8192


def _schema(schema_hash: str, raw: Any) -> InputSchema:
    """The stored schema, read once per hash per process (past ``_CACHE_MAX`` hashes
    new ones are read each time: never evicted, so a hash ``all_rows`` found cached
    stays cached while it reads)."""
    found = _SCHEMAS.get(schema_hash)
    if found is None:
        found = InputSchema.from_json(raw)
        if len(_SCHEMAS) < _CACHE_MAX:
            _SCHEMAS[schema_hash] = found
    return found


def _from_row(row: Any) -> SyncedModel:
    mapping = row["mapping"] or {}
    return SyncedModel(
        id=row["id"],
        provider=row["provider"],
        upstream_id=row["upstream_id"],
        category=row["category"],
        display_name=row["display_name"],
        description=row["description"],
        schema=_schema(row["schema_hash"], row["input_schema"]),
        schema_hash=row["schema_hash"],
        version=row["version"],
        status=row["status"],
        mapping_status=str(mapping.get("status", "")),
        problems=tuple(mapping.get("problems", [])),
        source=row["source"],
        first_seen_at=row["first_seen_at"],
        fetched_at=row["fetched_at"],
        changed_at=row["changed_at"],
        retired_at=row["retired_at"],
        updated_at=row["updated_at"],
    )


def _to_row(m: SyncedModel) -> dict[str, Any]:
    return {
        "id": m.id,
        "provider": m.provider,
        "upstream_id": m.upstream_id,
        "category": m.category,
        "display_name": m.display_name[:200],
        "description": m.description,
        "input_schema": m.schema.to_json(),
        "schema_hash": m.schema_hash,
        "version": m.version,
        "status": m.status,
        "mapping": {"status": m.mapping_status, "problems": list(m.problems)},
        "source": m.source[:400],
        "first_seen_at": m.first_seen_at,
        "fetched_at": m.fetched_at,
        "changed_at": m.changed_at,
        "retired_at": m.retired_at,
        "updated_at": m.updated_at,
    }


async def all_rows(conn: AsyncConnection, provider: str | None = None) -> list[SyncedModel]:
    """Every row (of ``provider``), reading a schema document only for a hash this
    process has not read before: the documents are the bulk of the table, and most are
    unchanged between two syncs."""
    light = [c for c in synced_models.c if c.name != "input_schema"]
    query = sa.select(*light).order_by(synced_models.c.id)
    if provider is not None:
        query = query.where(synced_models.c.provider == provider)
    rows = (await conn.execute(query)).mappings().all()
    missing = [r["id"] for r in rows if r["schema_hash"] not in _SCHEMAS]
    documents: dict[str, Any] = {}
    for start in range(0, len(missing), 200):
        ids = missing[start : start + 200]
        docs = sa.select(synced_models.c.id, synced_models.c.input_schema).where(
            synced_models.c.id.in_(ids)
        )
        documents.update({r.id: r.input_schema for r in await conn.execute(docs)})
    return [_from_row({**r, "input_schema": documents.get(r["id"])}) for r in rows]


async def upsert(conn: AsyncConnection, model: SyncedModel) -> None:
    """Insert or replace one row in one statement (``ON CONFLICT DO UPDATE``), so two
    syncs at once (a worker's and an operator's) never trip on each other's insert."""
    values = _to_row(model)
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(synced_models).values(**values)
    changes = {k: stmt.excluded[k] for k in values if k != "id"}
    await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=changes))


async def _version(conn: AsyncConnection) -> tuple[int, int]:
    row = (
        await conn.execute(sa.select(sa.func.count(), sa.func.max(synced_models.c.updated_at)))
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def specs_of(catalog: Catalog, rows: list[SyncedModel]) -> list[ModelSpec]:
    settings = catalog.synced_settings
    specs = []
    for row in rows:
        # the operator may name a model by its catalog id or, past 64 characters, by
        # the full provider:upstream id it was shortened from
        names = (row.id, row.full_id)
        price = next((settings.prices[n] for n in names if n in settings.prices), None)
        spec = to_spec(row, price or price_of(row.id, {}))
        changes: dict[str, Any] = {
            "typical_seconds": settings.typical_seconds,
            "poll_interval_seconds": settings.poll_interval_seconds,
        }
        for name in names:
            if name in settings.fallback:
                changes["fallback"] = settings.fallback[name]
            if name in settings.display_name:
                changes["display_name"] = settings.display_name[name]
        specs.append(dataclasses.replace(spec, **changes))
    return specs


async def load_into(catalog: Catalog, db: AsyncEngine) -> bool:
    """Rebuild the catalog's synced entries if the table changed; True if it did."""
    async with reading(db) as conn:
        version = await _version(conn)
        if version == catalog.synced_version:
            return False
        rows = await all_rows(conn)
    catalog.set_synced(specs_of(catalog, rows), version)
    return True


async def refresh(catalog: Catalog, db: AsyncEngine, *, max_age: float = CHECK_SECONDS) -> None:
    """``load_into`` at most every ``max_age`` seconds (0: now)."""
    now = time.monotonic()
    if max_age and now - catalog.synced_checked_at < max_age:
        return
    catalog.synced_checked_at = now
    await load_into(catalog, db)
