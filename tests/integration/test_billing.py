"""Credits are exact: holds at submit, capture on completion, release otherwise,
an immutable ledger that always sums to the balance — on both databases."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest
import sqlalchemy as sa

from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, create_account, create_key
from reelgate.store.ledger import capture_hold, get_balance, grant, place_hold, release_hold
from reelgate.store.schema import accounts, holds, ledger
from tests.conftest import wait_for_status
from tests.scripted import ScriptedProvider

LOCAL_PRICE = 1000  # millicredits per second (catalog default for `local`)


async def assert_books_balance(rt: Runtime, account_id: str) -> None:
    """The invariants: ledger sums to balance and held; held = open holds; nothing negative."""
    async with rt.db.connect() as conn:
        bal, held = (
            await conn.execute(
                sa.select(accounts.c.balance, accounts.c.held).where(accounts.c.id == account_id)
            )
        ).one()
        led_bal, led_held = (
            await conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(ledger.c.balance_delta), 0),
                    sa.func.coalesce(sa.func.sum(ledger.c.held_delta), 0),
                ).where(ledger.c.account_id == account_id)
            )
        ).one()
        open_holds = await conn.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(holds.c.amount), 0)).where(
                holds.c.account_id == account_id, holds.c.status == "open"
            )
        )
    assert bal >= 0 and held >= 0
    assert (int(led_bal), int(led_held)) == (bal, held)
    assert int(open_holds) == held


async def _new_account(rt: Runtime, credits_milli: int) -> tuple[str, str]:
    async with rt.db.begin() as conn:
        account = await create_account(conn, "billing test")
        key = await create_key(conn, account)
        if credits_milli:
            await grant(conn, account, credits_milli)
    return account, key


async def test_completed_job_captures_seconds_times_price_and_releases_the_rest(
    client: httpx.AsyncClient, worker: Worker, rt: Runtime
) -> None:
    account, key = await _new_account(rt, 50_000)
    headers = {"Authorization": f"Bearer {key}"}
    resp = await client.post(
        "/v1/videos",
        headers=headers,
        json={"model": "local", "prompt": "bill me", "duration_seconds": 2, "resolution": "360p"},
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["cost"] is None and resp.json()["units_consumed"] is None
    balance = (await client.get("/v1/balance", headers=headers)).json()
    assert balance["millicredits"] == {"balance": 50_000, "held": 2_000, "available": 48_000}
    client.headers.update(headers)
    final = (await wait_for_status(client, resp.json()["id"], {"completed", "failed"}))[-1]
    assert final["status"] == "completed"
    assert final["units_consumed"] == 2
    assert final["cost"] == {
        "credits": "2.000",
        "millicredits": 2 * LOCAL_PRICE,
        "money": {"amount": "0.02", "currency": "USD"},
    }
    balance = (await client.get("/v1/balance")).json()
    assert balance["millicredits"] == {"balance": 48_000, "held": 0, "available": 48_000}
    assert balance["money"] == {
        "currency": "USD",
        "balance": "0.48",
        "held": "0.00",
        "available": "0.48",
    }
    assert balance["balance"] == "48.000"
    await assert_books_balance(rt, account)


async def test_not_enough_credits_is_402_with_the_numbers(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _account, key = await _new_account(rt, 3_500)
    resp = await client.post(
        "/v1/videos",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "local", "prompt": "too long", "duration_seconds": 4},
    )
    assert resp.status_code == 402
    err = resp.json()["error"]
    assert err["code"] == "insufficient_credits"
    assert (err["available"], err["hold_needed"], err["shortfall"]) == ("3.500", "4.000", "0.500")
    jobs = (await client.get("/v1/videos", headers={"Authorization": f"Bearer {key}"})).json()
    assert jobs["data"] == []


async def test_hold_covers_the_most_expensive_model_of_the_chain(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    local = rt.catalog.get("local")
    pricey = dataclasses.replace(local, id="local-pricey", price_per_second=7_000)
    rt.catalog.replace([*rt.catalog, pricey])
    _account, key = await _new_account(rt, 100_000)
    h = {"Authorization": f"Bearer {key}"}
    resp = await client.post(
        "/v1/videos",
        headers=h,
        json={
            "model": "local",
            "prompt": "chain",
            "duration_seconds": 3,
            "fallback": ["local-pricey"],
        },
    )
    assert resp.status_code == 202
    assert (await client.get("/v1/balance", headers=h)).json()["millicredits"]["held"] == 21_000


async def test_canceled_job_releases_its_whole_hold(client: httpx.AsyncClient, rt: Runtime) -> None:
    account, key = await _new_account(rt, 10_000)
    h = {"Authorization": f"Bearer {key}"}
    job = (
        await client.post(
            "/v1/videos",
            headers=h,
            json={"model": "local", "prompt": "never mind", "duration_seconds": 4},
        )
    ).json()
    canceled = (await client.post(f"/v1/videos/{job['id']}/cancel", headers=h)).json()
    assert canceled["status"] == "canceled"
    assert canceled["cost"] == {
        "credits": "0.000",
        "millicredits": 0,
        "money": {"amount": "0.00", "currency": "USD"},
    }
    assert (await client.get("/v1/balance", headers=h)).json()["millicredits"] == {
        "balance": 10_000,
        "held": 0,
        "available": 10_000,
    }
    await assert_books_balance(rt, account)


async def test_concurrent_submits_admit_exactly_as_many_as_the_balance_covers(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    account, key = await _new_account(rt, 5 * 2_000 + 1_999)  # covers exactly 5 two-second jobs
    h = {"Authorization": f"Bearer {key}"}
    body = {"model": "local", "prompt": "race", "duration_seconds": 2, "resolution": "360p"}
    answers = await asyncio.gather(
        *[client.post("/v1/videos", headers=h, json=body) for _ in range(16)]
    )
    codes = sorted(r.status_code for r in answers)
    assert codes.count(202) == 5
    assert codes.count(402) == 11
    await assert_books_balance(rt, account)


async def test_a_hold_resolves_exactly_once_even_when_two_workers_race(rt: Runtime) -> None:
    account, _key = await _new_account(rt, 10_000)
    async with rt.db.begin() as conn:
        hold_id = await place_hold(conn, account, "video_race", 4_000)

    async def settle(capture: bool) -> bool:
        async with rt.db.begin() as conn:
            if capture:
                return await capture_hold(conn, hold_id, 3_000)
            return await release_hold(conn, hold_id)

    results = await asyncio.gather(settle(True), settle(False), settle(True), settle(False))
    assert results.count(True) == 1
    async with rt.db.connect() as conn:
        bal = await get_balance(conn, account)
    assert bal.held == 0
    assert bal.balance in (7_000, 10_000)
    await assert_books_balance(rt, account)


async def test_usage_log_and_summary_show_what_each_job_cost(
    client: httpx.AsyncClient, worker: Worker, rt: Runtime, scripted: ScriptedProvider
) -> None:
    ids = []
    for seconds in (1, 2):
        r = await client.post(
            "/v1/videos",
            json={
                "model": "local",
                "prompt": f"u{seconds}",
                "duration_seconds": seconds,
                "resolution": "360p",
            },
        )
        ids.append(r.json()["id"])
    for job_id in ids:
        await wait_for_status(client, job_id, {"completed"})
    to_cancel = (
        await client.post("/v1/videos", json={"model": "s-primary", "prompt": "never ends"})
    ).json()
    await client.post(f"/v1/videos/{to_cancel['id']}/cancel")
    await wait_for_status(client, to_cancel["id"], {"canceled"})
    recent = (await client.get("/v1/usage/recent")).json()["data"]
    assert [r["status"] for r in recent] == ["canceled", "completed", "completed"]
    assert [r["seconds"] for r in recent] == [0, 2, 1]
    assert [r["cost"] for r in recent] == ["0.000", "2.000", "1.000"]
    assert all(r["latency_seconds"] is not None for r in recent)
    completed_only = (
        await client.get("/v1/usage/recent", params={"status": "completed", "limit": 1})
    ).json()
    assert len(completed_only["data"]) == 1 and completed_only["has_more"] is True
    from datetime import UTC, datetime

    today = datetime.now(UTC).date().isoformat()
    summary = (await client.get("/v1/usage/summary", params={"start": today, "end": today})).json()
    assert summary["data"] == [
        {
            "date": today,
            "model": "local",
            "jobs": 2,
            "seconds": 3,
            "cost": "3.000",
            "cost_millicredits": 3000,
            "cost_money": {"amount": "0.03", "currency": "USD"},  # 1 credit = 1 US cent
            "route": "local",
            # the local renderer costs nothing known upstream: no job is costed
            "upstream_cost_millicredits": 0,
            "upstream_cost_money": {"amount": "0.00", "currency": "USD"},
            "costed_jobs": 0,
            "margin_millicredits": 0,
            "margin_money": {"amount": "0.00", "currency": "USD"},
        }
    ]
    assert summary["total_cost"] == "3.000"
    assert summary["total_money"] == {"amount": "0.03", "currency": "USD"}
    await assert_books_balance(rt, DEV_ACCOUNT_ID)


@pytest.mark.parametrize("outcome", ["refuse", "never"])
async def test_failed_and_timed_out_jobs_are_not_billed(
    outcome: str,
    client: httpx.AsyncClient,
    worker: Worker,
    rt: Runtime,
    scripted: ScriptedProvider,
) -> None:
    spec = dataclasses.replace(rt.catalog.get("s-primary"), deadline_seconds=1)
    rt.catalog.replace([spec if m.id == spec.id else m for m in rt.catalog])
    before = (await client.get("/v1/balance")).json()["millicredits"]["balance"]
    r = await client.post(
        "/v1/videos",
        json={"model": "s-primary", "prompt": outcome, "duration_seconds": 1, "resolution": "360p"},
    )
    final = (await wait_for_status(client, r.json()["id"], {"failed", "completed"}))[-1]
    assert final["status"] == "failed"
    assert final["error"]["code"] == ("refused" if outcome == "refuse" else "timeout")
    assert final["cost"]["millicredits"] == 0
    after = (await client.get("/v1/balance")).json()["millicredits"]
    assert after == {"balance": before, "held": 0, "available": before}
    await assert_books_balance(rt, DEV_ACCOUNT_ID)
