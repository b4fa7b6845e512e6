"""The whole gateway (HTTP API, engine, storage) driving Sora through its emulator."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.sora import state_of
from reelgate.engine.worker import Worker
from reelgate.errors import TransientError
from reelgate.media.probe import probe_video
from reelgate.providers.http import HttpDeployment
from reelgate.providers.local import LocalProvider
from reelgate.providers.sora import SoraProvider
from reelgate.runtime import Runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, set_flags
from tests.conftest import LOOPBACK_DOWNLOADS, wait_for_status

KEY = "sk-emulated-gateway-key-0123456789"
SORA = "sora-2"
POLL_SECONDS = 0.1


@pytest.fixture(scope="session")
def sora_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sora-gateway-videos")


@pytest.fixture(scope="session")
def local_renders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work dir for the fallback renders of the whole session: the local provider
    keeps finished renders by spec, so the PostgreSQL run reuses the SQLite run's."""
    return tmp_path_factory.mktemp("sora-gateway-local")


@pytest.fixture
def emulator(sora_videos: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_key=KEY, job_seconds=0.5, video_dir=sora_videos)
    with run_emulator("sora", config) as server:
        yield server


@pytest.fixture
async def sora_rt(rt: Runtime, emulator: EmulatorServer, local_renders: Path) -> Runtime:
    """The runtime with Sora on the emulator, polled quickly, and sora-2 on the dev
    account's allow-list (the model has limited availability)."""
    deployment = HttpDeployment(
        base_url=f"{emulator.url}/v1", api_key=KEY, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS
    )
    rt.providers.providers["sora"] = SoraProvider(deployment, api_style="compatible")
    await rt.providers.providers["local"].aclose()
    rt.providers.providers["local"] = LocalProvider(local_renders)
    rt.catalog.replace(
        [
            dataclasses.replace(spec, poll_interval_seconds=POLL_SECONDS, typical_seconds=1.0)
            if spec.id in (SORA, "local")
            else spec
            for spec in rt.catalog
        ]
    )
    async with rt.db.begin() as conn:
        await set_flags(conn, DEV_ACCOUNT_ID, allowed_models=[SORA])
    return rt


def _deadline(rt: Runtime, seconds: int) -> None:
    rt.catalog.replace(
        [
            dataclasses.replace(spec, deadline_seconds=seconds) if spec.id == SORA else spec
            for spec in rt.catalog
        ]
    )


async def _run(client: httpx.AsyncClient, prompt: str, **extra: Any) -> dict[str, Any]:
    body = {
        "model": SORA,
        "prompt": prompt,
        "duration_seconds": 4,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        **extra,
    }
    resp = await client.post("/v1/videos", json=body)
    assert resp.status_code == 202, resp.text
    seen = await wait_for_status(
        client, resp.json()["id"], {"completed", "failed", "canceled"}, timeout=30
    )
    return seen[-1]


async def _download(client: httpx.AsyncClient, url: str, path: Path) -> Path:
    resp = await client.get(url, follow_redirects=True)
    assert resp.status_code == 200, resp.text
    path.write_bytes(resp.content)
    return path


async def test_a_sora_video_completes_and_its_mirrored_copy_downloads(
    client: httpx.AsyncClient,
    worker: Worker,
    sora_rt: Runtime,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    job = await _run(client, "a lighthouse in a storm")

    assert job["status"] == "completed", job
    assert job["delivered_by"] == SORA
    result = job["result"]
    assert result["mirror_status"] == "stored"
    assert result["url"].startswith("http://testserver/files/")
    info = await asyncio.to_thread(
        probe_video, await _download(client, result["url"], tmp_path / "copy.mp4")
    )
    assert (info.width, info.height) == (1280, 720)
    assert info.duration_seconds == pytest.approx(4.0, abs=0.2)
    [received] = state_of(emulator.app).received
    assert received["fields"] == {
        "model": "sora-2",
        "prompt": "a lighthouse in a storm",
        "seconds": "4",
        "size": "1280x720",
    }


async def test_a_refusal_fails_the_job_without_trying_the_fallback(
    client: httpx.AsyncClient, worker: Worker, sora_rt: Runtime
) -> None:
    job = await _run(client, "a lighthouse [fault:refuse]", fallback=["local"])

    assert job["status"] == "failed"
    assert job["error"]["code"] == "refused"
    assert "The prompt was flagged" in job["error"]["message"]
    assert [a["model"] for a in job["attempts"]] == [SORA]
    local = sora_rt.providers.providers["local"]
    assert isinstance(local, LocalProvider)
    assert [t for t in local.created_tasks() if t["job_id"] == job["id"]] == []


async def test_quota_falls_back_to_local_which_delivers(
    client: httpx.AsyncClient, worker: Worker, sora_rt: Runtime
) -> None:
    job = await _run(client, "a lighthouse [fault:quota]", fallback=["local"])

    assert job["status"] == "completed", job
    assert job["delivered_by"] == "local"
    assert [(a["model"], a["outcome"]) for a in job["attempts"]] == [
        (SORA, "quota"),
        ("local", "completed"),
    ]
    assert job["attempts"][0]["error"]["upstream_status"] == 429


async def test_a_video_that_never_finishes_times_out_at_the_deadline(
    client: httpx.AsyncClient, worker: Worker, sora_rt: Runtime
) -> None:
    _deadline(sora_rt, 2)
    job = await _run(client, "a lighthouse [fault:never]")

    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"
    assert job["attempts"][0]["upstream_id"].startswith("video_")


async def test_our_mirrored_copy_outlives_the_expired_upstream_link(
    client: httpx.AsyncClient,
    worker: Worker,
    sora_rt: Runtime,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    job = await _run(client, "a lighthouse [fault:expire]")
    assert job["status"] == "completed", job
    assert job["result"]["mirror_status"] == "stored"

    video_id = job["attempts"][0]["upstream_id"]
    async with httpx.AsyncClient(
        base_url=f"{emulator.url}/v1", headers={"Authorization": f"Bearer {KEY}"}
    ) as upstream:
        dead = await upstream.get(f"/videos/{video_id}/content", params={"variant": "video"})
    assert dead.status_code == 404, "the upstream link expired after our one download"

    info = await asyncio.to_thread(
        probe_video, await _download(client, job["result"]["url"], tmp_path / "kept.mp4")
    )
    assert (info.width, info.height) == (1280, 720)


async def test_a_failed_video_is_polled_once_and_fails_the_job_unbilled(
    client: httpx.AsyncClient,
    worker: Worker,
    sora_rt: Runtime,
    emulator: EmulatorServer,
) -> None:
    before = (await client.get("/v1/balance")).json()["millicredits"]
    job = await _run(client, "a lighthouse [fault:fail]")

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "upstream_unavailable"
    assert [(a["model"], a["outcome"]) for a in job["attempts"]] == [(SORA, "transient")]
    assert job["cost"]["millicredits"] == 0
    assert (await client.get("/v1/balance")).json()["millicredits"] == before

    video_id = job["attempts"][0]["upstream_id"]
    video = state_of(emulator.app).videos[video_id]
    assert video.final_polls == 1, "the failed video was polled again after it failed"
    polls = video.polls
    await asyncio.sleep(5 * POLL_SECONDS)
    assert video.polls == polls

    with pytest.raises(TransientError) as failed:
        await sora_rt.providers.providers["sora"].status(video_id)
    assert failed.value.terminal
    assert failed.value.details["upstream_code"] == "internal_error"
