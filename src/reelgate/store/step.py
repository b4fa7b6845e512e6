"""A step's write as one call to the database: the fenced update of the job, its event
and its hold's settlement, in a single transaction sent in one piece.

Most steps end with the same three writes: the job's changed columns (only while the
worker holds its lease: the fence), the event the change makes, and at the end of a job
the settlement of its credit hold. Statement by statement that was a trip to the
database for each, plus BEGIN and COMMIT: six to eleven per step, and the worker's
largest cost. Here it is one, as the submit is (``store.submit``):

- PostgreSQL: ``SELECT reelgate_step(...)`` (a function made by migration 0013) on a
  connection in autocommit. The job's columns come as one JSON object and only those
  are written; the hold's ledger lines are built in the function.
- SQLite: one function handed to the file's writer thread (``store.sqlite_writer``).

``record_step_in`` does the same through a :class:`~reelgate.store.base.Tx`, for a step
that writes more in its transaction (an ambiguous create listed for operators, a slot
counted under a lock) and for the in-memory store. A contract test holds the three to
the same rows.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reelgate.billing.pricing import format_credits
from reelgate.ids import new_id
from reelgate.job import Event, Job
from reelgate.store.codec import changed_columns
from reelgate.store.events import event_row
from reelgate.store.schema import job_events, jobs, ledger
from reelgate.store.sqlite_writer import column_encoder, insert_row

if TYPE_CHECKING:
    from reelgate.store.base import Tx

__all__ = [
    "StepWrite",
    "postgres_step",
    "record_step_in",
    "settlement_lines",
    "sqlite_step",
    "step_values",
]


@dataclass(frozen=True)
class StepWrite:
    """What a step writes when it ends."""

    before: Job
    """The job as claimed (its ``next_run_at`` tells a wake-up someone else set since)."""
    after: Job
    """The job as the step leaves it, ``event_seq`` already counting ``event``."""
    worker_id: str
    release: bool
    """Drop the lease with the write (the job waits for its next wake-up)."""
    event: Event | None
    settle: int | None
    """The job's hold: None leaves it open; 0 releases it; more captures that much
    (never more than the hold) and releases the rest."""
    now: int

    @property
    def settles(self) -> str | None:
        """The hold this write settles (None: it leaves the job's hold alone)."""
        return self.before.hold_id if self.settle is not None else None


def step_values(before: Job, after: Job, *, release: bool, now: int) -> dict[str, Any]:
    """The job's columns a step writes: what it changed, ``updated_at``, and the lease
    when it lets the job go."""
    values: dict[str, Any] = changed_columns(before, after)
    values["updated_at"] = now
    if release:
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    return values


def settlement_lines(
    account_id: str, hold_id: str, job_id: str, amount: int, captured: int, now: int
) -> list[dict[str, Any]]:
    """The ledger lines that close a hold of ``amount`` having charged ``captured``
    (at most ``amount``). The account moves by the sum of their deltas. PostgreSQL's
    ``reelgate_step`` writes the same lines (the contract test compares them)."""
    base = {"account_id": account_id, "hold_id": hold_id, "job_id": job_id, "created_at": now}
    if not captured:
        return [
            {
                **base,
                "id": new_id("led"),
                "kind": "release",
                "balance_delta": 0,
                "held_delta": -amount,
                "note": "job not completed: nothing charged",
            }
        ]
    lines = [
        {
            **base,
            "id": new_id("led"),
            "kind": "capture",
            "balance_delta": -captured,
            "held_delta": -amount,
            "note": "charge for delivered video",
        }
    ]
    if captured < amount:
        lines.append(
            {
                **base,
                "id": new_id("led"),
                "kind": "release",
                "balance_delta": 0,
                "held_delta": 0,
                "note": f"unused hold: {format_credits(amount - captured)}",
            }
        )
    return lines


async def record_step_in(tx: Tx, step: StepWrite) -> bool:
    """The step's write inside the caller's transaction. False: the lease was lost and
    nothing was written."""
    before, after = step.before, step.after
    if not await tx.write_step(before, after, step.worker_id, release=step.release, now=step.now):
        return False
    if step.event is not None:
        await tx.record_event(before.id, after.event_seq, step.event, step.now)
    if step.settles is not None:
        if step.settle:
            await tx.capture_hold(step.settles, step.settle)
        else:
            await tx.release_hold(step.settles)
    return True


# -- SQLite: a function for the writer thread -----------------------------------------


def sqlite_step(step: StepWrite, conn: sqlite3.Connection) -> bool:
    """The step on SQLite; runs on the writer thread inside its transaction."""
    before = step.before
    values = step_values(before, step.after, release=step.release, now=step.now)
    later = values.get("next_run_at")
    if later is not None:
        del values["next_run_at"]
    encode = column_encoder(jobs)
    sets = [f"{name} = ?" for name in values]
    params: list[Any] = [encode(name, value) for name, value in values.items()]
    if later is not None:
        # Someone made the job due sooner while this step ran: the earlier time stands
        # (``store.jobs.write_step`` says why)
        sets.append(
            "next_run_at = CASE WHEN next_run_at IS NOT NULL AND next_run_at IS NOT ? "
            "AND next_run_at < ? THEN next_run_at ELSE ? END"
        )
        params += [before.next_run_at, later, later]
    written = conn.execute(
        f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND lease_owner = ?",  # noqa: S608
        (*params, before.id, step.worker_id),
    )
    if written.rowcount != 1:
        return False
    if step.event is not None:
        row = event_row(before.id, step.after.event_seq, step.event, step.now)
        insert_row(conn, job_events, row)
    if step.settles is not None and step.settle is not None:
        _sqlite_settle(conn, step.settles, step.settle, step.now)
    return True


def _sqlite_settle(conn: sqlite3.Connection, hold_id: str, charge: int, now: int) -> None:
    found = conn.execute(
        "SELECT amount, account_id, job_id FROM holds WHERE id = ? AND status = 'open'",
        (hold_id,),
    ).fetchone()
    if found is None:
        return  # already settled: exactly once
    amount, account_id, job_id = int(found[0]), found[1], found[2]
    captured = min(charge, amount)
    conn.execute(
        "UPDATE holds SET status = ?, captured = ?, resolved_at = ? WHERE id = ?",
        ("captured" if charge else "released", captured, now, hold_id),
    )
    lines = settlement_lines(account_id, hold_id, job_id, amount, captured, now)
    conn.execute(
        "UPDATE accounts SET balance = balance + ?, held = held + ? WHERE id = ?",
        (
            sum(line["balance_delta"] for line in lines),
            sum(line["held_delta"] for line in lines),
            account_id,
        ),
    )
    for line in lines:
        insert_row(conn, ledger, line)


# -- PostgreSQL: one statement ---------------------------------------------------------

_PG_CALL = "SELECT reelgate_step($1, $2, $3::jsonb, $4, $5::jsonb, $6, $7, $8::text[], $9)"


async def postgres_step(conn: Any, step: StepWrite) -> bool:
    """The step on PostgreSQL, on a raw asyncpg connection outside any transaction."""
    before = step.before
    values = step_values(before, step.after, release=step.release, now=step.now)
    event = (
        json.dumps(event_row(before.id, step.after.event_seq, step.event, step.now))
        if step.event is not None
        else None
    )
    hold = step.settles
    written = await conn.fetchval(
        _PG_CALL,
        before.id,
        step.worker_id,
        json.dumps(values),
        before.next_run_at,
        event,
        hold,
        step.settle if hold is not None else None,
        [new_id("led"), new_id("led")] if hold is not None else None,
        step.now,
    )
    return bool(written)
