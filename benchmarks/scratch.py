"""Scratch space for one run: a temp directory and throwaway, migrated databases.

Each database a section asks for is a copy of a template migrated once
(``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, a file copy on SQLite), so
sections never see each other's rows. ``close`` drops every database and
removes the directory; ``run.py`` calls it in a ``finally``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from reelgate.config import Settings
from reelgate.store import migrate

__all__ = ["Scratch", "postgres_admin_url", "postgres_problem", "redacted"]


def postgres_admin_url() -> str | None:
    """The PostgreSQL to benchmark against, or None (the PostgreSQL rows are skipped)."""
    return (
        os.environ.get("REELGATE_BENCH_DATABASE_URL")
        or os.environ.get("REELGATE_TEST_DATABASE_URL")
        or None
    )


def redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def postgres_problem(url: str) -> str | None:
    """None if ``url`` reaches a PostgreSQL where we may create databases, else why not."""
    try:
        conn = await asyncpg.connect(_dsn(url), timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        may = await conn.fetchval(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        )
    finally:
        await conn.close()
    return None if may else "its role may not CREATE DATABASE"


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


class Scratch:
    def __init__(self, pg_admin_url: str | None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rg-bench-"))
        self.pg_admin_url = pg_admin_url
        self._tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._pg_template: str | None = None
        self._pg_databases: list[str] = []
        self._sqlite_template: Path | None = None
        self._count = 0

    def path(self, name: str) -> Path:
        """A fresh directory under the scratch root."""
        self._count += 1
        p = self.root / f"{self._count:02d}-{name}"
        p.mkdir(parents=True)
        return p

    async def _admin(self, sql: str) -> None:
        assert self.pg_admin_url is not None
        conn = await asyncpg.connect(_dsn(self.pg_admin_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def database(self, backend: str) -> str:
        """A new, migrated, empty database of ``backend`` ("sqlite" or "postgresql")."""
        if backend == "sqlite":
            return await self._sqlite()
        return await self._postgres()

    async def _sqlite(self) -> str:
        if self._sqlite_template is None:
            template = self.root / "template.db"
            await migrate.upgrade_async(f"sqlite:///{template}")
            self._sqlite_template = template
        target = self.path("sqlite") / "reelgate.db"
        shutil.copyfile(self._sqlite_template, target)
        return f"sqlite:///{target}"

    async def _postgres(self) -> str:
        if self.pg_admin_url is None:
            raise RuntimeError("no PostgreSQL configured")
        if self._pg_template is None:
            name = f"rg_bench_tpl_{self._tag}"
            await self._admin(f'CREATE DATABASE "{name}"')
            self._pg_databases.append(name)
            await migrate.upgrade_async(_dsn(self.pg_admin_url, name))
            self._pg_template = name
        self._count += 1
        name = f"rg_bench_{self._tag}_{self._count}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._pg_template}"')
        self._pg_databases.append(name)
        return _dsn(self.pg_admin_url, name)

    def settings(self, database_url: str, name: str, **overrides: object) -> Settings:
        """Settings for a runtime on ``database_url``, with its own data and storage dirs.

        Every field a benchmark depends on is given explicitly, so ``REELGATE_*``
        variables in the caller's environment cannot change what is measured.
        """
        data = self.path(name)
        values: dict[str, object] = {
            "data_dir": data,
            "database_url": database_url,
            "storage_url": (data / "videos").as_uri(),
            "local_work_dir": data / "local-renders",
            "config_file": None,
            "public_url": "http://127.0.0.1",
            "signing_secret": "bench-signing-secret-0123456789abcdef",
            "dev_api_key": None,
            "dev_credits": 10_000_000,  # ignored by a reelgate without billing
            # The limiter still runs (its cost is measured), but the load never reaches it.
            "rate_limit": "1000000/second",
            "redis_url": "",
            # Per-account caps on jobs in flight: the engine rounds queue more than the
            # default 100 at once. The submit section drains between batches instead.
            "max_jobs_in_flight": 1_000_000,
            "max_seconds_in_flight": 100_000_000,
            "worker_concurrency": 8,
            "lease_seconds": 30.0,
            "idle_poll_seconds": 1.0,
            "default_deadline_seconds": 3600,
            "mirror_max_bytes": 2 * 1024**3,
            # The engine sections measure reelgate's own cost per job; a poster and sprite
            # sheet is media work, measured per second of video in the renderer section.
            "previews": False,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    async def close(self) -> None:
        errors: list[str] = []
        for name in reversed(self._pg_databases):
            try:
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except (OSError, asyncpg.PostgresError) as exc:
                errors.append(f"{name}: {exc}")
        self._pg_databases.clear()
        shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            print("warning: could not drop scratch databases: " + "; ".join(errors))
