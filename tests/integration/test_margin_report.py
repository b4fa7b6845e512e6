"""Revenue, upstream cost and margin on a run with every provider (each through its
emulator, and the local renderer), compared with arithmetic done by hand from the
public list prices (docs/models.md), not from the code's own tables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorServer
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID
from tests.conftest import wait_for_status
from tests.integration.conftest import MODELS, api_client, emulated_runtime

# (model, route, seconds) -> (charged, upstream cost), millicredits at a cent a credit:
#   charged = catalog price per second x seconds; upstream = the route's list price in
#   USD per second x seconds x 100,000 (xAI: its own cost ticks, 10^10 to the dollar)
BY_HAND = {
    # Veo 3.1 fast on Vertex: 20 credits/s; $0.15/s
    "veo-3-1-fast": (4 * 20_000, 4 * 15_000),
    # Sora 2: 50 credits/s; $0.10/s (OpenAI's last list price)
    "sora-2": (4 * 50_000, 4 * 10_000),
    # Wan 2.1 turbo, international: 10 credits/s; $0.036/s
    "wan-2-1": (5 * 10_000, 5 * 3_600),
    # Grok video at 720p: 12.5 credits/s; xAI's ticks: 4 s x 700,000,000 = $0.28
    "grok-video": (4 * 12_500, 28_000),
    # the media-video-from-text service: $1.50/s resold at $1.50/s
    "veo (Audio)": (4 * 150_000, 4 * 150_000),
    # LTX Video on fal: $0.008/s, resold at cost
    "ltx-video": (5 * 800, 5 * 800),
    # Kling 2.5 Turbo Pro on Replicate: $0.07/s, resold at cost
    "kling-2-5-turbo": (5 * 7_000, 5 * 7_000),
}


@pytest.fixture
async def ert(
    settings: Settings, emulators: dict[str, EmulatorServer], tmp_path: Path
) -> AsyncIterator[Runtime]:
    async with emulated_runtime(settings, emulators, local_work_dir=tmp_path / "renders") as rt:
        yield rt


async def test_the_margin_report_matches_hand_arithmetic_for_every_provider(ert: Runtime) -> None:
    async with api_client(ert) as client:
        wk = Worker.from_runtime(ert, concurrency=8, lease_seconds=10, idle_poll_seconds=0.2)
        running = asyncio.create_task(wk.run())
        try:
            made = {}
            for kind, body in sorted(MODELS.items()):
                answer = await client.post("/v1/videos", json={**body, "prompt": f"{kind}: dusk"})
                assert answer.status_code == 202, answer.text
                made[body["model"]] = answer.json()["id"]
            for model, job_id in made.items():
                job = (await wait_for_status(client, job_id, {"completed", "failed"}, 90))[-1]
                assert job["status"] == "completed", (model, job)
        finally:
            wk.stop()
            await asyncio.wait_for(running, 30)
        today = datetime.now(UTC).date().isoformat()
        summary = (
            await client.get("/v1/usage/summary", params={"start": today, "end": today})
        ).json()
        report = (
            await client.get("/v1/admin/usage/report", params={"start": today, "end": today})
        ).json()

    rows = {r["model"]: r for r in summary["data"]}
    assert set(rows) == set(BY_HAND) | {"local"}
    for model, (charged, upstream) in BY_HAND.items():
        row = rows[model]
        assert (row["cost_millicredits"], row["upstream_cost_millicredits"]) == (
            charged,
            upstream,
        ), model
        assert row["margin_millicredits"] == charged - upstream, model
        assert row["costed_jobs"] == row["jobs"] == 1, model
    # the local renderer costs nothing upstream that anyone knows of: no margin claimed
    assert (rows["local"]["costed_jobs"], rows["local"]["margin_millicredits"]) == (0, 0)
    revenue = sum(c for c, _ in BY_HAND.values())
    cost = sum(u for _, u in BY_HAND.values())
    assert summary["total_upstream_cost_money"]["amount"] == f"{cost / 100_000:.2f}"
    assert summary["total_margin_money"]["amount"] == f"{(revenue - cost) / 100_000:.2f}"
    assert summary["losses"] == []
    # the operator's report: the same rows, with the account
    mine = [r for r in report["data"] if r["account_id"] == DEV_ACCOUNT_ID]
    assert sorted((r["model"], r["margin_millicredits"]) for r in mine) == sorted(
        (r["model"], r["margin_millicredits"]) for r in summary["data"]
    )
    print(  # the figures for the closing note (pytest -s)
        "\n".join(
            f"{m}: route {rows[m]['route']}, charged {c}, upstream {u}, margin {c - u}"
            for m, (c, u) in BY_HAND.items()
        )
    )


async def test_customers_see_what_they_paid_and_the_operator_sees_the_margin(
    ert: Runtime,
) -> None:
    async with api_client(ert) as client:
        made = await client.post(
            f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/keys", json={"scopes": ["jobs:read"]}
        )
        reader = {"Authorization": f"Bearer {made.json()['key']}"}
        wk = Worker.from_runtime(ert, concurrency=2, lease_seconds=10, idle_poll_seconds=0.2)
        running = asyncio.create_task(wk.run())
        try:
            body = {**MODELS["grok"], "prompt": "grok: dusk"}
            job_id = (await client.post("/v1/videos", json=body)).json()["id"]
            await wait_for_status(client, job_id, {"completed"}, 60)
        finally:
            wk.stop()
            await asyncio.wait_for(running, 30)
        today = datetime.now(UTC).date().isoformat()
        span = {"start": today, "end": today}
        customer = (await client.get("/v1/usage/summary", params=span, headers=reader)).json()
        operator = (await client.get("/v1/usage/summary", params=span)).json()
        one = (
            await client.get("/v1/admin/usage/report", params={**span, "account_id": "acct_x"})
        ).json()
    assert [(r["model"], r["cost_millicredits"]) for r in customer["data"]] == [
        ("grok-video", 50_000)
    ]
    assert set(customer["data"][0]) == {
        "date",
        "model",
        "jobs",
        "seconds",
        "cost",
        "cost_millicredits",
        "cost_money",
    }
    assert "losses" not in customer and "total_margin_money" not in customer
    assert customer["total_money"] == operator["total_money"]
    assert operator["data"][0]["margin_millicredits"] == 22_000
    assert (one["data"], one["losses"]) == ([], [])  # another account: nothing of this one
