"""Real processes through real outages, under load.

- PostgreSQL behind a TCP proxy (``tests.faultproxy``): ``reelgate api`` and two
  ``reelgate worker`` processes while clients submit (each with its own
  Idempotency-Key, retried until accepted) and poll; the database is reset,
  then down (refused) for 20 s, then frozen for 20 s.
- SQLite: ``reelgate serve`` while another process holds the database's write
  lock for 20 s (readers go on, as WAL lets them; every write waits, then fails).
- The API killed with SIGKILL in the middle of a burst of submits, and started
  again, on both databases.

Afterwards: every process is alive (but the one killed on purpose), every
client saw only 202/409/503 (never a 500), every key made exactly one job,
every job finished, each was charged once, and the ledger sums exactly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from reelgate.store import migrate
from reelgate.store.db import create_engine
from reelgate.store.schema import jobs
from tests.acceptance.conftest import Procs, process_env
from tests.acceptance.test_processes import _wait_healthy
from tests.checks import assert_ledger_exact, jobs_by_key
from tests.conftest import free_port
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.slow

KEY = "rg_outage_key_abcdefghijklmnopqrstuvwxyz01234567"
BODY = {"model": "local", "duration_seconds": 1, "resolution": "360p"}
OUTAGE_SECONDS = float(os.environ.get("REELGATE_TEST_OUTAGE_SECONDS", "10"))
"""Over three database timeouts (3 s) and two leases (5 s); longer runs: set it."""


class Clients:
    """Clients that retry a submit with its Idempotency-Key until it is accepted, and
    poll what they made; every answer is counted."""

    def __init__(self, base: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        )
        self.statuses: Counter[int] = Counter()
        self.cut = 0  # requests whose connection broke (the API was killed)
        self.accepted: dict[str, str] = {}
        self.bad: list[str] = []

    async def submit(self, key: str) -> None:
        body = {**BODY, "prompt": f"storm {key}"}
        while True:
            try:
                resp = await self.http.post(
                    "/v1/videos", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                self.cut += 1
                await asyncio.sleep(0.3)
                continue
            self._count(resp)
            if resp.status_code == 202:
                job_id = str(resp.json()["id"])
                assert self.accepted.setdefault(key, job_id) == job_id
                return
            await asyncio.sleep(min(2.0, float(resp.headers.get("retry-after", "0.5"))))

    async def poll(self, until: asyncio.Event) -> None:
        while not until.is_set():
            for job_id in list(self.accepted.values())[-5:]:
                try:
                    self._count(await self.http.get(f"/v1/videos/{job_id}"))
                except httpx.TransportError:
                    self.cut += 1
            await asyncio.sleep(0.2)

    def _count(self, resp: httpx.Response) -> None:
        self.statuses[resp.status_code] += 1
        if resp.status_code not in (200, 202, 409, 503):
            self.bad.append(f"{resp.status_code} {resp.text[:300]}")
        if resp.status_code == 503:
            assert resp.json()["error"]["code"] == "database_unavailable"
            assert int(resp.headers["retry-after"]) >= 1

    async def aclose(self) -> None:
        await self.http.aclose()


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return process_env(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        storage_url=(tmp_path / "videos").as_uri(),
        local_work_dir=str(tmp_path / "renders"),
        dev_api_key=KEY,
        rate_limit="",
        database_timeout_seconds="3",
        idempotency_lease_seconds="3",
        lease_seconds="5",
        idle_poll_seconds="1",
        max_jobs_in_flight="10000",
        max_seconds_in_flight="100000",
    )


async def _all_final(db_url: str, n: int, timeout: float, procs: Procs) -> Counter[str]:
    engine = create_engine(db_url, pool_size=1)
    try:
        deadline = time.monotonic() + timeout
        states: Counter[str] = Counter()
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
                    )
                ).all()
            states = Counter({state: count for state, count in rows})
            if sum(states[s] for s in ("completed", "failed", "canceled")) == n:
                return states
            await asyncio.sleep(0.5)
        logs = "\n".join(
            procs.log(p)[-1500:]
            for p in ("api", "w0", "w1", "serve")
            if (procs.logs / f"{p}.log").exists()
        )
        raise AssertionError(f"not all final: {states}\n{logs}")
    finally:
        await engine.dispose()


async def _verify(db_url: str, clients: Clients, keys: list[str]) -> None:
    engine = create_engine(db_url, pool_size=1)
    try:
        assert not clients.bad, clients.bad[:5]
        assert sorted(clients.accepted) == sorted(keys)
        by_key = await jobs_by_key(engine)
        assert {k: by_key[k] for k in keys} == clients.accepted  # one job per key
        await assert_ledger_exact(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[FaultProxy, str]]:
    url = make_url(pg_url)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield proxy, through


async def test_postgres_cut_refused_and_frozen_under_load(
    tmp_path: Path, procs: Procs, pg_proxy: tuple[FaultProxy, str], pg_url: str
) -> None:
    proxy, through = pg_proxy
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.env = _env(tmp_path, through)
    api = procs.start("api", "--port", str(port), name="api")
    workers = [procs.start("worker", "--concurrency", "4", name=f"w{i}") for i in range(2)]
    _wait_healthy(base, procs, "api")
    clients = Clients(base)
    stop_polling = asyncio.Event()
    polling = asyncio.create_task(clients.poll(stop_polling))
    keys: list[str] = []

    async def wave(n: int) -> None:
        batch = [f"k-{uuid.uuid4().hex[:10]}" for _ in range(n)]
        keys.extend(batch)
        await asyncio.gather(*(clients.submit(k) for k in batch))

    try:
        await wave(6)
        # submits in flight when the database goes away, and while it is away
        during = asyncio.create_task(wave(10))
        await asyncio.sleep(0.2)
        cut = proxy.reset()
        proxy.down()
        await asyncio.sleep(OUTAGE_SECONDS)
        assert [p.poll() for p in (api, *workers)] == [None, None, None], "a process died"
        proxy.restore()
        await asyncio.wait_for(during, 60)
        frozen_wave = asyncio.create_task(wave(10))
        await asyncio.sleep(0.2)
        proxy.freeze()
        await asyncio.sleep(OUTAGE_SECONDS)
        assert [p.poll() for p in (api, *workers)] == [None, None, None], "a process died"
        proxy.restore()
        await asyncio.wait_for(frozen_wave, 60)
        await wave(4)
        await _all_final(pg_url, len(keys), 180, procs)
        assert [p.poll() for p in (api, *workers)] == [None, None, None]
        print(f"\nPostgreSQL outage: {cut} connections cut; answers {dict(clients.statuses)}")
        assert clients.statuses[503] > 0  # the outage was seen, and answered properly
        await _verify(pg_url, clients, keys)
    finally:
        stop_polling.set()
        await polling
        await clients.aclose()


def _hold_sqlite_exclusively(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process (a backup, an operator's sqlite3 shell) holds the database's write
    lock: no process may write. (In WAL mode readers go on: every open connection holds
    a shared lock, so no one can take the file whole while reelgate runs.)"""
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute('UPDATE accounts SET name = name WHERE 0')\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "c.execute('ROLLBACK')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


async def test_sqlite_file_unavailable_under_load(tmp_path: Path, procs: Procs) -> None:
    database = tmp_path / "data" / "reelgate.db"
    db_url = f"sqlite:///{database}"
    await migrate.upgrade_async(db_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.env = _env(tmp_path, db_url)
    serve = procs.start("serve", "--port", str(port), name="serve")
    _wait_healthy(base, procs, "serve")
    clients = Clients(base)
    stop_polling = asyncio.Event()
    polling = asyncio.create_task(clients.poll(stop_polling))
    keys = [f"s-{uuid.uuid4().hex[:10]}" for _ in range(16)]
    try:
        await asyncio.gather(*(clients.submit(k) for k in keys[:6]))
        holder = await asyncio.to_thread(_hold_sqlite_exclusively, database, OUTAGE_SECONDS)
        during = asyncio.gather(*(clients.submit(k) for k in keys[6:]))
        await asyncio.to_thread(holder.wait)
        assert serve.poll() is None, "serve died while the file was unavailable"
        await asyncio.wait_for(during, 90)
        await _all_final(db_url, len(keys), 180, procs)
        assert serve.poll() is None
        print(f"\nSQLite locked {OUTAGE_SECONDS:.0f}s: answers {dict(clients.statuses)}")
        assert clients.statuses[503] > 0
        await _verify(db_url, clients, keys)
    finally:
        stop_polling.set()
        await polling
        await clients.aclose()
    with sqlite3.connect(database) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_the_api_killed_mid_request_loses_and_doubles_nothing(
    db_url: str, tmp_path: Path, procs: Procs
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.env = _env(tmp_path, db_url)
    procs.start("worker", "--concurrency", "4", name="w0")
    clients = Clients(base)
    keys: list[str] = []
    try:
        for rnd in range(3):
            api = procs.start("api", "--port", str(port), name="api")
            _wait_healthy(base, procs, "api")
            batch = [f"r{rnd}-{uuid.uuid4().hex[:10]}" for _ in range(12)]
            keys.extend(batch)
            burst = asyncio.gather(*(clients.submit(k) for k in batch))
            await asyncio.sleep(0.05 + 0.05 * rnd)  # inside the burst
            api.send_signal(signal.SIGKILL)
            api.wait()
            await asyncio.sleep(0.5)
            api = procs.start("api", "--port", str(port), name="api")
            await asyncio.wait_for(burst, 60)
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=30)
        await _all_final(db_url, len(keys), 120, procs)
        print(
            f"\nAPI SIGKILLed 3 times: {clients.cut} requests cut, answers {dict(clients.statuses)}"
        )
        assert clients.cut > 0  # the kills did land mid-request
        await _verify(db_url, clients, keys)
    finally:
        await clients.aclose()
