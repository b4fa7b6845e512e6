"""``/healthz`` and ``/readyz``: each readiness check on real parts (the database, its
migrations, the storage, the worker of ``reelgate serve``), passing and failing."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path

import httpx
import sqlalchemy as sa

from reelgate.api.app import create_app
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime
from reelgate.storage import open_storage
from reelgate.store.migrate import head_revisions


async def _ready(rt: Runtime) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return await c.get("/readyz")  # no API key: an orchestrator asks it


async def test_healthz_answers_without_a_key(rt: Runtime) -> None:
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        answer = await c.get("/healthz")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


async def test_ready_when_database_migrations_and_storage_answer(rt: Runtime) -> None:
    answer = await _ready(rt)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "migrations", "storage"}  # no worker here
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["migrations"]["current"] == sorted(head_revisions())
    assert not list(Path(rt.settings.resolved_storage_url()[len("file://") :]).rglob("*.txt"))


async def test_a_database_behind_this_versions_migrations_is_not_ready(rt: Runtime) -> None:
    async with rt.db.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    answer = await _ready(rt)
    assert answer.status_code == 503
    body = answer.json()
    assert body["error"]["code"] == "not_ready" and body["error"]["failing"] == ["migrations"]
    assert body["checks"]["migrations"]["current"] == ["0001"]
    assert "reelgate db upgrade" in body["checks"]["migrations"]["error"]
    assert body["checks"]["database"]["ok"]


async def test_a_database_at_a_newer_releases_migrations_stays_ready(rt: Runtime) -> None:
    """A rolling upgrade migrates first; the old processes must not all drop out of the
    load balancer before their turn to restart (docs/deploy.md)."""
    async with rt.db.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    answer = await _ready(rt)
    assert answer.status_code == 200, answer.text
    migrations = answer.json()["checks"]["migrations"]
    assert migrations["ok"] and migrations["current"] == ["0099"] and "newer" in migrations["note"]


async def test_storage_that_cannot_take_a_write_is_not_ready(rt: Runtime, tmp_path: Path) -> None:
    root = tmp_path / "videos-gone"
    storage = open_storage(root.as_uri(), public_base_url=rt.public_url, signing_secret=b"s" * 32)
    shutil.rmtree(root)
    root.write_text("a file where the storage directory was (a disk unmounted, say)")
    answer = await _ready(replace(rt, storage=storage))
    assert answer.status_code == 503
    assert answer.json()["error"]["failing"] == ["storage"]
    assert str(root) not in answer.text  # the kind of failure, never a path or a URL


async def test_the_worker_of_serve_must_have_reached_the_database_within_a_lease(
    rt: Runtime,
) -> None:
    wk = Worker.from_runtime(rt, concurrency=2, lease_seconds=3)
    rt.worker_heartbeat = wk.heartbeat_age
    not_started = (await _ready(rt)).json()
    assert not_started["error"]["failing"] == ["worker"]
    task = asyncio.create_task(wk.run())
    try:
        for _ in range(100):
            if wk.heartbeat_age() is not None:
                break
            await asyncio.sleep(0.05)
        answer = await _ready(rt)
        assert answer.status_code == 200, answer.text
        assert answer.json()["checks"]["worker"]["heartbeat_age_seconds"] < 3
    finally:
        wk.stop()
        await asyncio.wait_for(task, 30)
    rt.worker_heartbeat = lambda: rt.settings.lease_seconds + 5  # a worker stuck that long
    stale = (await _ready(rt)).json()
    assert stale["error"]["failing"] == ["worker"]
    assert "has not reached the database" in stale["checks"]["worker"]["error"]
