"""``reelgate db upgrade`` / ``downgrade``: Alembic, driven from code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.store.db import async_url, is_sqlite

__all__ = ["current_revisions", "downgrade", "head_revisions", "upgrade", "upgrade_async"]

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    # Alembic's ini interpolation treats % specially.
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def _ensure_sqlite_dir(url: str) -> None:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations. Runs its own event loop: call from sync code only."""
    _ensure_sqlite_dir(url)
    command.upgrade(_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """Apply migrations from async code (env.py runs its own loop, so use a thread)."""
    await asyncio.to_thread(upgrade, url, revision)


def head_revisions() -> frozenset[str]:
    """The revisions the migrations in this package end at (read from its files)."""
    return frozenset(ScriptDirectory(str(_SCRIPTS)).get_heads())


def known_revisions() -> frozenset[str]:
    """Every revision this package's migrations know (a database at another one is at a
    newer release's schema)."""
    return frozenset(r.revision for r in ScriptDirectory(str(_SCRIPTS)).walk_revisions())


async def current_revisions(conn: AsyncConnection) -> frozenset[str]:
    """The revisions the database says it is at (empty: never migrated)."""
    exists = await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
    if not exists:
        return frozenset()
    rows = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
    return frozenset(str(r[0]) for r in rows)
