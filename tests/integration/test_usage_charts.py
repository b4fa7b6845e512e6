"""``GET /v1/usage/charts``: spend per day by model, jobs per day by outcome and time to
video per model, as server-drawn SVG and the numbers behind it, checked against hand
arithmetic on jobs placed on several days; and the SVG is well-formed, escaped XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import httpx

from reelgate.api.charts import nice_max, range_bars, stacked_bars
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime
from reelgate.store.schema import jobs
from tests.conftest import wait_for_status

JOB = {"model": "local", "duration_seconds": 1, "resolution": "360p"}
SVG = "{http://www.w3.org/2000/svg}"


def _titles(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # noqa: S314 (our own SVG, in a test)
    assert root.tag == f"{SVG}svg"
    return [t.text or "" for t in root.iter(f"{SVG}title")]


async def test_charts_add_up_to_the_jobs_by_day_model_and_outcome(
    client: httpx.AsyncClient, worker: Worker, rt: Runtime
) -> None:
    ids = []
    for i in range(4):
        ids.append((await client.post("/v1/videos", json={**JOB, "prompt": f"c{i}"})).json()["id"])
    for job_id in ids:
        await wait_for_status(client, job_id, {"completed"})
    now = datetime.now(UTC)
    today = now.date()
    two_days_ago = int((now - timedelta(days=2)).timestamp() * 1000)
    # place one job two days back, delivered by another model for 80 credits in 42 s,
    # and another 40 days back (outside 7 and 30 days, inside 90)
    async with rt.db.begin() as conn:
        await conn.execute(
            jobs.update()
            .where(jobs.c.id == ids[0])
            .values(
                created_at=two_days_ago,
                completed_at=two_days_ago + 42_000,
                delivered_by="veo-3-1-fast",
                cost=80_000,
            )
        )
        forty = int((now - timedelta(days=40)).timestamp() * 1000)
        await conn.execute(
            jobs.update()
            .where(jobs.c.id == ids[1])
            .values(created_at=forty, completed_at=forty + 5_000)
        )
    canceled = (await client.post("/v1/videos", json={**JOB, "prompt": "stop"})).json()["id"]
    await client.post(f"/v1/videos/{canceled}/cancel")
    await wait_for_status(client, canceled, {"canceled", "completed"})
    outcome = (await client.get(f"/v1/videos/{canceled}")).json()["status"]

    week = await client.get("/v1/usage/charts", params={"days": 7})
    assert week.status_code == 200, week.text
    body = week.json()
    assert (body["days"], body["end"]) == (7, today.isoformat())
    assert body["start"] == (today - timedelta(days=6)).isoformat()
    local_jobs = 2 + (outcome == "completed")
    by_model = {m["model"]: m["millicredits"] for m in body["spend"]["by_model"]}
    assert by_model == {"veo-3-1-fast": 80_000, "local": 1_000 * local_jobs}
    assert body["spend"]["total_money"] == {
        "amount": f"{(80_000 + 1_000 * local_jobs) / 100_000:.2f}",
        "currency": "USD",
    }
    counts = body["outcomes"]["counts"]
    assert counts["completed"] == 1 + local_jobs and counts["failed"] == 0
    assert counts["canceled"] == (outcome == "canceled")
    times = {m["model"]: m for m in body["time_to_video"]["models"]}
    assert times["veo-3-1-fast"]["jobs"] == 1
    assert times["veo-3-1-fast"]["p50_seconds"] == times["veo-3-1-fast"]["p95_seconds"] == 42.0
    assert times["local"]["jobs"] == local_jobs
    assert times["local"]["p50_seconds"] <= times["local"]["p95_seconds"] < 60

    spend_titles = _titles(body["spend"]["svg"])
    day = (today - timedelta(days=2)).isoformat()
    assert f"{day} · veo-3-1-fast: 80.000 credits (USD 0.80)" in spend_titles
    assert any(t.startswith(f"{today.isoformat()} · local: ") for t in spend_titles)
    assert any(
        "veo-3-1-fast: p50 42.0 s, p95 42.0 s over 1 videos" in t
        for t in _titles(body["time_to_video"]["svg"])
    )

    quarter = (await client.get("/v1/usage/charts", params={"days": 90})).json()
    assert {m["model"]: m["millicredits"] for m in quarter["spend"]["by_model"]}["local"] == (
        1_000 * (local_jobs + 1)
    )
    assert quarter["start"] == (today - timedelta(days=89)).isoformat()

    wrong = await client.get("/v1/usage/charts", params={"days": 14})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "days"
    assert wrong.json()["error"]["allowed"] == [7, 30, 90]


def test_the_svg_escapes_names_and_scales_to_round_ticks() -> None:
    days = [(date(2026, 12, 1) + timedelta(days=i)).isoformat() for i in range(3)]
    svg = stacked_bars(
        "Spend <by> model",
        days,
        [('<script>alert("x")</script>', [1.0, 0.0, 2.0]), ("a&b", [0.0, 3.0, 1.0])],
        lambda v: f"{v:g}",
    )
    titles = _titles(svg)  # parses: the names are escaped, not markup
    assert titles[0] == "Spend <by> model"
    assert '2026-12-01 · <script>alert("x")</script>: 1' in titles
    assert "2026-12-02 · a&b: 3" in titles
    assert "<script>" not in svg
    empty = stacked_bars("none", days, [], str)
    assert "nothing in this period" in empty
    assert (
        _titles(range_bars("t", [("m", 10.0, 30.0, 4)]))[1]
        == "m: p50 10.0 s, p95 30.0 s over 4 videos"
    )
    assert [nice_max(v) for v in (0, 0.3, 3, 7, 11, 180_000, 240_000)] == [
        1.0,
        0.5,
        5.0,
        10.0,
        20.0,
        200_000.0,
        250_000.0,
    ]
