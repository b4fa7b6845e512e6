"""The whole gateway in front of the fal and Replicate emulators (and DashScope's, for
Wan 2.5's own route): models with several routes, and providers calling back.

The gateway listens on a real loopback port (its public URL) so the emulators' signed
webhooks reach it; a worker runs in the same loop. Safety-net polls are set far apart
(30 s), so a job that completes within seconds was driven by its provider's call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image

from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.fal import FalEmulator
from reelgate.emulators.fal import emulator_of as fal_of
from reelgate.emulators.replicate import ReplicateEmulator, sign_webhook
from reelgate.emulators.replicate import emulator_of as replicate_of
from reelgate.emulators.sora import SoraEmulatorState, sign_event
from reelgate.emulators.sora import state_of as sora_state
from reelgate.emulators.wiring import emulated_settings
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, set_flags
from tests.conftest import TEST_KEY, free_port, wait_for_status

KINDS = ("fal", "replicate", "wan", "sora")
SAFETY_POLL_SECONDS = 30.0


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EmulatorServer]]:
    videos = tmp_path_factory.mktemp("hosted-videos")
    with contextlib.ExitStack() as stack:
        yield {
            kind: stack.enter_context(
                run_emulator(
                    kind,
                    EmulatorConfig(api_key=f"emulator-{kind}", job_seconds=0.6, video_dir=videos),
                )
            )
            for kind in KINDS
        }


@dataclass
class Gateway:
    rt: Runtime
    client: httpx.AsyncClient
    url: str
    fal: FalEmulator
    replicate: ReplicateEmulator
    sora: SoraEmulatorState

    async def run(self, body: dict[str, Any], timeout: float = 20.0) -> dict[str, Any]:
        made = await self.client.post("/v1/videos", json=body)
        assert made.status_code == 202, made.text
        seen = await wait_for_status(
            self.client, made.json()["id"], {"completed", "failed", "canceled"}, timeout
        )
        return seen[-1]


@contextlib.asynccontextmanager
async def gateway(
    settings: Settings,
    servers: dict[str, EmulatorServer],
    *,
    typical_seconds: float = 20.0,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    """The gateway on a loopback port with a worker. With a provider calling back, a job
    is polled once at ``typical_seconds`` after its create and then every 30 s, so a
    job done sooner than that was driven by the provider's call (the emulators render
    a result, seconds on a busy machine, before they call)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # with a public URL, the Sora emulator's project webhook is pointed at this gateway
    configured = emulated_settings(settings.updated(public_url=url), servers).updated(
        webhook_safety_poll_seconds=SAFETY_POLL_SECONDS, **overrides
    )
    rt = await build_runtime(configured, public_url=url, emulated=frozenset(servers))
    rt.catalog.replace(
        [
            dataclasses.replace(s, poll_interval_seconds=0.2, typical_seconds=typical_seconds)
            for s in rt.catalog
        ]
    )
    await ensure_dev_account(rt)
    async with rt.db.begin() as conn:
        await set_flags(conn, DEV_ACCOUNT_ID, allowed_models=rt.catalog.ids(), prc_opt_in=True)
    api = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(api.serve())
    while not api.started:
        await asyncio.sleep(0.01)
    wk = Worker.from_runtime(rt, concurrency=4, lease_seconds=10, idle_poll_seconds=0.2)
    working = asyncio.create_task(wk.run())
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=30
        ) as client:
            yield Gateway(
                rt,
                client,
                url,
                fal_of(servers["fal"]),
                replicate_of(servers["replicate"]),
                sora_state(servers["sora"].app),
            )
    finally:
        wk.stop()
        await asyncio.wait_for(working, 30)
        api.should_exit = True
        await asyncio.wait_for(serving, 10)
        await rt.aclose()


@pytest.fixture
async def gw(settings: Settings, upstreams: dict[str, EmulatorServer]) -> AsyncIterator[Gateway]:
    async with gateway(settings, upstreams) as g:
        yield g


def _attempts(job: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(a["model"], a["provider"], a["outcome"]) for a in job["attempts"]]


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 40, 40)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fal_request(g: Gateway, prompt: str) -> dict[str, Any]:
    return next(r for r in reversed(g.fal.received) if r["input"].get("prompt") == prompt)


def _replicate_request(g: Gateway, prompt: str) -> dict[str, Any]:
    return next(r for r in reversed(g.replicate.received) if r["input"].get("prompt") == prompt)


def _prediction_id(job: dict[str, Any]) -> str:
    upstream_id: str = job["attempts"][-1]["upstream_id"]
    return upstream_id


# ── through each platform: text and image to video, with the provider calling back ──


@pytest.mark.parametrize("kind", ["fal", "replicate"])
async def test_text_to_video_completes_from_the_providers_call_without_a_poll(
    kind: str, settings: Settings, upstreams: dict[str, EmulatorServer]
) -> None:
    async with gateway(settings, upstreams, provider_priority={kind: 0}) as g:
        prompt = f"a paper boat on a river, {kind} text"
        started = time.monotonic()
        job = await g.run({"model": "kling-2-5-turbo", "prompt": prompt, "duration_seconds": 10})
        took = time.monotonic() - started
        async with g.rt.store.reading() as tx:
            stored = await tx.get_job(job["id"])
        route_cost = g.rt.catalog.get("kling-2-5-turbo").route(kind).cost_per_second
        today = datetime.now(UTC).date().isoformat()
        summary = (
            await g.client.get("/v1/usage/summary", params={"start": today, "end": today})
        ).json()
    assert job["status"] == "completed", job
    # what the route cost upstream: its list cost x the seconds the provider reported
    assert stored is not None and stored.delivered_route == kind
    assert route_cost is not None and stored.upstream_cost == route_cost * 10
    # the summary: revenue, upstream cost and margin of that model on that route today
    (day,) = [d for d in summary["data"] if d["model"] == "kling-2-5-turbo"]
    assert (day["route"], day["costed_jobs"]) == (kind, 1)
    assert day["upstream_cost_millicredits"] == route_cost * 10
    assert day["margin_millicredits"] == 10 * 7_000 - route_cost * 10
    assert _attempts(job) == [("kling-2-5-turbo", kind, "completed")]
    assert job["attempts"][0]["route"] == kind
    assert job["result"]["mirror_status"] == "stored"
    assert job["cost"]["millicredits"] == 10 * 7_000  # $0.07/s at one US cent a credit
    # the call brought the video: far sooner than the 30 s safety poll, and no poll
    assert took < SAFETY_POLL_SECONDS / 2
    if kind == "fal":
        sent = _fal_request(g, prompt)
        assert sent["app_id"] == "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
        assert sent["input"]["duration"] == "10"  # fal's string enum
        assert sent["input"]["aspect_ratio"] == "16:9"
        assert sent["fal_webhook"].startswith(f"{g.url}/v1/provider-hooks/fal/{job['id']}?")
        request_id = _prediction_id(job).rsplit("/", 1)[-1]
        assert g.fal.polls(request_id) == 0, [(d.status_code, d.attempt) for d in g.fal.deliveries]
    else:
        sent = _replicate_request(g, prompt)
        assert sent["_path"] == "/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions"
        assert sent["input"]["duration"] == 10
        assert sent["webhook_events_filter"] == ["completed"]
        assert g.replicate.polls_of(_prediction_id(job)) == 0


@pytest.mark.parametrize("kind", ["fal", "replicate"])
async def test_image_to_video_goes_to_the_image_app_with_its_own_field(
    kind: str, settings: Settings, upstreams: dict[str, EmulatorServer]
) -> None:
    async with gateway(settings, upstreams, provider_priority={kind: 0}) as g:
        prompt = f"the red card flutters away, {kind} image"
        job = await g.run(
            {
                "model": "hailuo-02",
                "prompt": prompt,
                "image": _png(),
                "duration_seconds": 6,
                "resolution": "768p",
            }
        )
    assert job["status"] == "completed", job
    assert _attempts(job) == [("hailuo-02", kind, "completed")]
    if kind == "fal":
        sent = _fal_request(g, prompt)
        assert sent["app_id"] == "fal-ai/minimax/hailuo-02/standard/image-to-video"
        assert sent["input"]["image_url"].startswith("data:image/png;base64,")
        assert sent["input"]["resolution"] == "768P"
        assert sent["input"]["duration"] == "6"
    else:
        sent = _replicate_request(g, prompt)
        assert sent["input"]["first_frame_image"].startswith("data:image/png;base64,")
        assert sent["input"]["resolution"] == "768p"
        assert sent["input"]["duration"] == 6


# ── several routes per model ───────────────────────────────────────────────────────


async def test_a_quota_answer_on_one_route_is_taken_by_the_models_other_route(
    gw: Gateway,
) -> None:
    """Wan 2.5: fal is its cheapest route; fal answers 429, DashScope (its own route,
    next in catalog order) renders it, and no other model is tried (none is named)."""
    job = await gw.run(
        {"model": "wan-2-5", "prompt": "dunes at dawn [fault:quota@fal]", "resolution": "720p"}
    )
    assert job["status"] == "completed", job
    assert job["delivered_by"] == "wan-2-5"
    assert _attempts(job) == [
        ("wan-2-5", "fal", "quota"),
        ("wan-2-5", "wan", "completed"),
    ]
    assert job["attempts"][1]["route"] == "intl"
    models = {m["id"]: m for m in (await gw.client.get("/v1/models")).json()["data"]}
    routes = models["wan-2-5"]["routes"]
    assert routes["fal"]["state"] == "cooling" and routes["fal"]["cooling_until"]
    assert routes["replicate"]["state"] == "available"
    assert routes["intl"]["state"] == "available"  # DashScope (international)
    assert models["wan-2-5"]["available"] is True
    # the next job skips the cooling route without asking it
    asked = len(gw.fal.received)
    again = await gw.run({"model": "wan-2-5", "prompt": "dunes at noon", "resolution": "720p"})
    assert _attempts(again) == [("wan-2-5", "wan", "completed")]
    assert len(gw.fal.received) == asked


async def test_every_route_out_of_quota_then_the_next_model(gw: Gateway) -> None:
    job = await gw.run(
        {
            "model": "kling-2-5-turbo",
            "prompt": "a kite [fault:quota@fal] [fault:quota@replicate]",
            "fallback": ["local"],
            "duration_seconds": 5,
        }
    )
    assert job["status"] == "completed", job
    assert _attempts(job) == [
        ("kling-2-5-turbo", "fal", "quota"),
        ("kling-2-5-turbo", "replicate", "quota"),
        ("local", "local", "completed"),
    ]
    assert job["delivered_by"] == "local"


@pytest.mark.parametrize("kind", ["fal", "replicate"])
async def test_a_refusal_is_never_retried_on_another_route_or_model(
    kind: str, settings: Settings, upstreams: dict[str, EmulatorServer]
) -> None:
    async with gateway(settings, upstreams, provider_priority={kind: 0}) as g:
        before = len(g.fal.received) + len(g.replicate.received)
        job = await g.run(
            {
                "model": "seedance-1-pro",
                "prompt": f"something awful [fault:refuse@{kind}]",
                "fallback": ["kling-2-5-turbo"],
            }
        )
        after = len(g.fal.received) + len(g.replicate.received)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "refused"
    assert _attempts(job) == [("seedance-1-pro", kind, "refused")]
    assert after - before == 1  # one create, on one route
    assert job["cost"]["millicredits"] == 0


@pytest.mark.parametrize("kind", ["fal", "replicate"])
async def test_cancel_reaches_the_route_the_job_runs_on(
    kind: str, settings: Settings, upstreams: dict[str, EmulatorServer]
) -> None:
    async with gateway(settings, upstreams, provider_priority={kind: 0}) as g:
        made = await g.client.post(
            "/v1/videos", json={"model": "pixverse-v5", "prompt": f"forever [fault:never] {kind}"}
        )
        job_id = made.json()["id"]
        await wait_for_status(g.client, job_id, {"in_progress"})
        for _ in range(100):
            job = (await g.client.get(f"/v1/videos/{job_id}")).json()
            if job["attempts"] and job["attempts"][-1]["upstream_id"]:
                break
            await asyncio.sleep(0.05)
        upstream_id = _prediction_id(job)
        canceled = await g.client.post(f"/v1/videos/{job_id}/cancel")
        assert canceled.status_code == 200, canceled.text
        final = await wait_for_status(g.client, job_id, {"canceled"})
        if kind == "fal":
            cancels = [c for c in g.fal.calls if c[0] == "PUT" and c[1].endswith("/cancel")]
            assert any(upstream_id.endswith(str(c[2])) for c in cancels)
        else:
            assert ("POST", f"/v1/predictions/{upstream_id}/cancel") in g.replicate.calls
    assert final[-1]["cost"]["millicredits"] == 0


# ── provider calls: forged, replayed, stale ────────────────────────────────────────


@pytest.mark.parametrize("kind", ["fal", "replicate"])
async def test_a_forged_or_replayed_call_changes_nothing(
    kind: str, settings: Settings, upstreams: dict[str, EmulatorServer]
) -> None:
    """A job whose provider never calls back: a forged call (bad signature, wrong
    secret, a URL for another job) is refused and the job keeps waiting for its safety
    poll; a genuine call is accepted once, and its replay changes nothing."""
    async with gateway(settings, upstreams, provider_priority={kind: 0}) as g:
        await _forged_and_replayed(g, kind)


async def _forged_and_replayed(gw: Gateway, kind: str) -> None:
    prompt = f"no call back [fault:nohook@{kind}]"
    made = await gw.client.post("/v1/videos", json={"model": "kling-2-5-turbo", "prompt": prompt})
    job_id = made.json()["id"]
    for _ in range(200):
        job = (await gw.client.get(f"/v1/videos/{job_id}")).json()
        if job["attempts"] and job["attempts"][-1]["upstream_id"]:
            break
        await asyncio.sleep(0.05)
    assert job["attempts"][-1]["provider"] == kind
    prediction = _prediction_id(job)
    await asyncio.sleep(1.0)  # it has finished upstream by now; no call came
    assert (await gw.client.get(f"/v1/videos/{job_id}")).json()["status"] == "in_progress"

    hook = next(
        r.get("webhook") or r.get("fal_webhook")
        for r in reversed([*gw.replicate.received, *gw.fal.received])
        if (r.get("input") or {}).get("prompt") == prompt
    )
    assert hook is not None
    path = hook.removeprefix(gw.url)
    body = json.dumps(
        {"id": prediction, "status": "succeeded", "output": "https://evil.example/x.mp4"}
    ).encode()
    now = int(time.time())

    async def post(url: str, headers: dict[str, str]) -> httpx.Response:
        return await gw.client.post(url, content=body, headers=headers)

    if kind == "replicate":
        forged = sign_webhook("whsec_" + base64.b64encode(b"x" * 24).decode(), "msg_f", now, body)
        refused = await post(
            path,
            {"webhook-id": "msg_f", "webhook-timestamp": str(now), "webhook-signature": forged},
        )
    else:
        refused = await post(
            path,
            {
                "x-fal-webhook-request-id": prediction.rsplit("/", 1)[-1],
                "x-fal-webhook-user-id": "u",
                "x-fal-webhook-timestamp": str(now),
                "x-fal-webhook-signature": "00" * 64,
            },
        )
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_webhook"
    # the URL's own signature names this job: another job id, or no signature, is refused
    other = path.replace(job_id, "video_" + "0" * 32)
    assert (await post(other, {})).status_code == 403
    assert (await post(path.split("?")[0], {})).status_code == 403
    after = (await gw.client.get(f"/v1/videos/{job_id}")).json()
    assert after["status"] == "in_progress" and after["result"] is None

    if kind == "replicate":
        # the emulator's own signed delivery, replayed by an attacker: accepted once
        upstream = gw.replicate.predictions[prediction]
        genuine = json.dumps(gw.replicate.prediction_json(upstream)).encode()
        headers = {
            "webhook-id": "msg_genuine",
            "webhook-timestamp": str(now),
            "webhook-signature": sign_webhook(gw.replicate.secret, "msg_genuine", now, genuine),
        }
        first = await gw.client.post(path, content=genuine, headers=headers)
        assert first.status_code == 202, first.text
        replay = await gw.client.post(path, content=genuine, headers=headers)
        assert replay.json()["status"] == "duplicate"
        stale_at = now - 600
        stale = {
            "webhook-id": "msg_stale",
            "webhook-timestamp": str(stale_at),
            "webhook-signature": sign_webhook(gw.replicate.secret, "msg_stale", stale_at, genuine),
        }
        assert (await gw.client.post(path, content=genuine, headers=stale)).status_code == 401
    else:
        # fal's genuine delivery (signed with the emulator's key), replayed: once
        upstream_job = gw.fal.jobs[prediction.rsplit("/", 1)[-1]]
        genuine = await asyncio.to_thread(gw.fal.webhook_body, upstream_job)
        headers = gw.fal.signed_headers(upstream_job.id, genuine, now)
        first = await gw.client.post(path, content=genuine, headers=headers)
        assert first.status_code == 202, first.text
        replay = await gw.client.post(path, content=genuine, headers=headers)
        assert replay.json()["status"] == "duplicate"
    done = await wait_for_status(gw.client, job_id, {"completed"}, 10)
    assert done[-1]["result"]["mirror_status"] == "stored"
    if kind == "replicate":
        assert gw.replicate.polls_of(prediction) == 0
    else:
        assert gw.fal.polls(prediction.rsplit("/", 1)[-1]) == 0


# ── an OpenAI-compatible upstream: one project endpoint, video.completed / video.failed ──


async def test_an_openai_compatible_upstream_calls_its_project_endpoint_and_one_poll_follows(
    gw: Gateway,
) -> None:
    started = time.monotonic()
    job = await gw.run({"model": "sora-2", "prompt": "a tram crossing a bridge at night"})
    took = time.monotonic() - started
    assert job["status"] == "completed", job
    assert _attempts(job) == [("sora-2", "sora", "completed")]
    video_id = job["attempts"][-1]["upstream_id"]
    calls = [d for d in gw.sora.deliveries if d["video"] == video_id]
    assert [(c["type"], c["status"]) for c in calls] == [("video.completed", 202)]
    assert calls[0]["url"] == f"{gw.url}/v1/provider-hooks/sora"
    # the event names the video only: the one poll it brings forward reads the result
    assert gw.sora.videos[video_id].polls == 1
    assert took < SAFETY_POLL_SECONDS / 2


async def test_a_forged_or_replayed_project_call_changes_nothing(gw: Gateway) -> None:
    made = await gw.client.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "no event [fault:nohook] a heron"}
    )
    job_id = made.json()["id"]
    for _ in range(200):
        job = (await gw.client.get(f"/v1/videos/{job_id}")).json()
        if job["attempts"] and job["attempts"][-1]["upstream_id"]:
            break
        await asyncio.sleep(0.05)
    video_id = _prediction_id(job)
    await asyncio.sleep(1.0)  # done upstream by now; no event came, no poll is due yet
    assert (await gw.client.get(f"/v1/videos/{job_id}")).json()["status"] == "in_progress"
    now = int(time.time())
    body = json.dumps(
        {
            "id": "evt_forged",
            "object": "event",
            "created_at": now,
            "type": "video.completed",
            "data": {"id": video_id},
        }
    ).encode()

    def signed(secret: str, event_id: str, at: int) -> dict[str, str]:
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(at),
            "webhook-signature": sign_event(secret, event_id, at, body),
        }

    hook = "/v1/provider-hooks/sora"
    wrong = "whsec_" + base64.b64encode(b"y" * 24).decode()
    refused = await gw.client.post(hook, content=body, headers=signed(wrong, "evt_forged", now))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_webhook"
    stale = signed(gw.sora.webhook_secret, "evt_stale", now - 600)
    assert (await gw.client.post(hook, content=body, headers=stale)).status_code == 401
    # a provider that calls back per job has no project endpoint
    assert (await gw.client.post("/v1/provider-hooks/fal", content=body)).status_code == 404
    after = (await gw.client.get(f"/v1/videos/{job_id}")).json()
    assert after["status"] == "in_progress" and after["result"] is None
    assert gw.sora.videos[video_id].polls == 0

    genuine = signed(gw.sora.webhook_secret, "evt_genuine", now)
    first = await gw.client.post(hook, content=body, headers=genuine)
    assert first.status_code == 202, first.text
    replay = await gw.client.post(hook, content=body, headers=genuine)
    assert replay.json()["status"] == "duplicate"
    done = await wait_for_status(gw.client, job_id, {"completed"}, 10)
    assert done[-1]["result"]["mirror_status"] == "stored"
    assert gw.sora.videos[video_id].polls == 1
    # a genuine event about a video no job runs is answered and ignored
    other = body.replace(video_id.encode(), b"video_" + b"0" * 32)
    ignored = await gw.client.post(
        hook,
        content=other,
        headers={
            "webhook-id": "evt_other",
            "webhook-timestamp": str(now),
            "webhook-signature": sign_event(gw.sora.webhook_secret, "evt_other", now, other),
        },
    )
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"


async def test_a_call_that_beats_the_creates_answer_is_retried_then_one_early_poll_bounds_it(
    settings: Settings, upstreams: dict[str, EmulatorServer]
) -> None:
    """fal finished and called while its submit's answer was still on its way (held 5 s
    by the emulator): the call is answered 503 and not recorded, so a retry would be
    taken; once fal's retries are spent, the job's first poll, at the model's typical
    time rather than the safety interval, picks the video up."""
    async with gateway(settings, upstreams, provider_priority={"fal": 0}) as g:
        job = await g.run(
            {
                "model": "kling-2-5-turbo",
                "prompt": "quicker than its answer [fault:slow-create@fal]",
            },
            timeout=30,
        )
        request_id = _prediction_id(job).rsplit("/", 1)[-1]
        calls = [d.status_code for d in g.fal.deliveries if d.request_id == request_id]
        polls = g.fal.polls(request_id)
    assert job["status"] == "completed", job
    assert _attempts(job) == [("kling-2-5-turbo", "fal", "completed")]
    assert calls and set(calls[:-1]) <= {503} and calls[0] == 503, calls
    if calls[-1] == 202:
        # a machine so busy that fal's last retry came after the answer was stored: that
        # retry delivered the video, and the poll may or may not have come first
        assert polls <= 1
    else:
        assert calls[-1] == 503 and polls == 1, (calls, polls)


async def test_a_quota_answer_on_replicate_is_taken_by_the_fal_route(
    settings: Settings, upstreams: dict[str, EmulatorServer]
) -> None:
    """The same move the other way: Replicate first (operator priority), its 429, fal."""
    async with gateway(settings, upstreams, provider_priority={"replicate": 0}) as g:
        job = await g.run(
            {"model": "kling-2-5-turbo", "prompt": "a lantern [fault:quota@replicate]"}
        )
    assert job["status"] == "completed", job
    assert _attempts(job) == [
        ("kling-2-5-turbo", "replicate", "quota"),
        ("kling-2-5-turbo", "fal", "completed"),
    ]


async def test_a_parameter_a_hosted_model_lacks_is_a_400_naming_what_it_takes(
    gw: Gateway,
) -> None:
    """Kling renders 1080p only, 5 or 10 s, and no seed (on either route)."""
    asked = len(gw.fal.received) + len(gw.replicate.received)
    for extra, field, allowed in (
        ({"resolution": "480p"}, "resolution", ["1080p"]),
        ({"duration_seconds": 7}, "duration_seconds", [5, 10]),
    ):
        answer = await gw.client.post(
            "/v1/videos", json={"model": "kling-2-5-turbo", "prompt": "a kite", **extra}
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["param"] == field, error
        assert error["allowed"] == allowed, error
    assert len(gw.fal.received) + len(gw.replicate.received) == asked  # nothing sent
