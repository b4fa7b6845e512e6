"""The engine's state machine and its guarantees, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from reelgate.engine.commands import submit_job
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime
from reelgate.store.cooldowns import list_cooling
from reelgate.store.jobs import get_job, now_ms
from reelgate.store.schema import jobs
from tests.conftest import small_job, wait_for_status
from tests.scripted import ScriptedProvider


async def _run_until_final(
    client: httpx.AsyncClient, worker: Worker, body: dict[str, object], timeout: float = 30
) -> dict[str, object]:
    resp = await client.post(
        "/v1/videos", json={"duration_seconds": 1, "resolution": "360p", **body}
    )
    assert resp.status_code == 202, resp.text
    seen = await wait_for_status(
        client, resp.json()["id"], {"completed", "failed", "canceled"}, timeout=timeout
    )
    return seen[-1]


async def test_quota_falls_back_to_the_next_model_and_records_both_attempts(
    client: httpx.AsyncClient, worker: Worker, scripted: ScriptedProvider
) -> None:
    job = await _run_until_final(
        client, worker, {"model": "s-primary", "prompt": "quota please", "fallback": ["s-backup"]}
    )
    assert job["status"] == "completed", (job["error"], job["attempts"])
    assert job["delivered_by"] == "s-backup"
    attempts = job["attempts"]
    assert isinstance(attempts, list)
    assert [(a["model"], a["outcome"]) for a in attempts] == [
        ("s-primary", "quota"),
        ("s-backup", "completed"),
    ]
    assert attempts[0]["error"]["upstream_status"] == 429


async def test_quota_cools_the_deployment_down_for_every_worker(
    client: httpx.AsyncClient, worker: Worker, scripted: ScriptedProvider, rt: Runtime
) -> None:
    first = await _run_until_final(
        client, worker, {"model": "s-primary", "prompt": "quota please", "fallback": ["s-backup"]}
    )
    assert first["delivered_by"] == "s-backup"
    until = (await list_cooling(rt.db, now_ms())).get("scripted:scripted:s-primary")
    assert until is not None and until - now_ms() > 20_000  # Retry-After: 30
    calls = scripted.create_calls
    second = await _run_until_final(
        client, worker, {"model": "s-primary", "prompt": "fine now", "fallback": ["s-backup"]}
    )
    assert second["delivered_by"] == "s-backup"
    assert scripted.create_calls == calls + 1, "the cooling model must not be asked at all"
    assert second["attempts"][0]["outcome"] == "quota"
    assert second["attempts"][0]["error"]["code"] == "cooldown"
    alone = await _run_until_final(client, worker, {"model": "s-primary", "prompt": "solo"})
    assert alone["status"] == "failed"
    assert alone["error"]["code"] == "quota"
    assert "fallback" in alone["error"]["message"]


async def test_an_upstream_job_that_failed_is_not_polled_again_but_falls_back(
    client: httpx.AsyncClient, worker: Worker, scripted: ScriptedProvider
) -> None:
    job = await _run_until_final(
        client, worker, {"model": "s-primary", "prompt": "jobfails", "fallback": ["s-backup"]}
    )
    assert [(a["model"], a["outcome"]) for a in job["attempts"]] == [
        ("s-primary", "transient"),
        ("s-backup", "transient"),
    ]
    assert job["status"] == "failed"
    assert all(n == 1 for n in scripted.polls.values()), scripted.polls


async def test_refusal_fails_at_once_without_fallback(
    client: httpx.AsyncClient, worker: Worker, scripted: ScriptedProvider
) -> None:
    job = await _run_until_final(
        client, worker, {"model": "s-primary", "prompt": "refuse this", "fallback": ["s-backup"]}
    )
    assert job["status"] == "failed"
    assert job["error"]["code"] == "refused"
    assert "Reword" in job["error"]["message"]
    assert [a["model"] for a in job["attempts"]] == ["s-primary"]
    assert scripted.creates == []


async def test_transient_create_errors_are_retried_with_the_same_idempotency_key(
    client: httpx.AsyncClient,
    rt: Runtime,
    scripted: ScriptedProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("reelgate.engine.policy.backoff_seconds", lambda *a, **k: 0.01)
    wk = Worker.from_runtime(rt, concurrency=2)
    task = asyncio.create_task(wk.run())
    try:
        job = await _run_until_final(client, wk, {"model": "s-primary", "prompt": "flaky"})
    finally:
        wk.stop()
        await task
    assert job["status"] == "completed"
    assert scripted.create_calls == 3
    assert len(scripted.creates) == 1
    assert job["attempts"][0]["outcome"] == "completed"


async def test_a_job_past_its_deadline_fails_with_timeout_and_is_canceled_upstream(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker, scripted: ScriptedProvider
) -> None:
    job = await submit_job(
        rt,
        small_job("never finishes", chain=("s-primary",), deadline_seconds=1),
    )
    final = (await wait_for_status(client, job.id, {"completed", "failed"}, timeout=20))[-1]
    assert final["status"] == "failed"
    assert final["error"]["code"] == "timeout"
    assert scripted.canceled == ["up_0"]


async def test_cancel_of_a_running_job_cancels_upstream(
    client: httpx.AsyncClient, worker: Worker, scripted: ScriptedProvider
) -> None:
    resp = await client.post(
        "/v1/videos",
        json={
            "model": "s-primary",
            "prompt": "never ends",
            "duration_seconds": 1,
            "resolution": "360p",
        },
    )
    job_id = resp.json()["id"]
    await wait_for_status(client, job_id, {"in_progress"})
    while not scripted.polls:
        await asyncio.sleep(0.05)
    await client.post(f"/v1/videos/{job_id}/cancel")
    final = (await wait_for_status(client, job_id, {"canceled"}))[-1]
    assert final["attempts"][-1]["outcome"] == "canceled"
    assert scripted.canceled == ["up_0"]


async def test_a_result_that_is_not_a_video_completes_with_mirror_failed_and_can_be_retried(
    client: httpx.AsyncClient,
    rt: Runtime,
    scripted: ScriptedProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("reelgate.engine.planner.backoff_seconds", lambda *a, **k: 0.01)
    wk = Worker.from_runtime(rt, concurrency=2)
    task = asyncio.create_task(wk.run())
    try:
        job = await _run_until_final(client, wk, {"model": "s-primary", "prompt": "notavideo"})
        assert job["status"] == "completed"
        result = job["result"]
        assert result["mirror_status"] == "failed"
        assert "not a" in result["mirror_error"].lower() or "video" in result["mirror_error"]
        # never the upstream's own URL: reelgate's signed content route, which streams it
        assert result["url"].startswith(f"http://testserver/v1/videos/{job['id']}/stream?")
        # the upstream now serves a real video: the retry stores it
        scripted._prompts["up_0"] = "fixed"
        resp = await client.post(f"/v1/videos/{job['id']}/mirror")
        assert resp.status_code == 202
        for _ in range(200):
            body = (await client.get(f"/v1/videos/{job['id']}")).json()
            if body["result"]["mirror_status"] == "stored":
                break
            await asyncio.sleep(0.05)
        assert body["status"] == "completed"
        assert body["result"]["mirror_status"] == "stored"
        assert body["result"]["url"].startswith("http://testserver/files/")
        again = await client.post(f"/v1/videos/{job['id']}/mirror")
        assert again.status_code == 409
    finally:
        wk.stop()
        await task


async def test_shutdown_releases_every_lease(rt: Runtime, scripted: ScriptedProvider) -> None:
    for i in range(3):
        await submit_job(
            rt,
            small_job(f"never {i}", chain=("s-primary",), deadline_seconds=600),
        )
    wk = Worker.from_runtime(rt, concurrency=4)
    task = asyncio.create_task(wk.run())
    while len(scripted.polls) < 3:
        await asyncio.sleep(0.05)
    wk.stop()
    await asyncio.wait_for(task, timeout=10)
    async with rt.db.connect() as conn:
        held = (
            await conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.lease_owner.is_not(None))
            )
        ).scalar_one()
    assert held == 0


@pytest.fixture
async def slow_poll_worker(rt: Runtime) -> AsyncIterator[Worker]:
    wk = Worker.from_runtime(rt, concurrency=2, idle_poll_seconds=30.0)
    task = asyncio.create_task(wk.run())
    await asyncio.sleep(0.2)
    yield wk
    wk.stop()
    await task


async def test_a_new_job_wakes_an_idle_worker_without_waiting_for_a_poll(
    rt: Runtime, client: httpx.AsyncClient, slow_poll_worker: Worker, scripted: ScriptedProvider
) -> None:
    started = now_ms()
    job = await _run_until_final(client, slow_poll_worker, {"model": "s-primary", "prompt": "hi"})
    assert job["status"] == "completed"
    assert now_ms() - started < 10_000


async def test_postgres_notify_wakes_a_worker_in_another_runtime(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    """Across processes only LISTEN/NOTIFY can cut a worker's 30 s idle sleep short."""
    if rt.db.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    from reelgate.runtime import build_runtime

    rt2 = await build_runtime(rt.settings, public_url="http://testserver")
    wk = Worker.from_runtime(rt2, concurrency=2, idle_poll_seconds=30.0)
    task = asyncio.create_task(wk.run())
    try:
        await asyncio.sleep(0.5)  # the worker is now asleep on an empty queue
        started = now_ms()
        resp = await client.post(
            "/v1/videos",
            json={
                "model": "local",
                "prompt": "wake up",
                "duration_seconds": 1,
                "resolution": "360p",
            },
        )
        job_id = resp.json()["id"]
        for _ in range(100):
            async with rt.db.connect() as conn:
                job = await get_job(conn, job_id)
            if job is not None and job.state != "queued":
                break
            await asyncio.sleep(0.05)
        assert job is not None and job.state != "queued"
        assert now_ms() - started < 5_000
    finally:
        wk.stop()
        await task
        await rt2.aclose()
