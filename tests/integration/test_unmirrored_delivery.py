"""A paid video is always reachable, even while its copy into storage fails.

For every provider kind (through its emulator) and the local renderer: storage
is broken (its ``videos/`` folder is a plain file), so the mirror fails. The
job still completes and is billed once; ``result.url`` is reelgate's own signed
content route, which streams the real video from the upstream with the
provider's credentials server-side (Sora's content URL needs the key) and
works without an API key. Once storage is repaired, the automatic background
retry stores the copy and ``result.url`` becomes the stored file's link.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorServer
from reelgate.engine.worker import Worker
from reelgate.media.probe import probe_video
from reelgate.runtime import Runtime
from tests.conftest import wait_for_status
from tests.integration.conftest import MODELS, api_client, emulated_runtime


@pytest.fixture
async def mrt(
    settings: Settings, emulators: dict[str, EmulatorServer], tmp_path: Path
) -> AsyncIterator[Runtime]:
    async with emulated_runtime(
        settings,
        emulators,
        mirror_quick_retries=0,
        mirror_retry_base_seconds=0.5,
        local_work_dir=tmp_path / "renders",
    ) as rt:
        yield rt


def _break_storage(settings: Settings) -> Path:
    root = Path(urlsplit(settings.resolved_storage_url()).path)
    blocker = root / "videos"
    shutil.rmtree(blocker, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder: every copy into videos/ fails")
    return blocker


async def _stream(rt: Runtime, url: str) -> httpx.Response:
    """Fetch a result URL as a browser would: no API key."""
    from reelgate.api.app import create_app

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://testserver"
    ) as anonymous:
        return await anonymous.get(url.removeprefix("http://testserver"))


@pytest.mark.parametrize("kind", sorted(MODELS))
async def test_a_failed_mirror_still_delivers_the_video_and_retries_by_itself(
    kind: str, mrt: Runtime, settings: Settings, tmp_path: Path
) -> None:
    blocker = _break_storage(mrt.settings)
    async with api_client(mrt) as client:
        before = (await client.get("/v1/balance")).json()["millicredits"]["balance"]
        made = await client.post("/v1/videos", json={**MODELS[kind], "prompt": f"{kind}: a bay"})
        assert made.status_code == 202, made.text
        wk = Worker.from_runtime(mrt, concurrency=2, lease_seconds=10, idle_poll_seconds=0.2)
        running = asyncio.create_task(wk.run())
        try:
            seen = await wait_for_status(client, made.json()["id"], {"completed", "failed"}, 90)
            job = seen[-1]
            assert job["status"] == "completed", job
            result = job["result"]
            assert result["mirror_status"] == "failed"
            assert result["mirror_retry_at"] is not None
            url = result["url"]
            assert url.startswith(f"http://testserver/v1/videos/{job['id']}/stream?")
            assert job["cost"]["millicredits"] > 0
            after = (await client.get("/v1/balance")).json()["millicredits"]["balance"]
            assert before - after == job["cost"]["millicredits"]  # billed once

            streamed = await _stream(mrt, url)
            assert streamed.status_code == 200, streamed.text
            assert streamed.headers["content-type"] == "video/mp4"
            video = tmp_path / "streamed.mp4"
            video.write_bytes(streamed.content)
            assert probe_video(video).duration_seconds > 0.5
            assert (await _stream(mrt, url.replace("signature=", "signature=x"))).status_code == 403
            other_job = url.replace(job["id"], "video_00000000000000000000000000000000")
            assert (await _stream(mrt, other_job)).status_code == 403
            content = await client.get(f"/v1/videos/{job['id']}/content")
            assert content.status_code == 302
            # no copy, so no poster yet: said so, and the video is still there
            thumb = await client.get(f"/v1/videos/{job['id']}/content?variant=thumbnail")
            assert thumb.status_code == 409, thumb.text
            assert thumb.json()["error"]["code"] == "variant_not_available"
            assert content.headers["location"].startswith("http://testserver/v1/videos/")

            blocker.unlink()  # storage is back: the background retry stores the copy
            for _ in range(100):
                now = (await client.get(f"/v1/videos/{job['id']}")).json()
                if now["result"]["mirror_status"] == "stored":
                    break
                await asyncio.sleep(0.2)
            assert now["result"]["mirror_status"] == "stored", now["result"]
            assert now["result"]["url"].startswith("http://testserver/files/")
            assert now["result"]["thumbnail_url"]  # made with the retried copy
            assert now["cost"] == job["cost"]
            final = (await client.get("/v1/balance")).json()["millicredits"]["balance"]
            assert final == after  # the retried copy is not billed again
        finally:
            wk.stop()
            await asyncio.wait_for(running, 30)


async def test_a_delivered_video_cannot_be_canceled_while_its_copy_is_retried(
    mrt: Runtime, tmp_path: Path
) -> None:
    """It was completed and paid for: a cancel is a 409 and changes nothing; a delete
    works and stops the retries."""
    _break_storage(mrt.settings)
    async with api_client(mrt) as client:
        made = await client.post("/v1/videos", json={**MODELS["local"], "prompt": "a pier"})
        wk = Worker.from_runtime(mrt, concurrency=2, lease_seconds=10, idle_poll_seconds=0.2)
        running = asyncio.create_task(wk.run())
        try:
            job = (await wait_for_status(client, made.json()["id"], {"completed", "failed"}))[-1]
            assert job["result"]["mirror_status"] == "failed"
            cancel = await client.post(f"/v1/videos/{job['id']}/cancel")
            assert cancel.status_code == 409
            assert cancel.json()["error"]["code"] == "not_cancelable"
            await asyncio.sleep(1.0)
            again = (await client.get(f"/v1/videos/{job['id']}")).json()
            assert again["status"] == "completed" and again["cost"] == job["cost"]
            assert (await _stream(mrt, again["result"]["url"])).status_code == 200
            assert (await client.delete(f"/v1/videos/{job['id']}")).status_code == 200
            assert (await client.get(f"/v1/videos/{job['id']}")).status_code == 404
        finally:
            wk.stop()
            await asyncio.wait_for(running, 30)
