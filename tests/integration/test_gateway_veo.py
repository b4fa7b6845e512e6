"""The whole gateway (HTTP API, engine, storage) driving the Veo emulator on its default
route, Vertex AI: what a user of ``veo-3-1-fast`` sees, on SQLite and PostgreSQL; and
what happens on the Gemini API route, where Google retired every Veo id."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from reelgate.catalog.models import Lifecycle
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.engine.worker import Worker
from reelgate.errors import TransientError
from reelgate.media.probe import probe_video
from reelgate.providers.http import HttpDeployment
from reelgate.providers.veo import VeoProvider, VertexVeoProvider
from reelgate.runtime import Runtime
from tests.conftest import LOOPBACK_DOWNLOADS, wait_for_status

KEY = "ya29.gateway-vertex-secret-0123456789"
PROJECT, LOCATION, BUCKET = "reel-project", "us-central1", "reel-bucket"
MODEL = "veo-3-1-fast"
POLL_SECONDS = 0.1


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared with test_provider_veo.py: each size is rendered once per session."""
    path = tmp_path_factory.getbasetemp() / "veo-videos"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def upstream(video_dir: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_key=KEY, job_seconds=0.5, video_dir=video_dir)
    with run_emulator("veo", config) as server:
        yield server


def small(rt: Runtime) -> None:
    """Let the Veo models take 360p and 1 s, so a fallback to ``local`` renders fast (the
    upstream answers before it reads the size)."""
    specs = []
    for spec in rt.catalog:
        if spec.provider == "veo":
            tiny = dataclasses.replace(spec.allowed, resolutions=("360p",), durations=(1,))
            spec = dataclasses.replace(spec, allowed=tiny, default_resolution="360p")
        specs.append(spec)
    rt.catalog.replace(specs)


def quick(rt: Runtime, **changes: Any) -> None:
    """Poll the Veo models and ``local`` fast; apply ``changes`` to the Veo entries."""
    specs = []
    for spec in rt.catalog:
        if spec.provider == "veo":
            spec = dataclasses.replace(
                spec, poll_interval_seconds=POLL_SECONDS, typical_seconds=1.0, **changes
            )
        elif spec.id == "local":
            spec = dataclasses.replace(spec, poll_interval_seconds=0.1)
        specs.append(spec)
    rt.catalog.replace(specs)


@pytest.fixture
def veo(rt: Runtime, upstream: EmulatorServer) -> VeoProvider:
    """The Vertex adapter (results written to a bucket) plugged into the runtime;
    ``rt.aclose`` closes it with the registry."""
    provider = VertexVeoProvider(
        HttpDeployment(f"{upstream.url}/v1", KEY, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS),
        project=PROJECT,
        location=LOCATION,
        storage_uri=f"gs://{BUCKET}/reelgate",
        gcs_base_url=upstream.url,
    )
    rt.providers.providers["veo"] = provider
    quick(rt)
    return provider


@pytest.fixture
def gemini(rt: Runtime, upstream: EmulatorServer) -> VeoProvider:
    """The Gemini API route, which the operator says still works for their key (the
    catalog's route data says it retired on 2026-10-22); the emulator answers as Google
    does: 404 "is no longer available"."""
    provider = VeoProvider(
        HttpDeployment(
            f"{upstream.url}/v1beta",
            KEY,
            timeout_seconds=10,
            downloads=LOOPBACK_DOWNLOADS,
        )
    )
    rt.providers.providers["veo"] = provider
    specs = []
    for spec in rt.catalog:
        if spec.provider == "veo":
            gemini_route = dataclasses.replace(
                spec.route("gemini"), lifecycle=Lifecycle.GA, retires_at=None
            )
            spec = dataclasses.replace(spec, routes={**spec.routes, "gemini": gemini_route})
        specs.append(spec)
    rt.catalog.replace(specs)
    quick(rt)
    return provider


async def submit_and_wait(
    client: httpx.AsyncClient, prompt: str, timeout: float = 30, **extra: Any
) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "prompt": prompt,
        "resolution": "720p",
        "duration_seconds": 4,
        "aspect_ratio": "16:9",
        **extra,
    }
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
    client: httpx.AsyncClient, worker: Worker, veo: VeoProvider, tmp_path: Path
) -> None:
    job = await submit_and_wait(client, "a hummingbird hovering over a red flower")
    assert job["status"] == "completed", job
    assert job["delivered_by"] == MODEL
    assert outcomes(job) == [(MODEL, "completed")]
    upstream_id = job["attempts"][0]["upstream_id"]
    assert upstream_id.startswith(
        f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/"
        "veo-3.1-fast-generate-001/operations/"
    )
    result = job["result"]
    assert result["mirror_status"] == "stored"
    assert (result["width"], result["height"]) == (1280, 720)
    assert result["url"].startswith("http://testserver/files/")
    assert KEY not in json.dumps(job)

    download = await client.get(result["url"])
    assert download.status_code == 200
    assert len(download.content) == result["bytes"]
    path = tmp_path / "mirrored.mp4"
    path.write_bytes(download.content)
    assert abs(probe_video(path).duration_seconds - 4.0) <= 0.2


async def test_a_refusal_fails_at_once_without_trying_the_fallback(
    client: httpx.AsyncClient, worker: Worker, veo: VeoProvider
) -> None:
    job = await submit_and_wait(client, "something unsafe [fault:refuse]", fallback=["local"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "refused"
    assert "The prompt was flagged" in job["error"]["message"]
    assert outcomes(job) == [(MODEL, "refused")]


async def test_quota_falls_back_to_local_and_records_both_attempts(
    client: httpx.AsyncClient, rt: Runtime, worker: Worker, veo: VeoProvider
) -> None:
    # The 429 comes before Veo looks at the parameters, so the job may ask for a size that
    # `local` renders in a fraction of a second (720p x 4 s takes seconds on a busy CPU).
    spec = rt.catalog.get(MODEL)
    small = dataclasses.replace(spec.allowed, resolutions=("360p",), durations=(1,))
    rt.catalog.replace(
        [dataclasses.replace(spec, allowed=small) if s is spec else s for s in rt.catalog]
    )
    job = await submit_and_wait(
        client,
        "a busy afternoon [fault:quota]",
        fallback=["local"],
        resolution="360p",
        duration_seconds=1,
    )
    assert job["status"] == "completed", job
    assert job["delivered_by"] == "local"
    assert outcomes(job) == [(MODEL, "quota"), ("local", "completed")]
    assert job["attempts"][0]["error"]["upstream_status"] == 429
    assert job["result"]["mirror_status"] == "stored"


async def test_a_job_that_never_finishes_times_out(
    client: httpx.AsyncClient, rt: Runtime, worker: Worker, veo: VeoProvider
) -> None:
    quick(rt, deadline_seconds=1)
    job = await submit_and_wait(client, "waiting forever [fault:never]")
    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"
    assert outcomes(job) == [(MODEL, "timeout")]


async def test_our_mirrored_copy_outlives_the_expired_upstream_link(
    client: httpx.AsyncClient, worker: Worker, veo: VeoProvider, upstream: EmulatorServer
) -> None:
    job = await submit_and_wait(client, "a sandcastle at high tide [fault:expire]")
    assert job["status"] == "completed", job
    assert job["result"]["mirror_status"] == "stored"

    operation = upstream.app.state.veo.jobs[job["attempts"][0]["upstream_id"]]
    [path] = [p for p, j in upstream.app.state.veo.files.items() if j is operation]
    bucket, _, name = path.partition("/")
    link = f"{upstream.url}/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
    async with httpx.AsyncClient() as direct:
        dead = await direct.get(link, headers={"authorization": f"Bearer {KEY}"})
    assert dead.status_code == 404  # the object in the bucket is gone; our copy is not
    assert dead.json()["error"]["errors"][0]["reason"] == "notFound"

    ours = await client.get(job["result"]["url"])
    assert ours.status_code == 200
    assert len(ours.content) == job["result"]["bytes"]


async def test_a_failed_operation_is_polled_once_and_fails_the_job_unbilled(
    client: httpx.AsyncClient, worker: Worker, veo: VeoProvider, upstream: EmulatorServer
) -> None:
    before = (await client.get("/v1/balance")).json()["millicredits"]
    job = await submit_and_wait(client, "a hummingbird [fault:fail]")
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "upstream_unavailable"
    assert outcomes(job) == [(MODEL, "transient")]
    assert job["cost"]["millicredits"] == 0
    assert (await client.get("/v1/balance")).json()["millicredits"] == before

    name = job["attempts"][0]["upstream_id"]
    operation = upstream.app.state.veo.jobs[name]
    assert operation.final_polls == 1, "the failed operation was polled again after it failed"
    polls = operation.polls
    await asyncio.sleep(5 * POLL_SECONDS)
    assert operation.polls == polls

    with pytest.raises(TransientError) as failed:
        await veo.status(name)
    assert failed.value.terminal


# -- the Gemini API route: every Veo id there is retired ----------------------------------


async def test_a_model_gone_upstream_falls_back_unbilled_and_is_marked_unavailable(
    client: httpx.AsyncClient,
    rt: Runtime,
    worker: Worker,
    gemini: VeoProvider,
    upstream: EmulatorServer,
) -> None:
    small(rt)  # Google answers before it looks at the size: let local render a tiny one
    job = await submit_and_wait(
        client, "a lighthouse at dusk", fallback=["local"], resolution="360p", duration_seconds=1
    )
    assert job["status"] == "completed", (job["error"], job["attempts"])
    assert job["delivered_by"] == "local"
    assert outcomes(job) == [(MODEL, "gone"), ("local", "completed")]
    assert job["attempts"][0]["error"]["upstream_status"] == 404
    assert "is no longer available" in job["attempts"][0]["error"]["message"]
    local_price = rt.catalog.get("local").price_per_second
    assert job["cost"]["millicredits"] == 1 * local_price  # only what local delivered

    models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    gone = models[MODEL]
    assert gone["available"] is False and gone["route"] == "gemini"
    assert gone["unavailable_since"] is not None and gone["unavailable_until"] is not None
    assert gone["unavailable_reason"] == (
        "marked unavailable: its provider answered HTTP 404 model_gone: the model is not "
        "served there"
    )
    assert models["veo-3-1"]["available"] is True  # another upstream id: not marked

    # the mark holds for the next job: skipped without asking Google again
    creates = len(upstream.app.state.gemini.received)
    again = await submit_and_wait(
        client, "a second lighthouse", fallback=["local"], resolution="360p", duration_seconds=1
    )
    assert outcomes(again) == [(MODEL, "gone"), ("local", "completed")]
    assert len(upstream.app.state.gemini.received) == creates
    # and a request with nothing else to run on is refused up front, not queued to fail
    refused = await client.post(
        "/v1/videos", json={"model": MODEL, "prompt": "x", "duration_seconds": 1}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "model_unavailable"


async def test_a_model_retired_on_its_route_is_refused_naming_the_date(
    client: httpx.AsyncClient, rt: Runtime, upstream: EmulatorServer
) -> None:
    rt.providers.providers["veo"] = VeoProvider(
        HttpDeployment(
            f"{upstream.url}/v1beta",
            KEY,
            timeout_seconds=10,
            downloads=LOOPBACK_DOWNLOADS,
        )
    )
    resp = await client.post("/v1/videos", json={"model": "veo-3-1", "prompt": "x"})
    assert resp.status_code == 410
    error = resp.json()["error"]
    assert (error["code"], error["retired_at"], error["param"]) == (
        "model_retired",
        "2026-10-22",
        "model",
    )
    assert "gemini route" in error["message"]
    models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    assert models["veo-3-1"]["lifecycle"] == "retired"
    assert models["veo-3-1"]["available"] is False
    routes = models["veo-3-1"]["routes"]
    assert routes["vertex"] == {
        "upstream_model": "veo-3.1-generate-001",
        "lifecycle": "ga",
        "deprecated_at": None,
        "retires_at": None,
        "provider": "veo",
        "state": "not_configured",  # this deployment is the Gemini one
        "emulated": False,
        "cooling_until": None,
        "unavailable_until": None,
        "cost_per_second": 40_000,  # Google's $0.40/s at one US cent a credit
    }
    assert routes["gemini"]["state"] == "retired"
    assert (routes["fal"]["provider"], routes["fal"]["state"]) == ("fal", "not_configured")
    assert next(iter(routes)) == "gemini"  # the routes serving it here come first


async def test_a_retired_model_with_a_fallback_is_skipped_not_failed(
    client: httpx.AsyncClient, rt: Runtime, worker: Worker, upstream: EmulatorServer
) -> None:
    rt.providers.providers["veo"] = VeoProvider(
        HttpDeployment(
            f"{upstream.url}/v1beta", KEY, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS
        )
    )
    quick(rt)
    resp = await client.post(
        "/v1/videos",
        json={
            "model": "veo-3-1",
            "prompt": "a lighthouse",
            "fallback": ["local"],
            "duration_seconds": 4,
            "resolution": "720p",
        },
    )
    assert resp.status_code == 202, resp.text
    seen = await wait_for_status(client, resp.json()["id"], {"completed", "failed"}, timeout=30)
    job = seen[-1]
    assert job["status"] == "completed" and job["delivered_by"] == "local"
    assert outcomes(job) == [("veo-3-1", "gone"), ("local", "completed")]
    assert "retired on its gemini route on 2026-10-22" in job["attempts"][0]["error"]["message"]
    assert not upstream.app.state.gemini.received  # Google was never asked
