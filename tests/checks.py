"""Invariants the fault tests check after every storm: money and idempotency."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.store.schema import accounts, holds, idempotency_keys, jobs, ledger

__all__ = ["assert_ledger_exact", "jobs_by_key"]


async def assert_ledger_exact(db: AsyncEngine) -> None:
    """Each balance and held amount is exactly what the ledger sums to; every finished
    job's hold settled once (captured if completed, released otherwise), every
    capture booked once."""
    async with db.connect() as conn:
        for account in (await conn.execute(sa.select(accounts))).all():
            sums = (
                await conn.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(ledger.c.balance_delta), 0),
                        sa.func.coalesce(sa.func.sum(ledger.c.held_delta), 0),
                    ).where(ledger.c.account_id == account.id)
                )
            ).one()
            assert (account.balance, account.held) == (sums[0], sums[1]), account.id
        rows = (
            await conn.execute(
                sa.select(
                    jobs.c.id, jobs.c.state, holds.c.status, jobs.c.cost, holds.c.captured
                ).join(holds, holds.c.job_id == jobs.c.id)
            )
        ).all()
        moves = Counter(
            (job_id, kind)
            for job_id, kind in (
                await conn.execute(
                    sa.select(ledger.c.job_id, ledger.c.kind).where(
                        ledger.c.kind.in_(("capture", "release"))
                    )
                )
            ).all()
        )
    expected = {"completed": "captured", "failed": "released", "canceled": "released"}
    for job_id, state, hold_status, cost, captured in rows:
        assert hold_status == expected[state], (job_id, state, hold_status)
        captures, releases = moves[(job_id, "capture")], moves[(job_id, "release")]
        assert captures == (1 if state == "completed" else 0), (job_id, captures)
        assert releases <= 1, (job_id, releases)  # the unused rest of a hold, once
        if state == "completed":
            assert captured == cost, job_id


async def jobs_by_key(db: AsyncEngine) -> dict[str, str]:
    """Idempotency-Key -> the job its stored answer names, and proof that no job exists
    that no key names (each key made exactly one job)."""
    async with db.connect() as conn:
        keyed = (
            await conn.execute(
                sa.select(idempotency_keys.c.key, idempotency_keys.c.response_body).where(
                    idempotency_keys.c.state == "done"
                )
            )
        ).all()
        all_jobs = {row[0] for row in (await conn.execute(sa.select(jobs.c.id))).all()}
    by_key = {key: body["id"] for key, body in keyed}
    assert sorted(by_key.values()) == sorted(all_jobs), "a job no key answers for"
    return by_key
