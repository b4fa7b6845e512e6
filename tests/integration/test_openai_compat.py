"""The official `openai` package drives reelgate unchanged: base URL and key point at
reelgate, nothing else changes. For `local` and for an emulated provider (sora-2)."""

from __future__ import annotations

import asyncio
import io
import socket
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from openai import AsyncOpenAI, BadRequestError, NotFoundError
from PIL import Image

from reelgate.api.app import create_app
from reelgate.emulators.grok import GrokEmulator
from reelgate.engine.worker import Worker
from reelgate.media.probe import probe_video
from reelgate.runtime import Runtime
from tests.conftest import TEST_KEY
from tests.integration.test_extend_remix import grok  # noqa: F401 (fixture)
from tests.integration.test_gateway_sora import (  # noqa: F401 (fixtures)
    emulator,
    local_renders,
    sora_rt,
    sora_videos,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Sora's retirement


@pytest.fixture
async def openai_client(rt: Runtime) -> AsyncIterator[AsyncOpenAI]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rt.public_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(rt), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    rt.storage = type(rt.storage).from_url(  # signed URLs must point at this server
        rt.storage.url, public_base_url=rt.public_url, signing_secret=rt.signing_secret
    )
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=TEST_KEY, max_retries=0)
    yield client
    await client.close()
    server.should_exit = True
    await task


async def test_the_openai_sdk_runs_the_whole_video_lifecycle_on_local(
    openai_client: AsyncOpenAI, worker: Worker, tmp_path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        video = await openai_client.videos.create(
            model="local", prompt="a red fox running through snow", seconds="2", size="640x360"
        )
        assert video.object == "video" and video.status == "queued"
        done = await openai_client.videos.create_and_poll(
            model="local",
            prompt="a second fox",
            seconds="1",
            size="640x360",
            poll_interval_ms=200,
        )
        assert done.status == "completed" and done.progress == 100
        assert (done.seconds, done.size) == ("1", "640x360")
        fetched = await openai_client.videos.retrieve(done.id)
        assert fetched.id == done.id
        content = await openai_client.videos.download_content(done.id)
        path = tmp_path / "fox.mp4"
        path.write_bytes(content.content)
        info = probe_video(path)
        assert (info.video_codec, info.width, info.height) == ("h264", 640, 360)
        page = await openai_client.videos.list(limit=10)
        assert {v.id for v in page.data} >= {video.id, done.id}
        deleted = await openai_client.videos.delete(done.id)
        assert deleted.deleted is True
        with pytest.raises(NotFoundError):
            await openai_client.videos.retrieve(done.id)


async def test_a_size_the_model_does_not_offer_is_a_clear_400(openai_client: AsyncOpenAI) -> None:
    with pytest.raises(BadRequestError) as info:
        await openai_client.videos.create(model="local", prompt="x", seconds="4", size="1792x1024")
    body = info.value.body
    assert isinstance(body, dict)
    assert body["param"] == "size" and "640x360" in body["allowed"]


async def test_image_to_video_with_input_reference(
    openai_client: AsyncOpenAI, worker: Worker
) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (640, 360), (200, 40, 40)).save(buf, format="PNG")
    done = await openai_client.videos.create_and_poll(
        model="local",
        prompt="animate",
        seconds="1",
        size="640x360",
        input_reference=("still.png", buf.getvalue(), "image/png"),
        poll_interval_ms=200,
    )
    assert done.status == "completed"


async def test_the_openai_sdk_against_the_sora_emulator(
    sora_rt: Runtime,  # noqa: F811 (the fixture)
    openai_client: AsyncOpenAI,
    worker: Worker,
) -> None:
    done = await openai_client.videos.create_and_poll(
        model="sora-2",
        prompt="a lighthouse at dawn",
        seconds="4",
        size="1280x720",
        poll_interval_ms=200,
    )
    assert done.status == "completed"
    content = await openai_client.videos.download_content(done.id)
    assert content.content[4:8] == b"ftyp"


async def test_the_openai_sdk_downloads_the_video_its_thumbnail_and_its_spritesheet(
    openai_client: AsyncOpenAI, worker: Worker, tmp_path: Path, rt: Runtime
) -> None:
    """``download_content(variant=...)`` unchanged: the MP4, a WebP poster and a JPEG
    sprite sheet whose size the job's ``result.spritesheet`` layout gives."""
    done = await openai_client.videos.create_and_poll(
        model="local", prompt="variants", seconds="3", size="640x360", poll_interval_ms=200
    )
    assert done.status == "completed"
    video = await openai_client.videos.download_content(done.id, variant="video")
    (tmp_path / "v.mp4").write_bytes(video.content)
    assert probe_video(tmp_path / "v.mp4").width == 640
    thumb = await openai_client.videos.download_content(done.id, variant="thumbnail")
    with Image.open(io.BytesIO(thumb.content)) as poster:
        assert (poster.format, poster.size) == ("WEBP", (640, 360))
    sheet = await openai_client.videos.download_content(done.id, variant="spritesheet")
    job = await openai_client.get(f"/videos/{done.id}", cast_to=dict)
    layout = job["result"]["spritesheet"]
    assert (layout["tiles"], layout["columns"], layout["rows"]) == (3, 3, 1)
    assert layout["interval_seconds"] == 1.0
    with Image.open(io.BytesIO(sheet.content)) as grid:
        assert grid.format == "JPEG"
        assert grid.size == (
            layout["columns"] * layout["tile_width"],
            layout["rows"] * layout["tile_height"],
        )
    assert job["result"]["thumbnail_url"] and job["result"]["spritesheet_url"]
    # deleting the video deletes its previews too
    stored = [rt.storage.exists(k) for k in _preview_keys(rt, done.id)]
    assert all(await asyncio.gather(*stored))
    await openai_client.videos.delete(done.id)
    assert not any(
        await asyncio.gather(*[rt.storage.exists(k) for k in _preview_keys(rt, done.id)])
    )


def _preview_keys(rt: Runtime, job_id: str) -> list[str]:
    from reelgate.store.accounts import DEV_ACCOUNT_ID

    base = f"previews/{DEV_ACCOUNT_ID}/{job_id}"
    return [f"{base}/poster.webp", f"{base}/sprite.jpg"]


async def test_the_openai_sdk_remixes_a_video(
    openai_client: AsyncOpenAI,
    worker: Worker,
    grok: GrokEmulator,  # noqa: F811 (the fixture)
) -> None:
    """``videos.remix(video_id, prompt=)`` unchanged: POST /videos/{id}/remix with a
    prompt, answered with a video whose ``remixed_from_video_id`` names the source (on
    xAI, whose edits make remixes); a model that cannot remix is a 400 naming those that
    can."""
    native = {"model": "grok-video", "prompt": "a fox", "duration_seconds": 2}
    source = await openai_client.post("/videos", body=native, cast_to=dict)
    done = await openai_client.videos.poll(source["id"], poll_interval_ms=100)
    assert done.status == "completed"
    remix = await openai_client.videos.remix(done.id, prompt="a wolf")
    assert remix.remixed_from_video_id == done.id and remix.status == "queued"
    finished = await openai_client.videos.poll(remix.id, poll_interval_ms=100)
    assert finished.status == "completed" and finished.prompt == "a wolf"
    assert grok.received[-1]["prompt"] == "a wolf" and "video" in grok.received[-1]

    local = await openai_client.videos.create_and_poll(
        model="local", prompt="a tram", seconds="1", size="640x360", poll_interval_ms=100
    )
    with pytest.raises(BadRequestError) as refused:
        await openai_client.videos.remix(local.id, prompt="a bus")
    assert refused.value.code == "remix_not_supported"
