"""Inbound provider webhooks: replay detection and the poll they bring forward.

A verified call (``providers.base.ReceivesWebhooks``) is recorded by its delivery id
in the same transaction that makes the job due, so a replay of it finds the id and
changes nothing. A replay older than the signature's tolerance is refused on its
timestamp before it gets here, so ids are kept only for ``KEEP_MS``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.job import JobResult, JobState
from reelgate.store.codec import encode_result
from reelgate.store.schema import inbound_deliveries, jobs

__all__ = ["KEEP_MS", "poll_now", "record_delivery", "running_job_for"]

KEEP_MS = 15 * 60 * 1000
"""Longer than twice the timestamp tolerance (5 min either way) a signed call has."""


async def record_delivery(
    conn: AsyncConnection, delivery_id: str, provider: str, job_id: str, now: int
) -> bool:
    """Remember a delivery; False when it was already there (a replay)."""
    t = inbound_deliveries
    await conn.execute(sa.delete(t).where(t.c.received_at < now - KEEP_MS))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(t)
        .values(delivery_id=delivery_id[:200], provider=provider, job_id=job_id, received_at=now)
        .on_conflict_do_nothing()
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def running_job_for(conn: AsyncConnection, upstream_id: str) -> str | None:
    """The running job whose current upstream job is ``upstream_id`` (``ix_jobs_upstream_id``)."""
    query = (
        sa.select(jobs.c.id)
        .where(jobs.c.upstream_id == upstream_id, jobs.c.state == JobState.RUNNING.value)
        .limit(1)
    )
    found: str | None = (await conn.execute(query)).scalar_one_or_none()
    return found


async def poll_now(
    conn: AsyncConnection, job_id: str, upstream_id: str, now: int, pushed: JobResult | None
) -> bool:
    """Make a running job due now, if ``upstream_id`` is still its upstream job (a call
    about an earlier attempt's job, or a finished job, changes nothing). ``pushed``: the
    finished video the call named, kept as the running job's result for its worker to
    take instead of polling."""
    values: dict[str, object] = {"next_run_at": now, "updated_at": now}
    if pushed is not None:
        values["result"] = encode_result(pushed)
    result = await conn.execute(
        jobs.update()
        .where(
            jobs.c.id == job_id,
            jobs.c.upstream_id == upstream_id,
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.cancel_requested.is_(False),
            jobs.c.next_run_at.is_not(None),
        )
        .values(**values)
    )
    return bool(result.rowcount)
