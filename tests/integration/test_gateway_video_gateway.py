"""The whole gateway (HTTP API, engine, storage) driving the video gateway emulator:
what a user of the ``veo (Audio)`` models sees, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.engine.worker import Worker
from reelgate.errors import TransientError
from reelgate.media.probe import probe_video
from reelgate.providers.http import HttpDeployment
from reelgate.providers.video_gateway import VideoGatewayProvider
from reelgate.runtime import Runtime
from tests.conftest import LOOPBACK_DOWNLOADS, wait_for_status

KEY = "vg-gateway-secret-0123456789"
POLL_SECONDS = 0.1


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vg-gateway-videos")


@pytest.fixture
def upstream(video_dir: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_key=KEY, job_seconds=0.5, video_dir=video_dir)
    with run_emulator("video_gateway", config) as server:
        yield server


def quick(rt: Runtime, **changes: Any) -> None:
    """Poll the video gateway models (and ``local``) fast; apply ``changes`` to ours.

    ``local`` is also offered at 512p so a chain [veo, local] can run at the
    upstream's small size: rendering 1080p on a CI CPU takes 5-20 s, 512p ~1 s.
    """
    specs = []
    for spec in rt.catalog:
        if spec.provider == "video_gateway":
            spec = dataclasses.replace(
                spec, poll_interval_seconds=POLL_SECONDS, typical_seconds=1.0, **changes
            )
        elif spec.id == "local":
            allowed = dataclasses.replace(
                spec.allowed, resolutions=(*spec.allowed.resolutions, "512p")
            )
            spec = dataclasses.replace(spec, poll_interval_seconds=0.1, allowed=allowed)
        specs.append(spec)
    rt.catalog.replace(specs)


@pytest.fixture
def gateway(rt: Runtime, upstream: EmulatorServer) -> VideoGatewayProvider:
    """The adapter plugged into the runtime; ``rt.aclose`` closes it with the registry."""
    provider = VideoGatewayProvider(
        HttpDeployment(upstream.url, KEY, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS)
    )
    rt.providers.providers["video_gateway"] = provider
    quick(rt)
    return provider


def received(server: EmulatorServer) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = httpx.get(f"{server.url}/_emulator/received").json()
    return answer


async def submit_and_wait(
    client: httpx.AsyncClient, body: dict[str, Any], timeout: float = 30
) -> dict[str, Any]:
    resp = await client.post("/v1/videos", json=body)
    assert resp.status_code == 202, resp.text
    seen = await wait_for_status(
        client, resp.json()["id"], {"completed", "failed", "canceled"}, timeout=timeout
    )
    final: dict[str, Any] = seen[-1]
    return final


def outcomes(job: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["model"], a["outcome"]) for a in job["attempts"]]


async def test_a_job_completes_and_its_mirrored_copy_downloads(
    client: httpx.AsyncClient,
    worker: Worker,
    gateway: VideoGatewayProvider,
    upstream: EmulatorServer,
    tmp_path: Path,
) -> None:
    job = await submit_and_wait(
        client,
        {
            "model": "veo fast (Audio)",
            "prompt": "a serene mountain lake at sunset",
            "resolution": "512p",
            "duration_seconds": 4,
            "aspect_ratio": "16:9",
        },
    )
    assert job["status"] == "completed", job
    assert job["delivered_by"] == "veo fast (Audio)"
    assert outcomes(job) == [("veo fast (Audio)", "completed")]
    result = job["result"]
    assert result["mirror_status"] == "stored"
    assert (result["width"], result["height"]) == (910, 512)
    assert result["url"].startswith("http://testserver/files/")

    download = await client.get(result["url"])
    assert download.status_code == 200
    assert len(download.content) == result["bytes"]
    path = tmp_path / "mirrored.mp4"
    path.write_bytes(download.content)
    assert abs(probe_video(path).duration_seconds - 4.0) <= 0.2

    [create] = [r["body"] for r in received(upstream) if r["kind"] == "create"]
    assert create == {
        "prompt": "a serene mountain lake at sunset",
        "model": "veo fast (Audio)",
        "resolution": "512P",
        "duration": "4s",
        "aspect_ratio": "16:9",
    }


async def test_a_refusal_fails_at_once_and_never_tries_the_fallback(
    client: httpx.AsyncClient,
    worker: Worker,
    gateway: VideoGatewayProvider,
    upstream: EmulatorServer,
) -> None:
    job = await submit_and_wait(
        client,
        {
            "model": "veo (Audio)",
            "prompt": "[fault:refuse] a lake",
            "resolution": "512p",
            "duration_seconds": 4,
            "fallback": ["local"],
        },
    )
    assert job["status"] == "failed"
    assert job["error"]["code"] == "refused"
    assert "Reword" in job["error"]["message"]
    assert outcomes(job) == [("veo (Audio)", "refused")]
    assert job["delivered_by"] is None and job["result"] is None
    assert [r["kind"] for r in received(upstream)].count("create") == 1


async def test_quota_falls_back_to_local_which_delivers(
    client: httpx.AsyncClient, worker: Worker, gateway: VideoGatewayProvider
) -> None:
    job = await submit_and_wait(
        client,
        {
            "model": "veo fast (Audio)",
            "prompt": "[fault:quota] a lake",
            "resolution": "512p",
            "duration_seconds": 4,
            "fallback": ["local"],
        },
        timeout=60,
    )
    assert job["status"] == "completed", job
    assert job["delivered_by"] == "local"
    assert outcomes(job) == [("veo fast (Audio)", "quota"), ("local", "completed")]
    assert job["attempts"][0]["error"]["upstream_status"] == 429
    assert job["result"]["mirror_status"] == "stored"


async def test_a_job_that_never_finishes_fails_with_timeout(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker, gateway: VideoGatewayProvider
) -> None:
    quick(rt, deadline_seconds=1)
    job = await submit_and_wait(
        client,
        {"model": "veo (Audio)", "prompt": "[fault:never] a lake", "resolution": "512p"},
        timeout=20,
    )
    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"
    assert outcomes(job) == [("veo (Audio)", "timeout")]


async def test_our_mirrored_copy_outlives_the_expired_upstream_link(
    client: httpx.AsyncClient,
    worker: Worker,
    gateway: VideoGatewayProvider,
    upstream: EmulatorServer,
) -> None:
    job = await submit_and_wait(
        client,
        {"model": "veo fast (Audio)", "prompt": "[fault:expire] a lake", "resolution": "512p"},
    )
    assert job["status"] == "completed", job
    assert job["result"]["mirror_status"] == "stored"

    [fetched] = [r["path"] for r in received(upstream) if r["kind"] == "download"]
    async with httpx.AsyncClient() as outside:
        dead = await outside.get(f"{upstream.url}{fetched}")
    assert dead.status_code == 403
    assert "AccessDenied" in dead.text

    ours = await client.get(job["result"]["url"])
    assert ours.status_code == 200
    assert len(ours.content) == job["result"]["bytes"]


async def test_a_failed_job_is_polled_once_and_fails_the_job_unbilled(
    client: httpx.AsyncClient,
    worker: Worker,
    gateway: VideoGatewayProvider,
    upstream: EmulatorServer,
) -> None:
    before = (await client.get("/v1/balance")).json()["millicredits"]
    job = await submit_and_wait(
        client,
        {"model": "veo fast (Audio)", "prompt": "[fault:fail] a lake", "resolution": "512p"},
    )
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "upstream_unavailable"
    assert outcomes(job) == [("veo fast (Audio)", "transient")]
    assert job["cost"]["millicredits"] == 0
    assert (await client.get("/v1/balance")).json()["millicredits"] == before

    job_id = job["attempts"][0]["upstream_id"]
    upstream_job = upstream.app.state.emulator.jobs[job_id]
    assert upstream_job.final_polls == 1, "the failed job was polled again after it failed"
    polls = upstream_job.polls
    await asyncio.sleep(5 * POLL_SECONDS)
    assert upstream_job.polls == polls

    with pytest.raises(TransientError) as failed:
        await gateway.status(job_id)
    assert failed.value.terminal and failed.value.code == "upstream_failed"
