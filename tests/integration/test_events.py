"""Live events: numbered, replayable from Last-Event-ID, kept alive, closed after the
final event, and delivered across processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from reelgate.api import routes_events
from reelgate.api.app import create_app
from reelgate.engine.commands import submit_job
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime, build_runtime
from tests.conftest import TEST_KEY, small_job, wait_for_status
from tests.scripted import ScriptedProvider


@pytest.fixture
async def live(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a real loopback socket, in this event loop (streams are not buffered)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(rt), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        timeout=30,
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as client:
        yield client
    server.should_exit = True
    await task


async def _events(
    client: httpx.AsyncClient,
    job_id: str,
    last: int | None = None,
    limit: float = 30,
    until_keepalive: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    headers = {"Last-Event-ID": str(last)} if last is not None else {}
    events: list[dict[str, Any]] = []
    comments: list[str] = []
    current: dict[str, Any] = {}
    async with (
        asyncio.timeout(limit),
        client.stream("GET", f"/v1/videos/{job_id}/events", headers=headers) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line.startswith(":"):
                comments.append(line)
                if until_keepalive and "keep-alive" in line:
                    break
            elif line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and current:
                events.append(current)
                current = {}
    return events, comments


async def test_events_stream_every_step_in_order_and_close_after_the_final_one(
    live: httpx.AsyncClient, worker: Worker
) -> None:
    resp = await live.post(
        "/v1/videos",
        json={"model": "local", "prompt": "stream me", "duration_seconds": 1, "resolution": "360p"},
    )
    job_id = resp.json()["id"]
    events, _ = await _events(live, job_id)
    seqs = [e["id"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    types = [e["event"] for e in events]
    assert types[0] == "video.queued" and "video.in_progress" in types
    assert types[-1] == "video.completed"
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100
    final = events[-1]["data"]["job"]
    assert final["status"] == "completed" and final["result"]["url"]

    replay, _ = await _events(live, job_id, last=2)
    assert [e["id"] for e in replay] == seqs[2:]


async def test_a_quiet_stream_sends_keep_alives(
    live: httpx.AsyncClient,
    worker: Worker,
    scripted: ScriptedProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routes_events, "_RECHECK_SECONDS", 0.05)
    monkeypatch.setattr(routes_events, "KEEPALIVE_SECONDS", 0.2)
    resp = await live.post(
        "/v1/videos",
        json={
            "model": "s-primary",
            "prompt": "never ends",
            "duration_seconds": 1,
            "resolution": "360p",
        },
    )
    job_id = resp.json()["id"]
    await wait_for_status(live, job_id, {"in_progress"})
    while not scripted.polls:
        await asyncio.sleep(0.05)
    _seen, comments = await _events(live, job_id, limit=10, until_keepalive=True)
    assert ": keep-alive" in comments
    await live.post(f"/v1/videos/{job_id}/cancel")
    events, _ = await _events(live, job_id, limit=20)
    assert events[-1]["event"] == "video.canceled"


async def test_bad_last_event_id_and_foreign_jobs_are_clear_errors(
    live: httpx.AsyncClient,
) -> None:
    resp = await live.post("/v1/videos", json={"model": "local", "prompt": "x"})
    bad = await live.get(f"/v1/videos/{resp.json()['id']}/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 400
    missing = await live.get("/v1/videos/video_nope/events")
    assert missing.status_code == 404


async def test_events_written_by_another_process_wake_this_one(rt: Runtime) -> None:
    if rt.db.dialect.name != "postgresql":
        pytest.skip("cross-process delivery is LISTEN/NOTIFY on PostgreSQL")
    other = await build_runtime(rt.settings, public_url="http://testserver")
    try:
        job = await submit_job(other, small_job("elsewhere"))  # written by the other runtime
        waiter = rt.events.subscribe(job.id)
        await submit_job(other, small_job("warm-up"))
        worker = Worker.from_runtime(other, concurrency=2)
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(waiter.wait(), timeout=10)
        finally:
            worker.stop()
            await task
    finally:
        await other.aclose()
