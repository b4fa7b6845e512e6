"""A step's write in one call (``store.step``) leaves the same ledger as the statements
it replaces, on both databases: PostgreSQL's ``reelgate_step`` words its ledger lines
in SQL, so they are compared line by line with ``store.ledger``'s."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from reelgate.billing.pricing import format_credits
from reelgate.job import JobState
from reelgate.store.db import create_engine
from reelgate.store.schema import ledger
from reelgate.store.sql import SqlStore
from reelgate.store.step import StepWrite, record_step_in
from reelgate.store.submit import JobSubmission, SubmitOutcome
from tests.integration.test_store_contract import DELIVERED
from tests.values import NOW
from tests.values import a_job as values_job

ACCOUNT = "acct_1"


async def _settle(store: SqlStore, job_id: str, charge: int, *, one_call: bool) -> list[tuple]:
    job = values_job(job_id, account_id=ACCOUNT, hold_id=f"hold_{job_id}", event_seq=1)
    sub = JobSubmission(job, 4_567, DELIVERED, max_jobs=99, max_seconds=999)
    assert (await store.submit(sub)).outcome is SubmitOutcome.OK
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW)
    end = replace(claimed, state=JobState.COMPLETED, next_run_at=None)
    step = StepWrite(claimed, end, "w1", True, None, charge, NOW)
    if one_call:
        assert await store.record_step(step)
    else:
        async with store.begin() as tx:
            assert await record_step_in(tx, step)
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                ledger.c.kind, ledger.c.balance_delta, ledger.c.held_delta, ledger.c.note
            ).where(ledger.c.hold_id == f"hold_{job_id}", ledger.c.kind != "hold")
        )
        return sorted(tuple(r) for r in rows)  # ids made in one millisecond keep no order


@pytest.mark.parametrize("charge", [0, 1, 999, 4_000, 4_567, 10_000])
async def test_one_call_settles_a_hold_into_the_same_ledger_lines(db_url: str, charge: int) -> None:
    engine = create_engine(db_url)
    store = SqlStore(engine)
    try:
        async with store.begin() as tx:
            await tx.create_account(ACCOUNT, ACCOUNT)
            await tx.grant(ACCOUNT, 100_000, "test")
        by_statements = await _settle(store, "video_a", charge, one_call=False)
        in_one_call = await _settle(store, "video_b", charge, one_call=True)
        assert in_one_call == by_statements
        captured = min(charge, 4_567)
        if captured and captured < 4_567:
            assert by_statements[1][3] == f"unused hold: {format_credits(4_567 - captured)}"
        async with store.reading() as tx:
            balance = await tx.get_balance(ACCOUNT)
        assert (balance.balance, balance.held) == (100_000 - 2 * captured, 0)
    finally:
        await engine.dispose()
