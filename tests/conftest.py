"""Shared fixtures: real databases (SQLite and PostgreSQL), a runtime, the API, a worker.

PostgreSQL tests need REELGATE_TEST_DATABASE_URL. Without it they skip on a
laptop, but under CI=true they fail loudly instead: CI must never skip them.
Each PostgreSQL test gets its own database, cloned from a migrated template
(``CREATE DATABASE ... TEMPLATE``), which is much faster than migrating each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from reelgate.api.app import create_app
from reelgate.catalog import load_catalog
from reelgate.config import Settings
from reelgate.engine.commands import NewJob
from reelgate.engine.worker import Worker
from reelgate.job import JobParams
from reelgate.media.render import RenderSpec, render_video
from reelgate.netsafe import NetPolicy
from reelgate.providers.http import DownloadRules
from reelgate.runtime import Runtime, build_runtime
from reelgate.store import migrate
from reelgate.store.accounts import DEV_ACCOUNT_ID
from tests.scripted import ScriptedProvider

TEST_KEY = "rg_test_key_0123456789abcdefghijklmnop"


# The emulators and test servers live on loopback: tests allow it explicitly, the
# way an operator would (REELGATE_FETCH_ALLOW_PRIVATE / _PORTS). Production default
# is public addresses on 80/443 only (tested in test_netsafe_* and test_mirror_safety).
LOOPBACK_FETCH: dict[str, object] = {
    "fetch_allow_private": ["127.0.0.0/8"],
    "fetch_allow_ports": list(range(1024, 65536)),
}


LOOPBACK_DOWNLOADS = DownloadRules(
    policy=NetPolicy(allow_private=["127.0.0.0/8"], allow_ports=range(1024, 65536))
)
"""Download rules for a deployment a test builds by hand against a loopback emulator."""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("REELGATE_") and not name.startswith("REELGATE_TEST_"):
            monkeypatch.delenv(name)


def _pg_admin_url() -> str | None:
    url = os.environ.get("REELGATE_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but REELGATE_TEST_DATABASE_URL is unset: PostgreSQL tests must run"
            )
        return None
    return url


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    url = _pg_admin_url()
    if url is None:
        yield None
        return
    name = f"rg_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    migrate.upgrade(_dsn(url, name))
    yield name
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_url(pg_template: str | None) -> Iterator[str]:
    """A fresh database cloned from the migrated template, dropped afterwards."""
    url = _pg_admin_url()
    if url is None or pg_template is None:
        pytest.skip("REELGATE_TEST_DATABASE_URL not set")
    name = f"rg_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(url, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield _dsn(url, name)
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An S3 server (moto's server mode) on a loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (as PostgreSQL tests
    get a clone of a migrated template): migrating costs 0.14 s, copying nothing."""
    path = tmp_path_factory.mktemp("sqlite-template") / "reelgate.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "reelgate.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        return url
    url = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        storage_url=(tmp_path / "videos").as_uri(),
        dev_api_key=TEST_KEY,  # type: ignore[arg-type]
        idle_poll_seconds=2.0,
        **LOOPBACK_FETCH,  # type: ignore[arg-type]
    )


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(settings, public_url="http://testserver")
    from reelgate.accounts.dev import ensure_dev_account

    await ensure_dev_account(runtime)
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as c:
        yield c


@pytest.fixture
async def worker(rt: Runtime) -> AsyncIterator[Worker]:
    """A worker running in the background for the test's duration."""
    wk = Worker.from_runtime(rt, concurrency=4, lease_seconds=10)
    task = asyncio.create_task(wk.run())
    yield wk
    wk.stop()
    await asyncio.wait_for(task, timeout=30)


async def wait_for_status(
    client: httpx.AsyncClient, job_id: str, statuses: set[str], timeout: float = 60.0
) -> list[dict[str, object]]:
    """Poll a job until its status is one of ``statuses``; return every answer seen."""
    seen: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        resp = await client.get(f"/v1/videos/{job_id}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        seen.append(body)
        if body["status"] in statuses:
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck: last {seen[-1] if seen else None}")


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "tiny.mp4"
    render_video(RenderSpec(prompt="tiny", seed=1, duration_seconds=1, width=160, height=90), path)
    return path


@pytest.fixture
def scripted(rt: Runtime, tiny_video: Path) -> ScriptedProvider:
    """Two catalog models on the scripted provider: ``s-primary`` falls back to ``s-backup``."""
    provider = ScriptedProvider(video=tiny_video)
    rt.providers.providers["scripted"] = provider
    local = load_catalog().get("local")
    extra = [
        dataclasses.replace(
            local,
            id=model_id,
            provider="scripted",
            upstream_model=model_id,
            poll_interval_seconds=0.05,
            typical_seconds=1.0,
        )
        for model_id in ("s-primary", "s-backup")
    ]
    rt.catalog.replace([*rt.catalog, *extra])
    return provider


def small_job(
    prompt: str, *, chain: tuple[str, ...] = ("local",), deadline_seconds: int = 600, seed: int = 0
) -> NewJob:
    """A 1-second 360p job for the dev account, submitted straight to the engine."""
    return NewJob(
        account_id=DEV_ACCOUNT_ID,
        chain=list(chain),
        prompt=prompt,
        params=JobParams(
            duration_seconds=1,
            resolution="360p",
            aspect_ratio="16:9",
            width=640,
            height=360,
            seed=seed,
        ),
        deadline_seconds=deadline_seconds,
    )


def free_port() -> int:
    """A TCP port free on loopback now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


__all__ = ["DEV_ACCOUNT_ID", "TEST_KEY", "free_port", "small_job", "wait_for_status"]
