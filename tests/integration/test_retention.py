"""Retention with a moved clock: delivered videos past their keep time are deleted by
the sweeper, pinned ones are kept, an expired job keeps its row, bill and usage line
and says its video expired; the local renderer's renders and cache are swept too."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from reelgate.engine.retention import DAY_MS, Sweeper
from reelgate.engine.worker import Worker
from reelgate.providers.local import LocalProvider
from reelgate.runtime import Runtime
from reelgate.store.jobs import now_ms
from reelgate.store.schema import job_events
from tests.conftest import wait_for_status

JOB = {"model": "local", "duration_seconds": 1, "resolution": "360p"}


async def _delivered(client: httpx.AsyncClient, *prompts: str) -> list[str]:
    ids = []
    for prompt in prompts:
        answer = await client.post("/v1/videos", json={**JOB, "prompt": prompt})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    for job_id in ids:
        await wait_for_status(client, job_id, {"completed"})
    return ids


async def test_expired_videos_go_pinned_ones_stay_and_the_bill_remains(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker
) -> None:
    old, kept, other = await _delivered(client, "old", "kept", "other")
    pinned = await client.post(f"/v1/videos/{kept}/pin")
    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    assert pinned.json()["expires_at"] is None
    before = (await client.get(f"/v1/videos/{old}")).json()
    assert before["expires_at"] == before["completed_at"] + 30 * 86_400  # the default: 30 days
    balance = (await client.get("/v1/balance")).json()

    today = Sweeper(rt)
    assert await today.sweep_once() == 0  # nothing is old enough yet
    later = Sweeper(rt, clock=lambda: now_ms() + 31 * DAY_MS)
    assert await later.sweep_once() == 2
    assert await later.sweep_once() == 0  # each video goes once

    gone = (await client.get(f"/v1/videos/{old}")).json()
    assert gone["status"] == "completed"  # the job stays, with its bill
    assert gone["result"]["url"] is None and gone["result"]["expired"] is True
    assert gone["expires_at"] == gone["result"]["expired_at"]
    assert gone["cost"] == before["cost"] and gone["units_consumed"] == before["units_consumed"]
    content = await client.get(f"/v1/videos/{old}/content")
    assert content.status_code == 410 and content.json()["error"]["code"] == "video_expired"
    assert "pin" in content.json()["error"]["message"]
    assert (await client.post(f"/v1/videos/{old}/pin")).status_code == 410
    assert (await client.get("/v1/balance")).json() == balance  # no money moved
    usage = (await client.get("/v1/usage/recent")).json()["data"]
    assert {u["job_id"] for u in usage} >= {old, kept, other}
    async with rt.store.reading() as tx:
        old_job, kept_job = await tx.get_job(old), await tx.get_job(kept)
    assert old_job is not None and old_job.result is not None and old_job.result.key
    assert kept_job is not None and kept_job.result is not None and kept_job.result.key
    assert not await rt.storage.exists(old_job.result.key)  # the file is gone
    assert await rt.storage.exists(kept_job.result.key)
    async with rt.db.connect() as conn:
        types = (
            (
                await conn.execute(
                    sa.select(job_events.c.type)
                    .where(job_events.c.job_id == old)
                    .order_by(job_events.c.seq)
                )
            )
            .scalars()
            .all()
        )
    assert types[-1] == "video.expired"

    # the pinned one is still there; unpinned, it goes at the next sweep
    assert (await client.get(f"/v1/videos/{kept}/content")).status_code == 302
    unpinned = await client.post(f"/v1/videos/{kept}/unpin")
    assert unpinned.json()["pinned"] is False and unpinned.json()["expires_at"]
    assert await later.sweep_once() == 1
    assert (await client.get(f"/v1/videos/{kept}/content")).status_code == 410


async def test_retention_off_keeps_everything(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker
) -> None:
    (job,) = await _delivered(client, "forever")
    rt.settings = rt.settings.updated(retention_days=0)
    assert (await client.get(f"/v1/videos/{job}")).json()["expires_at"] is None
    assert await Sweeper(rt, clock=lambda: now_ms() + 3650 * DAY_MS).sweep_once() == 0
    assert (await client.get(f"/v1/videos/{job}/content")).status_code == 302


async def test_the_local_renderers_renders_and_cache_are_swept(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker
) -> None:
    await _delivered(client, "render me")
    provider = rt.providers.get("local")
    assert isinstance(provider, LocalProvider)
    root = provider._root
    assert list(root.glob("loc_*.mp4")) and list((root / "cache").glob("*.mp4"))
    assert Sweeper(rt).sweep_local() == 0  # younger than a day
    swept = Sweeper(rt, clock=lambda: now_ms() + 2 * DAY_MS).sweep_local()
    assert swept > 0
    assert not list(root.glob("loc_*")) and not list((root / "cache").glob("*.mp4"))


async def test_a_failed_delete_is_tried_again_and_an_expired_video_is_never_re_mirrored(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job_id,) = await _delivered(client, "storage down")
    storage = rt.storage
    real_delete = storage.delete

    async def broken(key: str) -> None:
        raise OSError("storage unavailable")

    monkeypatch.setattr(storage, "delete", broken)
    later = Sweeper(rt, clock=lambda: now_ms() + 31 * DAY_MS)
    assert await later.sweep_once() == 1  # expired (the job says so) ...
    async with rt.store.reading() as tx:
        job = await tx.get_job(job_id)
    assert job is not None and job.expired_at is not None and job.result is not None
    assert await storage.exists(job.result.key)  # ... but its file could not go yet
    # an expired video cannot be copied again nor pinned, whatever its file's state
    mirror = await client.post(f"/v1/videos/{job_id}/mirror")
    assert mirror.status_code == 410 and mirror.json()["error"]["code"] == "video_expired"

    monkeypatch.setattr(storage, "delete", real_delete)
    assert await later.purge_once() == 1  # the next sweep deletes it
    assert not await storage.exists(job.result.key)
    assert await later.purge_once() == 0
