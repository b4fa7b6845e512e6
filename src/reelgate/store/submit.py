"""The submit as one call to the database: checks and writes in a single transaction,
sent in one piece.

A submit locks the account, checks its credits and its in-flight caps, takes the
Idempotency-Key's answer, and writes the hold, its ledger line, the job and its first
event. Done statement by statement that was about ten trips to the database per
request; here it is one:

- PostgreSQL: one statement, ``SELECT * FROM reelgate_submit(...)`` (a function made by
  migration 0012, with budgets since 0018), on a connection in autocommit, so the
  function's own transaction is the submit's. Its refusals write nothing, except a
  budget's first refusal of a period: its mark and its event (``store.budgets``).
- SQLite: one function handed to the file's writer thread (``store.sqlite_writer``),
  which runs it between ``BEGIN IMMEDIATE`` and ``COMMIT`` on a plain ``sqlite3``
  connection, together with whatever other submits arrived meanwhile.

The rows themselves are built here, once, for both: the values a job, a hold or a
ledger line is written with are decided in Python, never in SQL.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reelgate.job import Event, Job
from reelgate.store.budgets import (
    ACCOUNT,
    sqlite_budgets,
    sqlite_budgets_check,
    sqlite_budgets_hold,
)
from reelgate.store.codec import job_to_row
from reelgate.store.events import event_row
from reelgate.store.ledger import Balance, hold_rows
from reelgate.store.schema import holds, job_events, jobs, ledger
from reelgate.store.sqlite_writer import insert_row

__all__ = [
    "JobSubmission",
    "StoredAnswer",
    "SubmitOutcome",
    "SubmitResult",
    "check_submission",
    "postgres_submit",
    "sqlite_submit",
    "submission_rows",
]


@dataclass(frozen=True)
class StoredAnswer:
    """The response an Idempotency-Key replays, stored with the work it describes."""

    key: str
    owner: str
    status: int
    body: Any


@dataclass(frozen=True)
class JobSubmission:
    job: Job
    """Queued, with its ``hold_id`` and ``event_seq`` = 1."""
    hold_amount: int
    event: Event
    max_jobs: int
    """The account's cap on unfinished jobs, this one included."""
    max_seconds: int
    """The account's cap on seconds of video in unfinished jobs, this one included."""
    answer: StoredAnswer | None = None


class SubmitOutcome(StrEnum):
    OK = "ok"
    NO_ACCOUNT = "no_account"
    NOT_ENOUGH = "not_enough"
    TOO_MANY_JOBS = "too_many_jobs"
    TOO_MANY_SECONDS = "too_many_seconds"
    OVER_BUDGET = "over_budget"
    """A budget of the account or the key cannot take the hold (``store.budgets``)."""
    KEY_TAKEN = "key_taken"
    """The Idempotency-Key's lease was taken over by a retry: nothing was written."""


@dataclass(frozen=True)
class SubmitResult:
    outcome: SubmitOutcome
    balance: Balance
    """The account's balance before the submit (after it, when the outcome is OK)."""
    jobs_in_flight: int
    seconds_in_flight: int
    budget: dict[str, Any] | None = None
    """OVER_BUDGET: the budget's numbers (key_id, period, cap, spent, held, price)."""


@dataclass(frozen=True)
class Rows:
    job: dict[str, Any]
    hold: dict[str, Any]
    ledger: dict[str, Any]
    event: dict[str, Any]


def submission_rows(sub: JobSubmission) -> Rows:
    job = sub.job
    assert job.hold_id is not None, "a submitted job carries its hold's id"
    now = job.created_at
    hold, line = hold_rows(
        job.account_id, job.id, job.hold_id, sub.hold_amount, now, key_id=job.key_id
    )
    return Rows(
        job=job_to_row(job),
        hold=hold,
        ledger=line,
        event=event_row(job.id, job.event_seq, sub.event, now),
    )


def _result(
    outcome: SubmitOutcome,
    balance: int,
    held: int,
    jobs_in_flight: int,
    seconds: int,
    budget: dict[str, Any] | None = None,
) -> SubmitResult:
    return SubmitResult(
        outcome, Balance(int(balance), int(held)), int(jobs_in_flight), seconds, budget
    )


def check_submission(
    sub: JobSubmission, balance: int, held: int, n: int, seconds: int
) -> SubmitOutcome:
    """The order the refusals are given in: credits first, then the caps."""
    if balance - held < sub.hold_amount:
        return SubmitOutcome.NOT_ENOUGH
    if n + 1 > sub.max_jobs:
        return SubmitOutcome.TOO_MANY_JOBS
    if seconds + sub.job.params.duration_seconds > sub.max_seconds:
        return SubmitOutcome.TOO_MANY_SECONDS
    return SubmitOutcome.OK


# -- SQLite: a function for the writer thread -----------------------------------------


def sqlite_submit(sub: JobSubmission, rows: Rows, conn: sqlite3.Connection) -> SubmitResult:
    """The submit on SQLite; runs on the writer thread inside its transaction."""
    account = sub.job.account_id
    found = conn.execute(
        "SELECT balance, held, jobs_in_flight, seconds_in_flight FROM accounts WHERE id = ?",
        (account,),
    ).fetchone()
    if found is None:
        return _result(SubmitOutcome.NO_ACCOUNT, 0, 0, 0, 0)
    balance, held, n, seconds = found
    outcome = check_submission(sub, balance, held, n, seconds)
    key_id, now = sub.job.key_id or ACCOUNT, sub.job.created_at
    budget = None
    answer = sub.answer
    if outcome is SubmitOutcome.OK and answer is not None:
        # the key's lease first: a handler whose lease was taken over writes nothing
        leased = conn.execute(
            "SELECT 1 FROM idempotency_keys WHERE account_id = ? AND key = ? AND owner = ? "
            "AND state = 'in_flight'",
            (account, answer.key, answer.owner),
        ).fetchone()
        if leased is None:
            outcome = SubmitOutcome.KEY_TAKEN
    binding = sqlite_budgets(conn, account, key_id) if outcome is SubmitOutcome.OK else []
    if binding:
        budget = sqlite_budgets_check(conn, binding, account, sub.hold_amount, now)
        if budget is not None:
            outcome = SubmitOutcome.OVER_BUDGET
    if outcome is SubmitOutcome.OK and sub.answer is not None:
        taken = conn.execute(
            "UPDATE idempotency_keys SET state = 'done', response_status = ?, "
            "response_body = ?, owner = NULL, lease_expires_at = NULL "
            "WHERE account_id = ? AND key = ? AND owner = ? AND state = 'in_flight'",
            (
                sub.answer.status,
                json.dumps(sub.answer.body),
                account,
                sub.answer.key,
                sub.answer.owner,
            ),
        )
        if taken.rowcount != 1:
            outcome = SubmitOutcome.KEY_TAKEN
    if outcome is not SubmitOutcome.OK:
        return _result(outcome, balance, held, n, seconds, budget)
    insert_row(conn, holds, rows.hold)
    conn.execute("UPDATE accounts SET held = held + ? WHERE id = ?", (sub.hold_amount, account))
    insert_row(conn, ledger, rows.ledger)
    insert_row(conn, jobs, rows.job)  # the trigger counts it in flight
    insert_row(conn, job_events, rows.event)
    if binding:
        sqlite_budgets_hold(conn, binding, account, sub.hold_amount, now, sub.job.id)
    return SubmitResult(
        SubmitOutcome.OK,
        Balance(int(balance), int(held) + sub.hold_amount),
        int(n) + 1,
        int(seconds) + sub.job.params.duration_seconds,
    )


# -- PostgreSQL: one statement ---------------------------------------------------------

_PG_CALL = (
    "SELECT o_outcome, o_balance, o_held, o_jobs, o_seconds, o_budget FROM reelgate_submit("
    "$1::jsonb, $2::jsonb, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9, $10::jsonb)"
)


async def postgres_submit(conn: Any, *, sub: JobSubmission, rows: Rows) -> SubmitResult:
    """The submit on PostgreSQL, on a raw asyncpg connection outside any transaction."""
    answer = sub.answer
    found = await conn.fetchrow(
        _PG_CALL,
        json.dumps(rows.job),
        json.dumps(rows.hold),
        json.dumps(rows.ledger),
        json.dumps(rows.event),
        sub.max_jobs,
        sub.max_seconds,
        answer.key if answer else None,
        answer.owner if answer else None,
        answer.status if answer else None,
        json.dumps(answer.body) if answer else None,
    )
    outcome, balance, held, n, seconds, budget = found
    detail = json.loads(budget) if isinstance(budget, str) else budget
    return _result(SubmitOutcome(outcome), balance, held, n, int(seconds), detail)
