"""Real ``reelgate worker`` processes: crash safety and scale-out on one database.

- A worker killed with SIGKILL mid-flight loses its leases; the others resume
  its jobs from their stored state; every job ends exactly once with exactly
  one upstream create.
- Four workers on one PostgreSQL share 500 jobs and never create one twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from reelgate.config import Settings
from reelgate.engine.commands import submit_job
from reelgate.providers.local import LocalProvider
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, ensure_account
from reelgate.store.ledger import grant
from reelgate.store.schema import jobs
from tests.acceptance.conftest import Procs, process_env
from tests.conftest import small_job
from tests.values import local_work_dir

pytestmark = pytest.mark.slow


def _settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        storage_url=(tmp_path / "videos").as_uri(),
        local_work_dir=tmp_path / "renders",
        lease_seconds=3.0,
        max_jobs_in_flight=10_000,
        max_seconds_in_flight=100_000,
    )


def _env(s: Settings, **extra: str) -> dict[str, str]:
    return process_env(
        data_dir=str(s.data_dir),
        database_url=s.resolved_database_url(),
        storage_url=s.resolved_storage_url(),
        local_work_dir=str(local_work_dir(s)),
        lease_seconds=str(s.lease_seconds),
        idle_poll_seconds="1",
        **extra,
    )


async def _submit(rt: Runtime, n: int, *, distinct: bool) -> list[str]:
    async with rt.db.begin() as conn:
        await ensure_account(conn, DEV_ACCOUNT_ID, "dev")
        await grant(conn, DEV_ACCOUNT_ID, 10_000_000)
    ids = []
    for i in range(n):
        job = await submit_job(
            rt,
            small_job(
                f"job number {i}" if distinct else "the same clip for everyone",
                deadline_seconds=900,
                seed=i if distinct else 0,
            ),
        )
        ids.append(job.id)
    return ids


async def _states(rt: Runtime) -> Counter[str]:
    async with rt.db.connect() as conn:
        rows = (
            await conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state))
        ).all()
    return Counter({state: count for state, count in rows})


async def _leased(rt: Runtime) -> int:
    async with rt.db.connect() as conn:
        query = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.lease_owner.is_not(None))
        return int((await conn.execute(query)).scalar_one())


async def _wait_all_final(rt: Runtime, n: int, timeout: float, procs: Procs) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = await _states(rt)
        if sum(states[s] for s in ("completed", "failed", "canceled")) == n:
            return states
        await asyncio.sleep(0.5)
    logs = "\n".join(
        procs.log(f"w{i}")[-2000:] for i in range(4) if (procs.logs / f"w{i}.log").exists()
    )
    raise AssertionError(f"jobs not final in {timeout}s: {await _states(rt)}\n{logs}")


async def _check_exactly_once(rt: Runtime, settings: Settings, ids: list[str]) -> None:
    provider = LocalProvider(local_work_dir(settings))
    try:
        creates = Counter(task["job_id"] for task in provider.created_tasks())
    finally:
        await provider.aclose()
    assert {job_id: creates[job_id] for job_id in ids} == dict.fromkeys(ids, 1)
    async with rt.db.connect() as conn:
        rows = (
            await conn.execute(sa.select(jobs.c.id, jobs.c.state, jobs.c.attempts, jobs.c.result))
        ).all()
    for job_id, state, attempts, result in rows:
        assert state == "completed", (job_id, state)
        assert [a["outcome"] for a in attempts] == ["completed"], (job_id, attempts)
        assert result["mirror_status"] == "stored"


async def test_sigkilled_worker_loses_nothing_and_submits_nothing_twice(
    db_url: str, tmp_path: Path, procs: Procs
) -> None:
    settings = _settings(tmp_path, db_url)
    rt = await build_runtime(settings, public_url="http://127.0.0.1:9", listen=False)
    try:
        ids = await _submit(rt, 24, distinct=True)
        procs.env = _env(settings)
        victim = procs.start("worker", "--concurrency", "8", name="w0")
        # Kill the first worker mid-flight: jobs submitted upstream but unfinished,
        # and at least one step in hand (a lease held), so some work must be taken over.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = await _states(rt)
            if states["running"] + states["mirroring"] >= 3 and await _leased(rt) > 0:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"never got mid-flight: {await _states(rt)}\n{procs.log('w0')}")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        procs.start("worker", "--concurrency", "8", name="w1")
        procs.start("worker", "--concurrency", "8", name="w2")
        states = await _wait_all_final(rt, len(ids), 180, procs)
        assert states == Counter({"completed": len(ids)})
        await _check_exactly_once(rt, settings, ids)
    finally:
        await rt.aclose()


async def test_four_workers_share_500_jobs_on_postgres_and_create_each_once(
    tmp_path: Path, procs: Procs, pg_url: str
) -> None:
    settings = _settings(tmp_path, pg_url)
    rt = await build_runtime(settings, public_url="http://127.0.0.1:9", listen=False)
    try:
        procs.env = _env(settings)
        for i in range(4):
            procs.start("worker", "--concurrency", "16", name=f"w{i}")
        started = time.monotonic()
        ids = await _submit(rt, 500, distinct=False)
        await _wait_all_final(rt, 500, 600, procs)
        elapsed = time.monotonic() - started
        await _check_exactly_once(rt, settings, ids)
        print(f"\n500 jobs through 4 workers in {elapsed:.1f}s")
    finally:
        await rt.aclose()
