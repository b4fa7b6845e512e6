"""Jobs for the benchmarks to work on: real submits, fast copies, and a drain.

``submit_jobs`` goes through ``submit_job`` like the API (credit hold, in-flight
check, event). ``seed_table`` needs thousands of rows in seconds, so one job
goes through ``submit_job`` and the rest are copies of its row: the shape is
always the current schema's, whatever migrations have added. ``drain`` marks
queued jobs finished, as a worker eventually would, so an API-only run keeps a
realistic number of jobs in flight.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.catalog.validate import Submission, validate_submission
from reelgate.engine.commands import NewJob, submit_job
from reelgate.ids import new_job_id
from reelgate.runtime import Runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID
from reelgate.store.jobs import now_ms
from reelgate.store.schema import jobs

__all__ = ["drain", "new_job", "seed_table", "submit_jobs"]


def new_job(rt: Runtime, model: str, prompt: str) -> NewJob:
    checked = validate_submission(
        rt.catalog,
        Submission(model=model, duration_seconds=4, resolution="720p", aspect_ratio="16:9"),
    )
    return NewJob(
        account_id=DEV_ACCOUNT_ID,
        chain=checked.chain,
        prompt=prompt,
        params=checked.params,
        deadline_seconds=3600,
    )


async def submit_jobs(rt: Runtime, model: str, n: int) -> None:
    """Queue ``n`` jobs the way the API does."""
    for i in range(n):
        await submit_job(rt, new_job(rt, model, f"job {i}: a red fox running through snow"))


async def seed_table(rt: Runtime, model: str, *, due: int, finished: int) -> None:
    """``due`` (at least 1) queued jobs and ``finished`` completed ones for the dev
    account. No step may run on the copies: they share one job's params and skip
    the credit hold."""
    first = await submit_job(rt, new_job(rt, model, "a red fox running through snow"))
    async with rt.db.connect() as conn:
        query = sa.select(jobs).where(jobs.c.id == first.id)
        row = dict((await conn.execute(query)).mappings().one())
    if "hold_id" in row:
        row["hold_id"] = None  # copies must not share the first job's credit hold
    now = now_ms()
    rows: list[dict[str, Any]] = []
    for i in range(finished):
        rows.append(
            {
                **row,
                "id": new_job_id(),
                "state": "completed",
                "progress": 100,
                "next_run_at": None,
                "completed_at": now - i,
                "result": {"mirror_status": "stored", "key": f"videos/x/{i}.mp4"},
            }
        )
    for i in range(due - 1):
        rows.append({**row, "id": new_job_id(), "next_run_at": now - due + i})
    async with rt.db.begin() as conn:
        for start in range(0, len(rows), 1000):
            await conn.execute(jobs.insert(), rows[start : start + 1000])
        if conn.dialect.name == "postgresql":
            # What autovacuum would have done by now on a live table.
            await conn.execute(sa.text("ANALYZE jobs"))


async def drain(db: AsyncEngine) -> int:
    """Mark every queued job completed (untimed bookkeeping between batches)."""
    now = now_ms()
    async with db.begin() as conn:
        result = await conn.execute(
            jobs.update()
            .where(jobs.c.state == "queued")
            .values(state="completed", progress=100, next_run_at=None, completed_at=now)
        )
    return int(result.rowcount)
