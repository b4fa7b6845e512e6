"""The Replicate adapter against the Replicate emulator on loopback: routes, each model's
input names, outcomes, faults, lost creates and signed webhooks."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.replicate import ReplicateEmulator, emulator_of
from reelgate.errors import (
    InvalidRequest,
    ModelGone,
    NotAVideo,
    ProviderError,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.media.probe import VideoInfo, probe_video
from reelgate.providers.base import (
    FindsLostCreates,
    GenerationRequest,
    ImageInput,
    Provider,
    ReceivesWebhooks,
    ResultLocation,
    UpstreamState,
    UpstreamStatus,
    WebhookRejected,
)
from reelgate.providers.http import HttpDeployment
from reelgate.providers.replicate import PLUGIN, ReplicateProvider, sign_webhook
from tests.conftest import LOOPBACK_DOWNLOADS

KEY = "r8_emulated0123456789abcdef"
JOB_SECONDS = 0.5


@dataclass
class Upstream:
    server: EmulatorServer
    emulator: ReplicateEmulator
    provider: ReplicateProvider

    def provider_with_key(self, key: str, **kwargs: Any) -> ReplicateProvider:
        return ReplicateProvider(
            HttpDeployment(
                base_url=f"{self.server.url}/v1", api_key=key, downloads=LOOPBACK_DOWNLOADS
            ),
            **kwargs,
        )


@dataclass
class Hooks:
    """A receiver for the emulator's webhooks: records each call; answers 500 to the
    first ``fail_first`` calls."""

    server: EmulatorServer
    calls: list[tuple[dict[str, str], bytes]]
    fail_first: list[int]


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replicate-videos")


@pytest.fixture(scope="module")
def emulated(video_dir: Path) -> Iterator[tuple[EmulatorServer, ReplicateEmulator]]:
    config = EmulatorConfig(api_key=KEY, job_seconds=JOB_SECONDS, video_dir=video_dir)
    with run_emulator("replicate", config) as server:
        yield server, emulator_of(server)


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    calls: list[tuple[dict[str, str], bytes]] = []
    fail_first = [0]

    async def receive(request: Request) -> Response:
        calls.append((dict(request.headers), await request.body()))
        if fail_first[0] > 0:
            fail_first[0] -= 1
            return Response("busy", 500)
        return Response(status_code=204)

    server = EmulatorServer(Starlette(routes=[Route("/hook/{job}", receive, methods=["POST"])]))
    server.start()
    try:
        yield Hooks(server, calls, fail_first)
    finally:
        server.stop()


@pytest.fixture
async def upstream(
    emulated: tuple[EmulatorServer, ReplicateEmulator],
) -> AsyncIterator[Upstream]:
    server, emulator = emulated
    emulator.received.clear()
    emulator.offset = 0.0
    provider = ReplicateProvider(
        HttpDeployment(base_url=f"{server.url}/v1", api_key=KEY, downloads=LOOPBACK_DOWNLOADS)
    )
    yield Upstream(server, emulator, provider)
    await provider.aclose()


def _request(prompt: str, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "job_id": "video_test",
        "attempt": 1,
        "model": "kling-2.5-turbo-pro",
        "upstream_model": "kwaivgi/kling-v2.5-turbo-pro",
        "prompt": prompt,
        "duration_seconds": 5,
        "resolution": "1080p",
        "aspect_ratio": "16:9",
        "width": 1920,
        "height": 1080,
    }
    return GenerationRequest(**(fields | overrides))


async def _until_done(provider: Provider, upstream_id: str) -> list[UpstreamStatus]:
    seen: list[UpstreamStatus] = []
    for _ in range(100):
        status = await provider.status(upstream_id)
        seen.append(status)
        if status.state is UpstreamState.SUCCEEDED:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"never finished: {seen[-1]}")


async def _download(provider: Provider, result: ResultLocation) -> bytes:
    return b"".join([chunk async for chunk in provider.download(result)])


def _probe(data: bytes, tmp_path: Path) -> VideoInfo:
    path = tmp_path / "result.mp4"
    path.write_bytes(data)
    return probe_video(path)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 30)).save(buf, format="PNG")
    return buf.getvalue()


# -- routes, inputs, outcomes ---------------------------------------------------------


async def test_text_to_video_progresses_and_ends_in_a_real_mp4_that_expires_in_an_hour(
    upstream: Upstream, tmp_path: Path
) -> None:
    submitted = await upstream.provider.create(_request("a lighthouse at dusk"))
    assert len(submitted.upstream_id) == 26
    seen = await _until_done(upstream.provider, submitted.upstream_id)
    states = [s.state for s in seen]
    assert states[0] is UpstreamState.PENDING, "a fresh prediction is starting"
    assert UpstreamState.RUNNING in states, "processing shows between starting and succeeded"
    running = [s.progress for s in seen if s.state is UpstreamState.RUNNING]
    assert all(p is not None and 0 < p < 100 for p in running), "progress read from the logs"
    done = seen[-1]
    assert done.result is not None and done.result.expires_at is not None
    assert done.extra["upstream_model"] == "kwaivgi/kling-v2.5-turbo-pro"
    remaining = done.result.expires_at - datetime.now(UTC)
    assert timedelta(minutes=59) < remaining <= timedelta(hours=1)
    assert done.result.url.startswith(upstream.server.url + "/xezq/")
    info = _probe(await _download(upstream.provider, done.result), tmp_path)
    assert (info.width, info.height) == (640, 360)
    assert abs(info.duration_seconds - 5.0) <= 0.3
    assert upstream.emulator.polls_of(submitted.upstream_id) == len(seen)


@pytest.mark.parametrize(
    ("upstream_model", "overrides", "path", "expected"),
    [
        (
            "kwaivgi/kling-v2.5-turbo-pro",
            {"negative_prompt": "blur", "seed": 7},
            "/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions",
            {"prompt": "p", "duration": 5, "aspect_ratio": "16:9", "negative_prompt": "blur"},
        ),
        (
            "bytedance/seedance-1-pro",
            {"duration_seconds": 7, "resolution": "720P", "aspect_ratio": "21:9", "seed": 7},
            "/v1/models/bytedance/seedance-1-pro/predictions",
            {"prompt": "p", "duration": 7, "resolution": "720p", "aspect_ratio": "21:9", "seed": 7},
        ),
        (
            "minimax/hailuo-02",
            {"duration_seconds": 6, "resolution": "768p", "seed": 7},
            "/v1/models/minimax/hailuo-02/predictions",
            {"prompt": "p", "duration": 6, "resolution": "768p"},
        ),
        (
            "pixverse/pixverse-v5",
            {"duration_seconds": 8, "resolution": "540p", "negative_prompt": "rain", "seed": 3},
            "/v1/models/pixverse/pixverse-v5/predictions",
            {
                "prompt": "p",
                "duration": 8,
                "quality": "540p",
                "aspect_ratio": "16:9",
                "negative_prompt": "rain",
                "seed": 3,
            },
        ),
        (
            "wan-video/wan-2.5-t2v",
            {"resolution": "720p", "aspect_ratio": "9:16", "seed": 11},
            "/v1/models/wan-video/wan-2.5-t2v/predictions",
            {"prompt": "p", "duration": 5, "size": "720*1280", "seed": 11},
        ),
        (
            "google/veo-3.1-fast",
            {"duration_seconds": 8, "resolution": "720p", "negative_prompt": "text"},
            "/v1/models/google/veo-3.1-fast/predictions",
            {
                "prompt": "p",
                "duration": 8,
                "resolution": "720p",
                "aspect_ratio": "16:9",
                "negative_prompt": "text",
            },
        ),
    ],
)
async def test_each_model_gets_its_own_input_names_and_values(
    upstream: Upstream,
    upstream_model: str,
    overrides: dict[str, Any],
    path: str,
    expected: dict[str, Any],
) -> None:
    request = _request("p", upstream_model=upstream_model, **overrides)
    submitted = await upstream.provider.create(request)
    [body] = upstream.emulator.received
    assert body == {"input": expected, "_path": path}, "no Prefer: wait, no webhook, no extras"
    assert submitted.upstream_id in upstream.emulator.predictions


async def test_image_to_video_sends_a_data_uri_in_the_models_image_field(
    upstream: Upstream, tmp_path: Path
) -> None:
    png = _png(320, 180)
    image = ImageInput(data=png, mime_type="image/png")
    for model, field_name in (
        ("kwaivgi/kling-v2.5-turbo-pro", "start_image"),
        ("minimax/hailuo-02", "first_frame_image"),
        ("google/veo-3.1", "image"),
    ):
        overrides: dict[str, Any] = {"upstream_model": model, "image": image}
        if model == "minimax/hailuo-02":
            overrides |= {"duration_seconds": 6, "resolution": "768p"}
        if model == "google/veo-3.1":
            overrides |= {"duration_seconds": 4}
        await upstream.provider.create(_request("the sky moves", **overrides))
        sent = upstream.emulator.received[-1]["input"]
        assert sent[field_name] == "data:image/png;base64," + base64.b64encode(png).decode()
        # Kling takes the image's own aspect ratio; Veo keeps the requested one
        assert ("aspect_ratio" in sent) is (model == "google/veo-3.1")


async def test_wan_image_to_video_goes_to_its_separate_i2v_model(upstream: Upstream) -> None:
    url = "https://images.example/cat.jpg"
    request = _request(
        "cat", upstream_model="wan-video/wan-2.5-t2v", image=ImageInput(url=url), seed=5
    )
    submitted = await upstream.provider.create(request)
    [body] = upstream.emulator.received
    assert body["_path"] == "/v1/models/wan-video/wan-2.5-i2v/predictions"
    assert body["input"] == {
        "prompt": "cat",
        "duration": 5,
        "resolution": "1080p",
        "seed": 5,
        "image": url,
    }
    assert upstream.emulator.predictions[submitted.upstream_id].model == "wan-video/wan-2.5-i2v"


async def test_the_version_route_and_a_list_output(upstream: Upstream, tmp_path: Path) -> None:
    version = "5ddec822499d46d11a93a92ef87e26adefda6608279d9d35c454e50e5e298d92"
    request = _request(
        "a tracking shot of a beach",
        upstream_model=f"lightricks/ltx-video:{version}",
        aspect_ratio="3:2",
        duration_seconds=4,
        seed=1,
    )
    submitted = await upstream.provider.create(request)
    [body] = upstream.emulator.received
    assert body["_path"] == "/v1/predictions" and body["version"] == version
    assert body["input"] == {
        "prompt": "a tracking shot of a beach",
        "aspect_ratio": "3:2",
        "seed": 1,
    }
    done = (await _until_done(upstream.provider, submitted.upstream_id))[-1]
    raw = upstream.emulator.prediction_json(upstream.emulator.predictions[submitted.upstream_id])
    assert isinstance(raw["output"], list), "LTX Video answers a list of URLs"
    assert done.result is not None and done.result.url == raw["output"][0]
    assert _probe(await _download(upstream.provider, done.result), tmp_path).width > 0


async def test_an_unknown_model_or_version_is_gone(upstream: Upstream) -> None:
    with pytest.raises(ModelGone) as missing:
        await upstream.provider.create(_request("x", upstream_model="nobody/no-such-video"))
    assert missing.value.upstream_status == 404
    with pytest.raises(ModelGone) as version:
        await upstream.provider.create(
            _request("x", upstream_model="lightricks/ltx-video:" + "0" * 64)
        )
    assert version.value.upstream_status == 422


async def test_input_the_model_refuses_is_an_invalid_request_naming_the_field(
    upstream: Upstream,
) -> None:
    with pytest.raises(InvalidRequest) as exc:
        await upstream.provider.create(_request("x", duration_seconds=7))
    assert exc.value.upstream_status == 422
    assert "duration must be one of the following: 5, 10" in exc.value.message
    assert exc.value.details["invalid_fields"] == ["input.duration"]
    assert exc.value.details["upstream_title"] == "Input validation failed"


@pytest.mark.parametrize(
    ("upstream_model", "overrides", "seconds", "frame"),
    [
        (
            "kwaivgi/kling-v2.5-turbo-pro",
            {"duration_seconds": 10, "aspect_ratio": "1:1"},
            10,
            (360, 360),
        ),
        (
            "bytedance/seedance-1-pro",
            {"duration_seconds": 7, "resolution": "720p", "aspect_ratio": "21:9"},
            7,
            (840, 360),
        ),
        ("minimax/hailuo-02", {"duration_seconds": 10, "resolution": "768p"}, 10, (640, 360)),
        (
            "pixverse/pixverse-v5",
            {"duration_seconds": 8, "resolution": "540p", "aspect_ratio": "9:16"},
            8,
            (360, 640),
        ),
        (
            "wan-video/wan-2.5-t2v",
            {"duration_seconds": 10, "resolution": "720p", "aspect_ratio": "9:16"},
            10,
            (360, 640),
        ),
        (
            "google/veo-3.1-fast",
            {"duration_seconds": 4, "resolution": "720p", "aspect_ratio": "9:16"},
            4,
            (360, 640),
        ),
        pytest.param(
            "lightricks/ltx-video:5ddec822499d46d11a93a92ef87e26adefda6608279d9d35c454e50e5e298d92",
            {"duration_seconds": 8, "aspect_ratio": "16:9"},
            8,
            (640, 360),
            marks=pytest.mark.xfail(
                strict=True,
                reason="the adapter sends no `length` (frames) to LTX Video, so Replicate "
                "renders its default 97 frames (~4 s) whatever duration was asked",
            ),
        ),
    ],
)
async def test_the_delivered_video_is_what_the_models_own_schema_makes_of_the_input(
    upstream: Upstream,
    tmp_path: Path,
    upstream_model: str,
    overrides: dict[str, Any],
    seconds: int,
    frame: tuple[int, int],
) -> None:
    """The emulator reads the input with the model's own schema (a misnamed input gets
    the default): the delivered duration and frame show what the adapter really asked."""
    submitted = await upstream.provider.create(
        _request("what was asked", upstream_model=upstream_model, **overrides)
    )
    done = (await _until_done(upstream.provider, submitted.upstream_id))[-1]
    assert done.result is not None
    info = _probe(await _download(upstream.provider, done.result), tmp_path)
    assert abs(info.duration_seconds - seconds) <= 0.3, info
    assert (info.width, info.height) == frame


def test_the_emulator_validates_by_the_schema_and_ignores_unknown_inputs(
    emulated: tuple[EmulatorServer, ReplicateEmulator],
) -> None:
    server, emulator = emulated
    url = f"{server.url}/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions"
    auth = {"Authorization": f"Bearer {KEY}"}

    def create(given: dict[str, Any]) -> httpx.Response:
        return httpx.post(url, json={"input": given}, headers=auth, timeout=30)

    misnamed = create({"prompt": "p", "seconds": 10, "ratio": "9:16"})
    assert misnamed.status_code == 201, "unknown inputs are ignored, as Cog ignores them"
    prediction = emulator.predictions[misnamed.json()["id"]]
    assert (prediction.seconds, prediction.width, prediction.height) == (5, 640, 360)
    for given, kind, field_name in [
        ({"duration": 5}, "required", "input"),
        ({"prompt": "p", "duration": "5"}, "invalid_type", "input.duration"),
        ({"prompt": "p", "aspect_ratio": "4:3"}, "enum", "input.aspect_ratio"),
        ({"prompt": "p", "start_image": "not a uri"}, "format", "input.start_image"),
    ]:
        answer = create(given)
        assert answer.status_code == 422, given
        body = answer.json()
        assert body["title"] == "Input validation failed"
        assert [(f["type"], f["field"]) for f in body["invalid_fields"]] == [(kind, field_name)]
    seedance = f"{server.url}/v1/models/bytedance/seedance-1-pro/predictions"
    too_long = httpx.post(
        seedance, json={"input": {"prompt": "p", "duration": 13}}, headers=auth, timeout=30
    )
    assert too_long.status_code == 422
    assert too_long.json()["invalid_fields"][0]["type"] == "number_lte"


# -- failures ---------------------------------------------------------------------------


async def test_a_sensitive_content_failure_is_a_terminal_refusal(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:refuse] something"))
    with pytest.raises(Refused) as exc:
        await _until_done(upstream.provider, submitted.upstream_id)
    assert exc.value.terminal and "(E005)" in exc.value.message
    assert exc.value.details["upstream_id"] == submitted.upstream_id


async def test_a_failed_prediction_is_terminal_and_transient(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:fail] something"))
    with pytest.raises(TransientError) as exc:
        await _until_done(upstream.provider, submitted.upstream_id)
    assert exc.value.terminal and "code: PA" in exc.value.message


async def test_throttling_is_quota_with_retry_after(upstream: Upstream) -> None:
    with pytest.raises(QuotaExceeded) as exc:
        await upstream.provider.create(_request("[fault:quota] something"))
    assert exc.value.upstream_status == 429 and exc.value.retry_after == 30
    assert "throttled" in exc.value.message


async def test_insufficient_credit_is_quota(upstream: Upstream) -> None:
    with pytest.raises(QuotaExceeded) as exc:
        await upstream.provider.create(_request("[fault:credit] something"))
    assert exc.value.upstream_status == 402 and exc.value.code == "upstream_credits"
    assert "insufficient credit" in exc.value.message


async def test_a_503_burst_is_transient_then_the_create_goes_through(upstream: Upstream) -> None:
    for _ in range(2):
        with pytest.raises(TransientError) as exc:
            await upstream.provider.create(_request("[fault:5xx] something"))
        assert exc.value.upstream_status == 503
    submitted = await upstream.provider.create(_request("[fault:5xx] something"))
    assert (await _until_done(upstream.provider, submitted.upstream_id))[-1].result is not None


async def test_a_poll_answer_that_is_not_json_is_transient(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:malformed] something"))
    with pytest.raises(TransientError):
        await upstream.provider.status(submitted.upstream_id)
    assert (await _until_done(upstream.provider, submitted.upstream_id))[-1].result is not None


async def test_never_stays_running_and_cancel_ends_it_for_good(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:never] something"))
    await asyncio.sleep(JOB_SECONDS + 0.1)
    status = await upstream.provider.status(submitted.upstream_id)
    assert status.state is UpstreamState.RUNNING and status.progress == 50
    await upstream.provider.cancel(submitted.upstream_id)
    with pytest.raises(InvalidRequest) as exc:
        await upstream.provider.status(submitted.upstream_id)
    assert exc.value.code == "upstream_canceled" and exc.value.terminal


async def test_an_output_expires_after_one_download_or_an_hour(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:expire] something"))
    done = (await _until_done(upstream.provider, submitted.upstream_id))[-1]
    assert done.result is not None
    assert await _download(upstream.provider, done.result)
    with pytest.raises(InvalidRequest) as exc:
        await _download(upstream.provider, done.result)
    assert exc.value.code == "result_expired" and exc.value.upstream_status == 404

    later = await upstream.provider.create(_request("an ordinary one"))
    finished = (await _until_done(upstream.provider, later.upstream_id))[-1]
    assert finished.result is not None
    upstream.emulator.advance(3601)
    with pytest.raises(InvalidRequest) as removed:
        await upstream.provider.status(later.upstream_id)
    assert removed.value.code == "result_expired" and removed.value.terminal
    with pytest.raises(InvalidRequest):
        await _download(upstream.provider, finished.result)


async def test_download_faults(upstream: Upstream, tmp_path: Path) -> None:
    faults = ("slow", "truncate", "notvideo")
    ids = [(await upstream.provider.create(_request(f"[fault:{f}] x"))).upstream_id for f in faults]
    results: dict[str, ResultLocation] = {}
    for fault, upstream_id in zip(faults, ids, strict=True):
        done = (await _until_done(upstream.provider, upstream_id))[-1]
        assert done.result is not None
        results[fault] = done.result
    assert _probe(await _download(upstream.provider, results["slow"]), tmp_path).width == 640
    with pytest.raises(TransientError):
        await _download(upstream.provider, results["truncate"])
    with pytest.raises(NotAVideo):
        _probe(await _download(upstream.provider, results["notvideo"]), tmp_path)


@pytest.mark.parametrize("key", ["r8_wrong_4242424242424242", ""])
async def test_a_wrong_or_missing_token_is_upstream_auth_and_never_leaks(
    upstream: Upstream, key: str
) -> None:
    provider = upstream.provider_with_key(key)
    try:
        with pytest.raises(InvalidRequest) as exc:
            await provider.create(_request("a lighthouse"))
        with pytest.raises(InvalidRequest):
            await provider.verify()
    finally:
        await provider.aclose()
    error: ProviderError = exc.value
    assert error.code == "upstream_auth" and error.upstream_status == 401
    assert "REELGATE_REPLICATE_API_TOKEN" in error.message
    shown = f"{error} {error!r} {json.dumps(error.to_dict())} {provider!r}"
    if key:
        assert key not in shown
    assert KEY not in shown
    await upstream.provider.verify()  # the right token passes


async def test_from_settings_needs_the_token_and_reads_base_url_and_secret() -> None:
    assert PLUGIN.from_settings(Settings()) is None
    settings = Settings(
        replicate_api_token="r8_secret_123",
        replicate_base_url="http://127.0.0.1:9/v1",
        replicate_webhook_secret="whsec_AAAA",
        provider_timeout_seconds=12.5,
    )
    provider = PLUGIN.from_settings(settings)
    assert isinstance(provider, ReplicateProvider)
    assert isinstance(provider, Provider) and isinstance(provider, ReceivesWebhooks)
    assert isinstance(provider, FindsLostCreates)
    assert provider.supports_cancel and not provider.idempotent_create
    assert str(provider._client.base_url) == "http://127.0.0.1:9/v1/"
    assert provider._client.timeout.read == 12.5
    assert "r8_secret_123" not in repr(provider)
    assert "authorization" not in provider._files.headers
    await provider.aclose()


# -- lost creates -------------------------------------------------------------------


async def test_a_lost_create_is_found_by_model_and_prompt_across_pages(
    upstream: Upstream,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    request = _request("the one that was lost", upstream_model="bytedance/seedance-1-pro")
    lost = await upstream.provider.create(request)
    other_model = await upstream.provider.create(_request("the one that was lost"))
    twin = await upstream.provider.create(request)
    for i in range(3):
        await upstream.provider.create(_request(f"noise {i}"))
    upstream.emulator.page_size = 2
    try:
        found = await upstream.provider.find_created(request, since, frozenset())
        excluded = await upstream.provider.find_created(
            request, since, frozenset({lost.upstream_id})
        )
        later = await upstream.provider.find_created(
            request, datetime.now(UTC) + timedelta(seconds=5), frozenset()
        )
    finally:
        upstream.emulator.page_size = 100
    assert found == [lost.upstream_id, twin.upstream_id], "oldest first, same model only"
    assert other_model.upstream_id not in found
    assert excluded == [twin.upstream_id]
    assert later == []
    listed = [c for c in upstream.emulator.calls if c == ("GET", "/v1/predictions")]
    assert len(listed) >= 4, "it followed the cursor"


# -- webhooks -----------------------------------------------------------------------


async def _hook_call(hooks: Hooks, job: str) -> tuple[dict[str, str], bytes]:
    for _ in range(200):
        for headers, body in hooks.calls:
            if json.loads(body).get("id") == job:
                return headers, body
        await asyncio.sleep(0.02)
    raise AssertionError("no webhook arrived")


async def test_the_emulators_signed_webhook_verifies_and_says_final(
    upstream: Upstream, hooks: Hooks
) -> None:
    callback = f"{hooks.server.url}/hook/job1"
    submitted = await upstream.provider.create(_request("hooked", callback_url=callback))
    [body] = upstream.emulator.received
    assert body["webhook"] == callback and body["webhook_events_filter"] == ["completed"]
    headers, raw = await _hook_call(hooks, submitted.upstream_id)
    call = await upstream.provider.verify_webhook(headers, raw, time.time())
    assert call.upstream_id == submitted.upstream_id and call.final
    assert call.delivery_id == headers["webhook-id"]
    assert json.loads(raw)["status"] == "succeeded"
    assert ("GET", "/v1/webhooks/default/secret") in upstream.emulator.calls
    secret_reads = upstream.emulator.calls.count(("GET", "/v1/webhooks/default/secret"))
    await upstream.provider.verify_webhook(headers, raw, time.time())
    assert upstream.emulator.calls.count(("GET", "/v1/webhooks/default/secret")) == secret_reads


async def test_forged_tampered_stale_and_headerless_webhooks_are_rejected(
    upstream: Upstream, hooks: Hooks
) -> None:
    submitted = await upstream.provider.create(
        _request("hooked twice", callback_url=f"{hooks.server.url}/hook/job2")
    )
    headers, raw = await _hook_call(hooks, submitted.upstream_id)
    now = time.time()
    provider = upstream.provider
    forged = headers | {"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    with pytest.raises(WebhookRejected):
        await provider.verify_webhook(forged, raw, now)
    tampered = raw.replace(b'"succeeded"', b'"failed"')
    with pytest.raises(WebhookRejected):
        await provider.verify_webhook(headers, tampered, now)
    with pytest.raises(WebhookRejected) as stale:
        await provider.verify_webhook(headers, raw, now + 301)
    assert "tolerance" in stale.value.reason
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        without = {k: v for k, v in headers.items() if k != missing}
        with pytest.raises(WebhookRejected):
            await provider.verify_webhook(without, raw, now)
    for stamp in ("soon", "\u00b2", "1e9"):  # "²".isdigit() is True: ASCII digits only
        with pytest.raises(WebhookRejected, match="Unix seconds"):
            await provider.verify_webhook(headers | {"webhook-timestamp": stamp}, raw, now)


async def test_one_valid_signature_among_several_is_accepted(upstream: Upstream) -> None:
    secret = upstream.emulator.secret
    provider = upstream.provider_with_key(KEY, webhook_secret=secret)
    body = json.dumps({"id": "abc123", "status": "processing"}).encode()
    stamp = int(time.time())
    good = sign_webhook(secret, "msg_1", stamp, body)
    other = sign_webhook("whsec_" + base64.b64encode(b"k" * 24).decode(), "msg_1", stamp, body)
    header = f"v2,{good.split(',')[1]} {other} {good} v1,!!notbase64"
    reads = upstream.emulator.calls.count(("GET", "/v1/webhooks/default/secret"))
    try:
        call = await provider.verify_webhook(
            {"webhook-id": "msg_1", "webhook-timestamp": str(stamp), "webhook-signature": header},
            body,
            float(stamp),
        )
        with pytest.raises(WebhookRejected):
            await provider.verify_webhook(
                {
                    "webhook-id": "msg_1",
                    "webhook-timestamp": str(stamp),
                    "webhook-signature": f"{other} v2,{good.split(',')[1]}",
                },
                body,
                float(stamp),
            )
    finally:
        await provider.aclose()
    assert call.upstream_id == "abc123" and not call.final
    # a configured secret is never fetched
    assert upstream.emulator.calls.count(("GET", "/v1/webhooks/default/secret")) == reads


async def test_a_failed_webhook_is_retried_and_nohook_sends_none(
    upstream: Upstream, hooks: Hooks
) -> None:
    hooks.fail_first[0] = 2
    retried = await upstream.provider.create(
        _request("retry me", callback_url=f"{hooks.server.url}/hook/job3")
    )
    silent = await upstream.provider.create(
        _request("[fault:nohook] quiet", callback_url=f"{hooks.server.url}/hook/job4")
    )
    await _until_done(upstream.provider, silent.upstream_id)
    for _ in range(200):
        attempts = [
            d for d in upstream.emulator.deliveries if retried.upstream_id in d["body"].decode()
        ]
        if attempts and attempts[-1]["status"] == 204:
            break
        await asyncio.sleep(0.02)
    assert [a["status"] for a in attempts] == [500, 500, 204]
    assert len({a["headers"]["webhook-id"] for a in attempts}) == 1, "a retry keeps its id"
    await asyncio.sleep(0.2)
    assert not [d for d in upstream.emulator.deliveries if silent.upstream_id in d["body"].decode()]
