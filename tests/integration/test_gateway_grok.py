"""The whole gateway (API, engine, storage) driving xAI Grok video through its emulator."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from reelgate.api.app import create_app
from reelgate.catalog.models import Route
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.grok import GrokEmulator, emulator_of
from reelgate.engine.worker import Worker
from reelgate.errors import TransientError
from reelgate.media.probe import probe_video
from reelgate.providers.grok import GrokProvider
from reelgate.providers.http import HttpDeployment
from reelgate.runtime import Runtime
from reelgate.storage import open_storage
from tests.conftest import DEV_ACCOUNT_ID, LOOPBACK_DOWNLOADS, TEST_KEY, wait_for_status

KEY = "xai-gateway-test-key-0123456789"
MODEL = "grok-video"
POLL_SECONDS = 0.1


@dataclass
class Grok:
    server: EmulatorServer
    emulator: GrokEmulator
    rt: Runtime

    def tune(self, **changes: Any) -> None:
        """Replace the grok-video catalog entry (quick polls by default)."""
        self.rt.catalog.replace(
            dataclasses.replace(spec, **changes) if spec.id == MODEL else spec
            for spec in self.rt.catalog
        )


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xai-gateway-videos")


@pytest.fixture
async def grok(rt: Runtime, video_dir: Path) -> AsyncIterator[Grok]:
    """The xAI emulator, with the adapter plugged into the runtime as provider ``grok``."""
    config = EmulatorConfig(api_key=KEY, job_seconds=0.3, video_dir=video_dir)
    with run_emulator("grok", config) as server:
        provider = GrokProvider(
            HttpDeployment(base_url=f"{server.url}/v1", api_key=KEY, downloads=LOOPBACK_DOWNLOADS)
        )
        rt.providers.providers["grok"] = provider  # closed by the runtime
        grok = Grok(server, emulator_of(server), rt)
        grok.tune(poll_interval_seconds=POLL_SECONDS, typical_seconds=1.0)
        yield grok


async def _run(
    client: httpx.AsyncClient, prompt: str, timeout: float = 30, **extra: Any
) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "prompt": prompt,
        "duration_seconds": 1,
        "resolution": "480p",
        "aspect_ratio": "16:9",
        **extra,
    }
    resp = await client.post("/v1/videos", json=body)
    assert resp.status_code == 202, resp.text
    seen = await wait_for_status(
        client, resp.json()["id"], {"completed", "failed", "canceled"}, timeout=timeout
    )
    return seen[-1]


async def _probe_download(client: httpx.AsyncClient, url: str, tmp_path: Path) -> tuple[int, int]:
    resp = await client.get(url)
    assert resp.status_code == 200
    path = tmp_path / "mirrored.mp4"
    path.write_bytes(resp.content)
    info = probe_video(path)
    return info.width, info.height


async def test_a_grok_job_completes_and_its_mirrored_copy_downloads(
    grok: Grok, client: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    job = await _run(client, "a lighthouse at dusk")
    assert job["status"] == "completed", job
    assert job["delivered_by"] == MODEL
    assert [(a["model"], a["outcome"]) for a in job["attempts"]] == [(MODEL, "completed")]
    result = job["result"]
    assert result["mirror_status"] == "stored"
    assert (result["width"], result["height"]) == (848, 480)
    assert await _probe_download(client, result["url"], tmp_path) == (848, 480)
    [sent] = grok.emulator.received
    assert (sent["model"], sent["duration"], sent["resolution"]) == (
        "grok-imagine-video",
        1,
        "480p",
    )


async def test_a_moderation_refusal_fails_without_trying_the_fallback(
    grok: Grok, client: httpx.AsyncClient, worker: Worker
) -> None:
    job = await _run(client, "[fault:refuse] a scene", fallback=["local"])
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "refused"
    assert "Reword" in job["error"]["message"]
    assert [(a["model"], a["outcome"]) for a in job["attempts"]] == [(MODEL, "refused")]


async def test_out_of_quota_falls_back_to_local(
    grok: Grok, client: httpx.AsyncClient, worker: Worker
) -> None:
    job = await _run(client, "[fault:quota] a scene", timeout=60, fallback=["local"])
    assert job["status"] == "completed", job
    assert job["delivered_by"] == "local"
    attempts = [(a["model"], a["outcome"]) for a in job["attempts"]]
    assert attempts == [(MODEL, "quota"), ("local", "completed")]
    assert job["attempts"][0]["error"]["upstream_status"] == 429


async def test_a_grok_job_that_never_finishes_times_out(
    grok: Grok, client: httpx.AsyncClient, worker: Worker
) -> None:
    grok.tune(poll_interval_seconds=0.1, typical_seconds=1.0, deadline_seconds=2)
    job = await _run(client, "[fault:never] a scene")
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "timeout"
    assert grok.emulator.jobs  # the upstream job was created and kept running


async def test_the_mirrored_copy_outlives_the_expired_xai_link(
    grok: Grok, client: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    job = await _run(client, "[fault:expire] a scene")
    assert job["status"] == "completed", job
    assert job["result"]["mirror_status"] == "stored"
    request_id = job["attempts"][0]["upstream_id"]
    upstream_url = f"{grok.server.url}/xai-vidgen-bucket/xai-video-{request_id}.mp4"
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(upstream_url)).status_code == 404
    assert await _probe_download(client, job["result"]["url"], tmp_path) == (848, 480)


async def test_a_failed_grok_job_is_polled_once_and_the_job_falls_back_to_local(
    grok: Grok, client: httpx.AsyncClient, worker: Worker
) -> None:
    job = await _run(client, "[fault:fail] a scene", fallback=["local"])
    assert job["status"] == "completed", job
    assert job["delivered_by"] == "local"
    attempts = [(a["model"], a["outcome"]) for a in job["attempts"]]
    assert attempts == [(MODEL, "transient"), ("local", "completed")]

    request_id = job["attempts"][0]["upstream_id"]
    upstream = grok.emulator.jobs[request_id]
    assert upstream.final_polls == 1, "the failed job was polled again after it failed"
    polls = upstream.polls
    await asyncio.sleep(5 * POLL_SECONDS)
    assert upstream.polls == polls

    provider = grok.rt.providers.providers["grok"]
    with pytest.raises(TransientError) as failed:
        await provider.status(request_id)
    assert failed.value.terminal


# -- Zero Data Retention teams ------------------------------------------------------


async def test_a_zero_data_retention_team_gets_its_video_through_our_upload_url(
    rt: Runtime, video_dir: Path
) -> None:
    """xAI answers a ZDR team's create without ``output.upload_url`` with a 400
    (tests/fixtures/wire/grok/error-zdr-400.json); reelgate sends it again once with a
    signed PUT link into its own storage, xAI uploads there, and the job is mirrored
    from that object. The next create carries the link from the start."""
    # a real socket in this loop (the runtime's database is bound to it): xAI PUTs there
    api = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(api.serve())
    while not api.started:
        await asyncio.sleep(0.01)
    api_url = f"http://127.0.0.1:{api.servers[0].sockets[0].getsockname()[1]}"
    task: asyncio.Task[None] | None = None
    wk: Worker | None = None
    try:
        rt.storage = open_storage(
            rt.settings.resolved_storage_url(),
            public_base_url=api_url,
            signing_secret=rt.signing_secret,
        )
        config = EmulatorConfig(
            api_key=KEY, job_seconds=0.3, video_dir=video_dir, zero_data_retention=True
        )
        with run_emulator("grok", config) as server:
            rt.providers.providers["grok"] = GrokProvider(
                HttpDeployment(
                    base_url=f"{server.url}/v1", api_key=KEY, downloads=LOOPBACK_DOWNLOADS
                )
            )
            Grok(server, emulator_of(server), rt).tune(
                poll_interval_seconds=POLL_SECONDS, typical_seconds=1.0
            )
            wk = Worker.from_runtime(rt, concurrency=2, lease_seconds=10)
            task = asyncio.create_task(wk.run())
            headers = {"Authorization": f"Bearer {TEST_KEY}"}
            async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
                first = await _run(client, "a lighthouse that keeps no logs")
                second = await _run(client, "a second lighthouse")
                copy = await client.get(first["result"]["url"])
            emulator = emulator_of(server)
    finally:
        if wk is not None and task is not None:
            wk.stop()
            await asyncio.wait_for(task, timeout=30)
        api.should_exit = True
        await serving
    assert first["status"] == "completed", first
    assert first["result"]["mirror_status"] == "stored"
    assert copy.status_code == 200 and len(copy.content) == first["result"]["bytes"]
    assert second["status"] == "completed", second
    outputs = [body.get("output") for body in emulator.received]
    assert outputs[0] is None  # the first create learnt it
    assert all(o is not None for o in outputs[1:]) and len(outputs) == 3
    assert outputs[1]["upload_url"].startswith(f"{api_url}/v1/uploads/uploads/")
    assert all(job.uploaded for job in emulator.jobs.values())


async def test_the_upload_route_takes_only_its_own_signed_links(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    key = "uploads/video_x-1.mp4"
    link = await rt.storage.upload_url(key, 60)
    ok = await client.put(link.removeprefix("http://testserver"), content=b"bytes")
    assert ok.status_code == 200 and await rt.storage.exists(key)
    download = await rt.storage.signed_url(key, 60)  # a GET link's signature
    query = download.split("?", 1)[1]
    refused = [
        await client.put(f"/v1/uploads/{key}?{query}", content=b"x"),
        await client.put(link.removeprefix("http://testserver") + "0", content=b"x"),
        await client.put(
            link.removeprefix("http://testserver").replace("uploads/video_x", "videos/video_x"),
            content=b"x",
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert all(r.json()["error"]["code"] == "invalid_signature" for r in refused)


async def test_xai_s_own_cost_figure_is_the_upstream_cost_and_a_withheld_render_a_loss(
    grok: Grok, client: httpx.AsyncClient, worker: Worker
) -> None:
    # a list cost that is wrong on purpose: xAI's reported ticks must win over it
    grok.tune(routes={"xai": Route("grok-imagine-video", cost_per_second=1)})
    done = await _run(client, "a lighthouse at dusk", duration_seconds=2)
    refused = await _run(client, "[fault:refuse] a scene")
    assert done["status"] == "completed" and refused["status"] == "failed"
    assert refused["cost"]["millicredits"] == 0  # the user pays nothing for a refusal
    today = datetime.now(UTC).date().isoformat()
    summary = (await client.get("/v1/usage/summary", params={"start": today, "end": today})).json()
    [row] = [r for r in summary["data"] if r["model"] == MODEL]
    # SOURCE: xAI's MediaUsage.cost_in_usd_ticks, 10^10 ticks to the dollar; a public
    # relay sample reads 500000000 for 1 s at 480p = $0.05 (apidoc.cometapi.com
    # get-video-generation-results, in tests/fixtures/wire/grok/poll-done-with-usage.json)
    # 2 s at 480p: xAI says 2 x 500,000,000 ticks = $0.10 = 10,000 millicredits at a cent a
    # credit; the user paid 2 x 12.5 credits
    assert (row["route"], row["cost_millicredits"], row["upstream_cost_millicredits"]) == (
        "xai",
        25_000,
        10_000,
    )
    assert (row["margin_millicredits"], row["costed_jobs"]) == (15_000, 1)
    # the refusal xAI still bills (1 s at 480p = $0.05) is a loss. SOURCE: docs.apiyi.com
    # grok-imagine-video overview, a relay charging xAI's list price: "moderation-blocked
    # renders are still billed" (tests/fixtures/wire/grok/poll-done-moderated.json's note)
    [loss] = [x for x in summary["losses"] if x["model"] == MODEL]
    assert (loss["jobs"], loss["route"], loss["upstream_cost_millicredits"]) == (1, "xai", 5_000)
    assert summary["total_upstream_cost_money"] == {"amount": "0.15", "currency": "USD"}
    assert summary["total_margin_money"] == {"amount": "0.10", "currency": "USD"}
    # the operator's report across accounts says the same, per account
    report = (
        await client.get("/v1/admin/usage/report", params={"start": today, "end": today})
    ).json()
    assert report["object"] == "usage_report"
    mine = [r for r in report["data"] if r["account_id"] == DEV_ACCOUNT_ID and r["model"] == MODEL]
    assert [r["margin_millicredits"] for r in mine] == [15_000]
    assert [x["upstream_cost_millicredits"] for x in report["losses"]] == [5_000]
    assert report["total_margin_money"] == summary["total_margin_money"]
