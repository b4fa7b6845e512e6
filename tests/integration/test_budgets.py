"""Budgets on SQLite and PostgreSQL: daily and monthly caps per account and per API key,
refused at the exact credit under concurrent submits with the numbers in the 402, held
amounts moving to spent (or freed) as jobs settle, the current period counted when a
budget is set, and 80 % / 100 % announced once to the account's webhook endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from reelgate.cli.main import app
from reelgate.config import Settings
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime
from reelgate.store.budgets import level, period_bounds, period_key, set_budget
from reelgate.store.jobs import now_ms
from reelgate.store.ledger import capture_hold
from reelgate.store.schema import holds, webhook_deliveries
from tests.integration.test_billing import assert_books_balance
from tests.receiver import Receiver, running_receiver, wait_until

JOB = {"model": "local", "prompt": "budget", "duration_seconds": 2, "resolution": "360p"}
JOB_PRICE = 2_000
"""Millicredits: ``local`` is 1 credit a second."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.updated(webhook_poll_seconds=0.05, max_jobs_in_flight=100)


async def _account(client: httpx.AsyncClient, credits: str = "1000") -> tuple[str, str, str]:
    """(account id, key id, key) of a new account with ``credits``."""
    made = await client.post("/v1/admin/accounts", json={"name": "budgets", "credits": credits})
    assert made.status_code == 201, made.text
    account = made.json()["id"]
    key = await client.post(f"/v1/admin/accounts/{account}/keys", json={"name": "k"})
    assert key.status_code == 201, key.text
    return account, key.json()["id"], key.json()["key"]


async def _settled(rt: Runtime, account: str) -> None:
    """Until every delivery of the account is recorded (none in flight at teardown)."""
    for _ in range(200):
        async with rt.db.connect() as conn:
            pending = await conn.scalar(
                sa.select(sa.func.count()).where(
                    webhook_deliveries.c.account_id == account,
                    webhook_deliveries.c.status == "pending",
                )
            )
        if not pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries still pending")


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _wait_done(client: httpx.AsyncClient, job_id: str, statuses: set[str], key: str) -> None:
    for _ in range(600):
        status = (await client.get(f"/v1/videos/{job_id}", headers=_as(key))).json()["status"]
        if status in statuses:
            return
        assert status in ("queued", "in_progress"), status
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {statuses}")


async def test_concurrent_submits_stop_at_the_exact_credit_of_a_key_budget(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    account, key_id, key = await _account(client)
    put = await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": "10"})
    assert put.status_code == 200, put.text
    assert put.json()["cap_millicredits"] == 10_000 and put.json()["scope"] == "key"

    answers = await asyncio.gather(
        *[client.post("/v1/videos", headers=_as(key), json=JOB) for _ in range(16)]
    )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(202) == 5 and codes.count(402) == 11  # 5 x 2 credits = the cap
    refusal = next(a for a in answers if a.status_code == 402).json()["error"]
    assert refusal["code"] == "budget_exceeded"
    assert refusal["scope"] == "key" and refusal["key_id"] == key_id
    assert refusal["period"] == "day"
    assert (refusal["cap"], refusal["spent"], refusal["held"], refusal["price"]) == (
        "10.000",
        "0.000",
        "10.000",
        "2.000",
    )
    assert refusal["price_money"] == {"amount": "0.02", "currency": "USD"}
    assert (
        refusal["resets_at"]
        == period_bounds("day", int(datetime.now(UTC).timestamp() * 1000))[1] // 1000
    )
    assert "resets at" in refusal["message"] and "10.000" in refusal["message"]

    mine = (await client.get("/v1/budgets", headers=_as(key))).json()["data"]
    assert [(b["scope"], b["period"], b["held_millicredits"], b["used_percent"]) for b in mine] == [
        ("key", "day", 10_000, 100)
    ]
    assert mine[0]["remaining"] == "0.000" and mine[0]["notified_threshold"] == 100
    await assert_books_balance(rt, account)

    # one credit less: four fit, and the fifth is refused by one credit
    other_account, other_id, other = await _account(client)
    await client.put(f"/v1/admin/keys/{other_id}/budgets/day", json={"cap": "9.999"})
    answers = await asyncio.gather(
        *[client.post("/v1/videos", headers=_as(other), json=JOB) for _ in range(8)]
    )
    assert sorted(a.status_code for a in answers).count(202) == 4
    await assert_books_balance(rt, other_account)


async def test_an_account_budget_binds_all_its_keys_and_a_month_budget_too(
    client: httpx.AsyncClient,
) -> None:
    account, _first_id, first = await _account(client)
    second = (await client.post(f"/v1/admin/accounts/{account}/keys", json={})).json()["key"]
    assert (
        await client.put(f"/v1/admin/accounts/{account}/budgets/month", json={"cap": 6})
    ).status_code == 200
    assert (await client.post("/v1/videos", headers=_as(first), json=JOB)).status_code == 202
    assert (await client.post("/v1/videos", headers=_as(second), json=JOB)).status_code == 202
    assert (await client.post("/v1/videos", headers=_as(first), json=JOB)).status_code == 202
    refused = await client.post("/v1/videos", headers=_as(second), json=JOB)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert (error["scope"], error["period"], error["key_id"]) == ("account", "month", None)
    listed = (await client.get(f"/v1/admin/accounts/{account}/budgets")).json()["data"]
    assert [(b["scope"], b["period"], b["held"]) for b in listed] == [("account", "month", "6.000")]
    start, end = period_bounds("month", int(datetime.now(UTC).timestamp() * 1000))
    assert (listed[0]["period_start"], listed[0]["resets_at"]) == (start // 1000, end // 1000)
    # removing the budget lifts it
    gone = await client.delete(f"/v1/admin/accounts/{account}/budgets/month")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert (await client.post("/v1/videos", headers=_as(second), json=JOB)).status_code == 202


async def test_settled_jobs_move_from_held_to_spent_and_a_new_budget_counts_the_day(
    client: httpx.AsyncClient, worker: Worker, rt: Runtime
) -> None:
    account, key_id, key = await _account(client)
    done = (await client.post("/v1/videos", headers=_as(key), json=JOB)).json()
    await _wait_done(client, done["id"], {"completed"}, key)
    # set after the job: the day's spend is counted in, from the holds
    put = (await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": "5"})).json()
    assert (put["spent_millicredits"], put["held_millicredits"]) == (JOB_PRICE, 0)

    queued = (await client.post("/v1/videos", headers=_as(key), json=JOB)).json()
    canceled = await client.post(f"/v1/videos/{queued['id']}/cancel", headers=_as(key))
    assert canceled.status_code == 200
    await _wait_done(client, queued["id"], {"canceled", "completed"}, key)
    mine = (await client.get("/v1/budgets", headers=_as(key))).json()["data"][0]
    assert (mine["spent_millicredits"], mine["held_millicredits"]) == (JOB_PRICE, 0)

    running = (await client.post("/v1/videos", headers=_as(key), json=JOB)).json()
    await _wait_done(client, running["id"], {"completed"}, key)
    mine = (await client.get("/v1/budgets", headers=_as(key))).json()["data"][0]
    assert (mine["spent_millicredits"], mine["held_millicredits"]) == (2 * JOB_PRICE, 0)
    assert mine["remaining"] == "1.000"
    refused = await client.post("/v1/videos", headers=_as(key), json=JOB)
    assert refused.status_code == 402
    assert refused.json()["error"]["spent"] == "4.000"
    await assert_books_balance(rt, account)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def test_80_and_100_percent_are_announced_once_to_the_account_endpoints(
    client: httpx.AsyncClient, rt: Runtime, receiver: Receiver
) -> None:
    account, key_id, key = await _account(client)
    endpoint = await client.post(
        f"/v1/admin/accounts/{account}/webhooks",
        json={"url": f"{receiver.url}/budgets", "events": ["budget.warning", "budget.exceeded"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    secret = endpoint.json()["secret"]
    await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": "10"})
    statuses = [
        (await client.post("/v1/videos", headers=_as(key), json=JOB)).status_code for _ in range(7)
    ]
    # 2, 4, 6, 8 (80 %), 10 (100 %), then two refusals (announced already)
    assert statuses == [202] * 5 + [402] * 2
    wk = Worker.from_runtime(rt, concurrency=1, lease_seconds=10)
    assert wk.webhooks is not None
    await wk.webhooks.fan_out_once()
    await wk.webhooks.send_due_once(10)
    await wait_until(lambda: len(receiver.accepted("/budgets")) == 2, what="two budget events")
    events = sorted(
        (r.verify(secret) for r in receiver.accepted("/budgets")),
        key=lambda e: e["data"]["threshold"],
    )
    assert [e["type"] for e in events] == ["budget.warning", "budget.exceeded"]
    warning, exceeded = (e["data"] for e in events)
    assert (warning["threshold"], warning["reason"], warning["held"]) == (80, "reached", "8.000")
    assert (exceeded["threshold"], exceeded["held"], exceeded["cap"]) == (100, "10.000", "10.000")
    assert warning["key_id"] == key_id and warning["scope"] == "key"
    assert warning["job_id"].startswith("video_")
    assert all(e["id"].startswith("evt_") for e in events)
    await _settled(rt, account)
    await wk.webhooks.fan_out_once()  # nothing new: each threshold once per period
    assert len(receiver.events("/budgets")) == 2


async def test_a_first_refusal_is_the_100_percent_event_when_no_job_reached_it(
    client: httpx.AsyncClient, rt: Runtime, receiver: Receiver
) -> None:
    account, _key_id, key = await _account(client)
    endpoint = await client.post(
        f"/v1/admin/accounts/{account}/webhooks", json={"url": f"{receiver.url}/b"}
    )
    await client.put(f"/v1/admin/accounts/{account}/budgets/day", json={"cap": "3"})
    assert (await client.post("/v1/videos", headers=_as(key), json=JOB)).status_code == 202
    assert (await client.post("/v1/videos", headers=_as(key), json=JOB)).status_code == 402
    wk = Worker.from_runtime(rt, concurrency=1, lease_seconds=10)
    assert wk.webhooks is not None
    await wk.webhooks.fan_out_once()
    await wk.webhooks.send_due_once(10)
    await wait_until(lambda: len(receiver.accepted("/b")) >= 2, what="queued + budget event")
    await _settled(rt, account)
    secret = endpoint.json()["secret"]
    events = [r.verify(secret) for r in receiver.accepted("/b")]
    budget = [e for e in events if e["type"].startswith("budget.")]
    # 2 of 3 credits is 66 %: no warning; the refusal is the 100 % event
    assert [(e["type"], e["data"]["reason"], e["data"]["price"]) for e in budget] == [
        ("budget.exceeded", "refused", "2.000")
    ]
    assert budget[0]["data"]["scope"] == "account" and budget[0]["data"]["held"] == "2.000"
    assert budget[0]["data"]["job_id"] is None  # the refused job was never written


async def test_bad_budget_requests_get_clear_errors(client: httpx.AsyncClient) -> None:
    account, key_id, _key = await _account(client)
    week = await client.put(f"/v1/admin/accounts/{account}/budgets/week", json={"cap": 5})
    assert week.status_code == 400
    assert week.json()["error"]["param"] == "period"
    assert week.json()["error"]["allowed"] == ["day", "month"]
    negative = await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": "-1"})
    assert negative.status_code == 400 and negative.json()["error"]["param"] == "cap"
    float_cap = await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": 1.5})
    assert float_cap.status_code == 400 and float_cap.json()["error"]["param"] == "cap"
    assert "string" in float_cap.json()["error"]["message"]
    whole = await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": 3.0})
    assert whole.status_code == 200 and whole.json()["cap_millicredits"] == 3_000
    boolean = await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": True})
    assert boolean.status_code == 400
    unknown = await client.put("/v1/admin/keys/key_nope/budgets/day", json={"cap": 5})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "key_id"
    nothing = await client.delete(f"/v1/admin/accounts/{account}/budgets/day")
    assert nothing.status_code == 404
    no_account = await client.put("/v1/admin/accounts/acct_nope/budgets/day", json={"cap": 5})
    assert no_account.status_code == 404


def test_periods_are_utc_days_and_months() -> None:
    ms = int(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)
    assert period_key("day", ms) == "day:2026-12-31"
    assert period_key("month", ms) == "month:2026-12"
    start, end = period_bounds("month", ms)
    assert datetime.fromtimestamp(start / 1000, UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    assert datetime.fromtimestamp(end / 1000, UTC) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_bounds("day", ms)[1] == ms + 1000
    assert [level(n, 10) for n in (0, 7, 8, 9, 10, 11)] == [0, 0, 80, 80, 100, 100]
    assert level(0, 0) == 100


def test_budgets_from_the_command_line(sqlite_url: str, tmp_path: Path) -> None:
    env = {"REELGATE_DATABASE_URL": sqlite_url, "REELGATE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.stdout

    account = json.loads(run("accounts", "create", "cli budgets", "--json"))["id"]
    made: dict[str, Any] = json.loads(
        run("budgets", "set", account, "12.5", "--period", "month", "--json")
    )[0]
    assert (made["cap"], made["cap_money"]["amount"], made["scope"]) == (
        "12.500",
        "0.125",
        "account",
    )
    listed = json.loads(run("budgets", "list", account, "--json"))
    assert [(b["period"], b["cap_millicredits"]) for b in listed] == [("month", 12_500)]
    assert "month" in run("budgets", "list", account)
    assert "invalid_period" in run("budgets", "set", account, "5", "--period", "week", code=1)
    run("budgets", "remove", account, "--period", "month")
    assert json.loads(run("budgets", "list", account, "--json")) == []


async def test_a_refusal_does_not_use_up_the_idempotency_key(client: httpx.AsyncClient) -> None:
    _account_id, key_id, key = await _account(client)
    await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": "1"})
    headers = {**_as(key), "Idempotency-Key": "budget-retry-1"}
    refused = await client.post("/v1/videos", headers=headers, json=JOB)
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["remaining_millicredits"] == 1_000
    # the operator raises the cap: the same request with the same key now goes through
    await client.put(f"/v1/admin/keys/{key_id}/budgets/day", json={"cap": "2"})
    accepted = await client.post("/v1/videos", headers=headers, json=JOB)
    assert accepted.status_code == 202, accepted.text
    replayed = await client.post("/v1/videos", headers=headers, json=JOB)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == accepted.json()["id"]
    mine = (await client.get("/v1/budgets", headers=_as(key))).json()["data"][0]
    assert mine["held_millicredits"] == JOB_PRICE  # one job, not two


async def test_a_hold_settled_while_a_budget_is_being_set_is_counted_once(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    """The settle waits for the account's row that setting a budget holds while it counts
    the holds (migration 0018's trigger takes it first): the capture lands after the
    count, on the row the count wrote, never lost and never a deadlock."""
    account, key_id, key = await _account(client)
    job = (await client.post("/v1/videos", headers=_as(key), json=JOB)).json()
    async with rt.db.connect() as conn:
        hold_id = await conn.scalar(sa.select(holds.c.id).where(holds.c.job_id == job["id"]))
    settled = asyncio.Event()

    async def capture() -> None:
        async with rt.db.begin() as conn:
            assert await capture_hold(conn, hold_id, 1_500)
        settled.set()

    async with rt.db.begin() as conn:
        await set_budget(conn, account, key_id, "day", 10_000, now_ms())
        task = asyncio.create_task(capture())
        await asyncio.sleep(0.5)
        assert not settled.is_set()  # waits for the budget's transaction
    await asyncio.wait_for(task, 10)
    mine = (await client.get("/v1/budgets", headers=_as(key))).json()["data"][0]
    assert (mine["spent_millicredits"], mine["held_millicredits"]) == (1_500, 0)
    await assert_books_balance(rt, account)
