"""The media-video-from-text service, field by field against its seed's examples."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.engine.worker import Worker
from reelgate.media.probe import probe_video
from reelgate.providers.http import HttpDeployment
from reelgate.providers.video_gateway import VideoGatewayProvider
from reelgate.runtime import Runtime
from tests.conftest import LOOPBACK_DOWNLOADS
from tests.integration.test_gateway_video_gateway import quick

SEED_REQUEST = {
    "prompt": "A cinematic shot of a serene mountain lake at sunset, gentle ripples on the "
    "water, soft mist rising",
    "model": "veo (Audio)",
    "resolution": "1080P",
    "duration": "4s",
    "aspect_ratio": "16:9",
}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def upstream(tmp_path: Path, rt: Runtime) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_key="k", job_seconds=0.3, video_dir=tmp_path / "videos")
    with run_emulator("video_gateway", config) as server:
        rt.providers.providers["video_gateway"] = VideoGatewayProvider(
            HttpDeployment(server.url, "k", timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS)
        )
        quick(rt)
        yield server


async def _poll(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    import asyncio

    for _ in range(600):
        doc: dict[str, Any] = (await client.get(f"/v2/jobs/{job_id}")).json()
        if doc["status"] in ("completed", "failed"):
            return doc
        await asyncio.sleep(0.1)
    raise AssertionError(f"stuck: {doc}")


async def test_the_seed_request_and_responses(
    client: httpx.AsyncClient, worker: Worker, upstream: EmulatorServer, tmp_path: Path
) -> None:
    resp = await client.post("/v1/proxy/media-video-from-text", json=SEED_REQUEST)
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    assert set(accepted) == {"status", "message", "job"}
    assert (accepted["status"], accepted["message"]) == ("accepted", "Job queued for processing")
    job = accepted["job"]
    assert set(job) == {"id", "status", "service", "created_at"}
    assert (job["status"], job["service"]) == ("queued", "media-video-from-text")
    assert ISO.match(job["created_at"])

    done = await _poll(client, job["id"])
    assert set(done) == {
        "id",
        "status",
        "service_name",
        "created_at",
        "completed_at",
        "result_data",
        "units_consumed",
        "token_cost",
    }
    assert done["status"] == "completed"
    assert done["service_name"] == "media-video-from-text"
    assert ISO.match(done["completed_at"])
    data = done["result_data"]
    assert set(data) == {
        "status",
        "video_url",
        "duration_seconds",
        "model",
        "resolution",
        "aspect_ratio",
    }
    assert (data["status"], data["model"], data["resolution"], data["aspect_ratio"]) == (
        "success",
        "veo (Audio)",
        "1080P",
        "16:9",
    )
    # the upstream's own figure (the brief: result_data comes from the upstream), not
    # what reelgate measured of its copy (that is in the native job's result)
    assert data["duration_seconds"] == 4.0
    assert done["units_consumed"] == 4.0
    assert done["token_cost"] == 6.0  # 4 s x $1.50
    video = await client.get(data["video_url"])
    (tmp_path / "v.mp4").write_bytes(video.content)
    assert probe_video(tmp_path / "v.mp4").video_codec == "h264"

    native = (await client.get(f"/v1/videos/{job['id']}")).json()
    assert native["status"] == "completed" and native["model"] == "veo (Audio)"


async def test_integer_duration_is_a_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/proxy/media-video-from-text", json={**SEED_REQUEST, "duration": 4}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "duration"


@pytest.mark.parametrize("field", ["resolution", "aspect_ratio", "model"])
async def test_values_outside_the_service_are_400(client: httpx.AsyncClient, field: str) -> None:
    resp = await client.post(
        "/v1/proxy/media-video-from-text", json={**SEED_REQUEST, field: "720p"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == field


async def test_an_upstream_failure_is_failed_and_not_billed(
    client: httpx.AsyncClient, worker: Worker, upstream: EmulatorServer
) -> None:
    before = (await client.get("/v1/balance")).json()["millicredits"]["balance"]
    resp = await client.post(
        "/v1/proxy/media-video-from-text", json={**SEED_REQUEST, "prompt": "a fox [fault:refuse]"}
    )
    done = await _poll(client, resp.json()["job"]["id"])
    assert done["status"] == "failed"
    assert done["result_data"] is None
    assert (done["units_consumed"], done["token_cost"]) == (0.0, 0.0)
    assert done["error"]["code"] == "refused"
    after = (await client.get("/v1/balance")).json()["millicredits"]
    assert after["balance"] == before and after["held"] == 0
