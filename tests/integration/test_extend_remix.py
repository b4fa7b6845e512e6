"""Extend and remix (``POST /v1/videos/{id}/extend|remix``) through the whole gateway:
on ``local`` an extension is image-to-video from the last frame joined on by reelgate;
on xAI (its emulator) both are xAI's own ``/videos/extensions`` and ``/videos/edits``.
Both are jobs like any other: 202, progress, billing for what was made."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.grok import GrokEmulator, emulator_of
from reelgate.engine.worker import Worker
from reelgate.providers.grok import GrokProvider
from reelgate.providers.http import HttpDeployment
from reelgate.runtime import Runtime
from tests.conftest import LOOPBACK_DOWNLOADS, wait_for_status
from tests.integration.conftest import api_client, emulated_runtime

KEY = "xai-edit-test-key-0123456789"
FINAL = {"completed", "failed", "canceled"}


@pytest.fixture
async def grok(rt: Runtime, tmp_path: Path) -> AsyncIterator[GrokEmulator]:
    config = EmulatorConfig(api_key=KEY, job_seconds=0.3, video_dir=tmp_path / "xai")
    with run_emulator("grok", config) as server:
        rt.providers.providers["grok"] = GrokProvider(
            HttpDeployment(base_url=f"{server.url}/v1", api_key=KEY, downloads=LOOPBACK_DOWNLOADS)
        )
        rt.catalog.replace(
            s.__class__(**{**s.__dict__, "poll_interval_seconds": 0.1, "typical_seconds": 1.0})
            if s.provider == "grok"
            else s
            for s in rt.catalog
        )
        yield emulator_of(server)


async def _finish(client: httpx.AsyncClient, resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 202, resp.text
    seen = await wait_for_status(client, resp.json()["id"], FINAL, timeout=60)
    return seen[-1]


async def _video(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    job = await _finish(client, await client.post("/v1/videos", json=body))
    assert job["status"] == "completed", job
    return job


async def _frames(client: httpx.AsyncClient, url: str) -> tuple[list[np.ndarray], int]:
    resp = await client.get(url)
    assert resp.status_code == 200
    with av.open(io.BytesIO(resp.content)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    with av.open(io.BytesIO(resp.content)) as c:
        samples = sum(f.samples for f in c.decode(c.streams.audio[0])) if c.streams.audio else 0
    return frames, samples


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


async def test_extending_a_local_video_joins_a_continuation_from_its_last_frame(
    client: httpx.AsyncClient, worker: Worker
) -> None:
    source = await _video(
        client,
        {
            "model": "local",
            "prompt": "a red kite over a beach",
            "duration_seconds": 2,
            "resolution": "360p",
        },
    )
    resp = await client.post(
        f"/v1/videos/{source['id']}/extend",
        json={"prompt": "the kite climbs into the clouds", "duration_seconds": 3},
    )
    assert resp.headers["location"] == f"/v1/videos/{resp.json()['id']}"
    assert resp.json()["extended_from_video_id"] == source["id"]
    assert resp.json()["params"]["image"] is True  # the last frame, as the start image
    job = await _finish(client, resp)
    assert job["status"] == "completed", job
    assert job["model"] == job["delivered_by"] == "local"
    assert job["result"]["duration_seconds"] == pytest.approx(5.0, abs=0.05)  # 2 + 3
    # billed for the three seconds made, not the five delivered
    assert job["units_consumed"] == 3
    assert job["cost"]["credits"] == "3.000"

    src_frames, _ = await _frames(client, source["result"]["url"])
    frames, samples = await _frames(client, job["result"]["url"])
    assert len(frames) == len(src_frames) + 3 * 24
    # the source plays first, as it was (re-encoded), and the continuation starts from
    # its last picture (the local renderer animates the start image from frame one)
    assert max(_diff(a, b) for a, b in zip(frames[:48], src_frames, strict=True)) < 6
    assert _diff(frames[48], src_frames[-1]) < _diff(frames[48], src_frames[0])
    assert samples == pytest.approx(5 * 48_000, abs=2048)  # sound throughout


async def test_xai_extends_and_remixes_natively(
    grok: GrokEmulator, client: httpx.AsyncClient, worker: Worker
) -> None:
    source = await _video(
        client,
        {
            "model": "grok-video",
            "prompt": "a fox in snow",
            "duration_seconds": 3,
            "resolution": "480p",
            "aspect_ratio": "16:9",
        },
    )
    extended = await _finish(
        client,
        await client.post(
            f"/v1/videos/{source['id']}/extend",
            json={"prompt": "the fox runs into the forest", "duration_seconds": 2},
        ),
    )
    assert extended["status"] == "completed", extended
    sent = grok.received[-1]
    # xAI's REST reference, POST /v1/videos/extensions: model, prompt, video.url, duration
    assert sorted(sent) == ["duration", "model", "prompt", "video"]
    assert (sent["model"], sent["duration"]) == ("grok-imagine-video", 2)
    data = base64.b64decode(sent["video"]["url"].split(",", 1)[1])
    assert sent["video"]["url"].startswith("data:video/mp4;base64,")
    assert data[4:8] == b"ftyp"  # our stored copy of the source went, whole
    # xAI returns the whole video (3 + 2 s): reelgate joins nothing and bills the 2 added
    assert extended["result"]["duration_seconds"] == pytest.approx(5.0, abs=0.1)
    assert extended["units_consumed"] == 2

    remixed = await _finish(
        client,
        await client.post(f"/v1/videos/{source['id']}/remix", json={"prompt": "a wolf in snow"}),
    )
    assert remixed["status"] == "completed", remixed
    assert remixed["remixed_from_video_id"] == source["id"]
    sent = grok.received[-1]
    assert sorted(sent) == ["model", "prompt", "video"]  # POST /v1/videos/edits
    assert sent["prompt"] == "a wolf in snow"
    assert remixed["result"]["duration_seconds"] == pytest.approx(3.0, abs=0.1)
    assert remixed["units_consumed"] == 3


async def test_an_extension_xai_cannot_make_itself_is_made_from_the_last_frame(
    grok: GrokEmulator, client: httpx.AsyncClient, worker: Worker
) -> None:
    """xAI extends by 2-10 s: one more second goes as image-to-video and is joined."""
    source = await _video(
        client,
        {
            "model": "grok-video",
            "prompt": "a heron",
            "duration_seconds": 2,
            "resolution": "480p",
            "aspect_ratio": "16:9",
        },
    )
    job = await _finish(
        client,
        await client.post(
            f"/v1/videos/{source['id']}/extend",
            json={"prompt": "the heron takes off", "duration_seconds": 1},
        ),
    )
    assert job["status"] == "completed", job
    sent = grok.received[-1]
    assert sent["image"]["url"].startswith("data:image/png;base64,")  # /videos/generations
    assert "video" not in sent and sent["duration"] == 1
    assert job["result"]["duration_seconds"] == pytest.approx(3.0, abs=0.1)
    assert job["units_consumed"] == 1


async def test_remix_where_no_provider_can_is_a_clear_400_naming_the_models_that_can(
    grok: GrokEmulator, client: httpx.AsyncClient, worker: Worker
) -> None:
    source = await _video(
        client, {"model": "local", "prompt": "a tram", "duration_seconds": 1, "resolution": "360p"}
    )
    resp = await client.post(f"/v1/videos/{source['id']}/remix", json={"prompt": "a bus"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "remix_not_supported"
    assert error["param"] == "model" and "grok-video" in error["allowed"]
    assert "local" not in error["allowed"]
    # and its balance is untouched: nothing was held
    balance = (await client.get("/v1/balance")).json()
    assert balance["millicredits"]["held"] == 0


async def test_only_a_completed_stored_video_of_the_account_can_be_edited(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post("/v1/videos/vid_nope/extend", json={"prompt": "more"})
    assert resp.status_code == 404
    queued = await client.post(
        "/v1/videos", json={"model": "local", "prompt": "x", "duration_seconds": 1}
    )
    job_id = queued.json()["id"]  # no worker runs: it stays queued
    for edit in ("extend", "remix"):
        resp = await client.post(f"/v1/videos/{job_id}/{edit}", json={"prompt": "more"})
        assert resp.status_code == 409
        assert resp.json()["error"]["code"] == "source_not_ready"
        assert "queued" in resp.json()["error"]["message"]
    resp = await client.post(f"/v1/videos/{job_id}/extend", json={"prompt": " "})
    assert resp.status_code == 400


async def test_an_extension_keeps_its_own_copy_of_the_source(
    client: httpx.AsyncClient, worker: Worker
) -> None:
    """Deleting the source right after asking for an extension changes nothing: the job
    took its own copy, is joined onto it and billed for the seconds added."""
    source = await _video(
        client, {"model": "local", "prompt": "a heron", "duration_seconds": 2, "resolution": "360p"}
    )
    resp = await client.post(
        f"/v1/videos/{source['id']}/extend", json={"prompt": "it flies", "duration_seconds": 2}
    )
    assert (await client.delete(f"/v1/videos/{source['id']}")).status_code == 200
    job = await _finish(client, resp)
    assert job["status"] == "completed", job
    assert job["result"]["mirror_status"] == "stored"
    assert job["result"]["duration_seconds"] == pytest.approx(4.0, abs=0.05)
    assert job["units_consumed"] == 2


async def test_remixing_an_extended_video_bills_its_whole_length(
    grok: GrokEmulator, client: httpx.AsyncClient, worker: Worker
) -> None:
    source = await _video(
        client,
        {"model": "grok-video", "prompt": "a fox", "duration_seconds": 3, "resolution": "480p"},
    )
    extended = await _finish(
        client,
        await client.post(
            f"/v1/videos/{source['id']}/extend", json={"prompt": "more", "duration_seconds": 2}
        ),
    )
    assert extended["result"]["duration_seconds"] == pytest.approx(5.0, abs=0.1)
    remixed = await _finish(
        client, await client.post(f"/v1/videos/{extended['id']}/remix", json={"prompt": "a wolf"})
    )
    assert remixed["status"] == "completed", remixed
    assert remixed["params"]["duration_seconds"] == 5 and remixed["units_consumed"] == 5


async def test_veo_on_vertex_extends_with_its_own_extension(
    settings: Settings, emulators: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    """Veo 3.1 on Vertex AI takes the source as ``instances[0].video`` (the Veo on Vertex
    AI API reference: "bytesBase64Encoded" or "gcsUri", and "mimeType") and returns the
    whole, longer video: nothing is joined, and the seconds added are billed."""
    runtime = emulated_runtime(settings, emulators, local_work_dir=tmp_path / "r")
    async with runtime as ert, api_client(ert) as client:
        wk = Worker.from_runtime(ert, concurrency=4, lease_seconds=10, idle_poll_seconds=0.2)
        task = asyncio.create_task(wk.run())
        try:
            shape = {"duration_seconds": 4, "resolution": "720p", "aspect_ratio": "16:9"}
            source = await _video(
                client, {"model": "veo-3-1-fast", "prompt": "a dune at noon", **shape}
            )
            received = emulators["veo"].app.state.veo.received
            before = len(received)
            job = await _finish(
                client,
                await client.post(
                    f"/v1/videos/{source['id']}/extend",
                    json={"prompt": "the wind lifts the sand", "duration_seconds": 4},
                ),
            )
        finally:
            wk.stop()
            await asyncio.wait_for(task, timeout=30)
    assert job["status"] == "completed", job
    [sent] = [r["body"] for r in received[before:] if "instances" in (r["body"] or {})]
    instance = sent["instances"][0]
    assert instance["video"]["mimeType"] == "video/mp4" and "image" not in instance
    assert base64.b64decode(instance["video"]["bytesBase64Encoded"])[4:8] == b"ftyp"
    assert sent["parameters"]["durationSeconds"] == 4
    assert job["result"]["duration_seconds"] == pytest.approx(8.0, abs=0.1)
    assert job["units_consumed"] == 4


async def test_an_extension_falls_back_on_quota_like_any_job(
    grok: GrokEmulator, client: httpx.AsyncClient, worker: Worker
) -> None:
    """xAI out of quota: the extension moves down its chain to ``local``, which makes it
    from the last frame; the whole video is joined and ``local`` bills the seconds added."""
    source = await _video(
        client,
        {"model": "grok-video", "prompt": "a lake", "duration_seconds": 2, "resolution": "480p"},
    )
    job = await _finish(
        client,
        await client.post(
            f"/v1/videos/{source['id']}/extend",
            json={
                "prompt": "rain starts [fault:quota@grok]",
                "duration_seconds": 2,
                "fallback": ["local"],
            },
        ),
    )
    assert job["status"] == "completed", job
    assert [(a["model"], a["outcome"]) for a in job["attempts"]] == [
        ("grok-video", "quota"),
        ("local", "completed"),
    ]
    assert job["delivered_by"] == "local"
    assert job["result"]["duration_seconds"] == pytest.approx(4.0, abs=0.1)
    assert job["units_consumed"] == 2 and job["cost"]["credits"] == "2.000"
