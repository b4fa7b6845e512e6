"""The whole gateway (API, engine, storage) in front of the DashScope Wan emulator."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from reelgate.emulators.base import EmulatorConfig, EmulatorServer
from reelgate.emulators.wan import API_PREFIX, create_app
from reelgate.engine.worker import Worker
from reelgate.errors import TransientError
from reelgate.media.probe import probe_video
from reelgate.providers.base import UpstreamState
from reelgate.providers.http import HttpDeployment
from reelgate.providers.wan import WanProvider
from reelgate.runtime import Runtime
from reelgate.store.accounts import set_flags
from tests.conftest import DEV_ACCOUNT_ID, LOOPBACK_DOWNLOADS, wait_for_status

KEY = "sk-wan-gateway-0123456789abcdef"
MODEL = "wan-2-1"
POLL_SECONDS = 0.1


@pytest.fixture(scope="module")
def wan_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Starlette, str]]:
    config = EmulatorConfig(
        api_key=KEY, job_seconds=0.5, video_dir=tmp_path_factory.mktemp("wan-gateway-videos")
    )
    app = create_app(config)
    server = EmulatorServer(app)
    config.public_url = server.url
    server.start()
    try:
        yield app, f"{server.url}{API_PREFIX}"
    finally:
        server.stop()


def _with_wan(rt: Runtime, **changes: Any) -> None:
    """Quick polls for the Wan model (and any other change a test needs)."""
    rt.catalog.replace(
        dataclasses.replace(
            spec, poll_interval_seconds=POLL_SECONDS, typical_seconds=1.0, **changes
        )
        if spec.id == MODEL
        else spec
        for spec in rt.catalog
    )


@pytest.fixture
async def wan(rt: Runtime, wan_upstream: tuple[Starlette, str]) -> WanProvider:
    app, base_url = wan_upstream
    app.state.received.clear()
    provider = WanProvider(
        HttpDeployment(base_url=base_url, api_key=KEY, downloads=LOOPBACK_DOWNLOADS)
    )
    rt.providers.providers["wan"] = provider  # the runtime closes it with the registry
    _with_wan(rt)
    async with rt.db.begin() as conn:
        await set_flags(conn, DEV_ACCOUNT_ID, prc_opt_in=True)  # wan-2-1 needs the opt-in
    return provider


async def _run(
    client: httpx.AsyncClient, prompt: str, fallback: list[str] | None = None
) -> dict[str, Any]:
    resp = await client.post(
        "/v1/videos",
        json={
            "model": MODEL,
            "prompt": prompt,
            "duration_seconds": 5,
            "resolution": "480p",
            "aspect_ratio": "16:9",
            "fallback": fallback or [],
        },
    )
    assert resp.status_code == 202, resp.text
    seen = await wait_for_status(client, resp.json()["id"], {"completed", "failed", "canceled"})
    return seen[-1]


def _attempts(job: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["model"], a["outcome"]) for a in job["attempts"]]


async def test_a_wan_job_completes_and_its_mirrored_copy_downloads(
    client: httpx.AsyncClient,
    worker: Worker,
    wan: WanProvider,
    wan_upstream: tuple[Starlette, str],
    tmp_path: Path,
) -> None:
    job = await _run(client, "a lighthouse in a storm")
    assert job["status"] == "completed", job
    assert job["delivered_by"] == MODEL
    assert _attempts(job) == [(MODEL, "completed")]
    result = job["result"]
    assert result["mirror_status"] == "stored"
    assert (result["width"], result["height"]) == (832, 480)

    download = await client.get(result["url"])
    assert download.status_code == 200
    path = tmp_path / "wan.mp4"
    path.write_bytes(download.content)
    info = probe_video(path)
    assert (info.width, info.height) == (832, 480)
    assert abs(info.duration_seconds - 5.0) <= 0.2

    [create] = wan_upstream[0].state.received
    assert create["body"]["parameters"]["size"] == "832*480"
    assert create["body"]["model"] == "wan2.1-t2v-turbo"


async def test_a_refusal_fails_at_once_without_trying_the_fallback(
    client: httpx.AsyncClient, worker: Worker, wan: WanProvider
) -> None:
    job = await _run(client, "something forbidden [fault:refuse]", fallback=["local"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "refused"
    assert "prompt was flagged" in job["error"]["message"]
    assert _attempts(job) == [(MODEL, "refused")]


async def test_throttling_falls_back_to_local_which_delivers(
    client: httpx.AsyncClient, worker: Worker, wan: WanProvider
) -> None:
    job = await _run(client, "a busy afternoon [fault:quota]", fallback=["local"])
    assert job["status"] == "completed", job
    assert job["delivered_by"] == "local"
    assert _attempts(job) == [(MODEL, "quota"), ("local", "completed")]
    assert job["attempts"][0]["error"]["upstream_status"] == 429


async def test_a_task_that_never_finishes_times_out(
    client: httpx.AsyncClient, worker: Worker, wan: WanProvider, rt: Runtime
) -> None:
    _with_wan(rt, deadline_seconds=2)
    job = await _run(client, "an endless corridor [fault:never]")
    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"


async def test_our_copy_still_downloads_after_the_upstream_link_expired(
    client: httpx.AsyncClient, worker: Worker, wan: WanProvider
) -> None:
    job = await _run(client, "a sandcastle at high tide [fault:expire]")
    assert job["status"] == "completed", job
    assert job["result"]["mirror_status"] == "stored"

    upstream = await wan.status(job["attempts"][0]["upstream_id"])
    assert upstream.state is UpstreamState.SUCCEEDED and upstream.result is not None
    async with httpx.AsyncClient() as outside:
        dead = await outside.get(upstream.result.url)
    assert dead.status_code == 403, "the emulator's link works once, like an expiring one"

    ours = await client.get(job["result"]["url"])
    assert ours.status_code == 200
    assert len(ours.content) == job["result"]["bytes"]


async def test_a_failed_task_is_polled_once_and_fails_the_job_unbilled(
    client: httpx.AsyncClient,
    worker: Worker,
    wan: WanProvider,
    wan_upstream: tuple[Starlette, str],
) -> None:
    before = (await client.get("/v1/balance")).json()["millicredits"]
    job = await _run(client, "a lighthouse in a storm [fault:fail]")
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "upstream_unavailable"
    assert _attempts(job) == [(MODEL, "transient")]
    assert job["cost"]["millicredits"] == 0
    assert (await client.get("/v1/balance")).json()["millicredits"] == before

    task_id = job["attempts"][0]["upstream_id"]
    task = wan_upstream[0].state.tasks[task_id]
    assert task.final_polls == 1, "the FAILED task was queried again after it failed"
    polls = task.polls
    await asyncio.sleep(5 * POLL_SECONDS)
    assert task.polls == polls

    with pytest.raises(TransientError) as failed:
        await wan.status(task_id)
    assert failed.value.terminal
    assert failed.value.details["upstream_code"] == "InternalError.Algo"
