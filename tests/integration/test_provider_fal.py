"""The fal adapter against the fal emulator on loopback: queue wire format, outcomes,
faults, cancel, and signed webhooks (verified, and forged ones rejected)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.fal import FalEmulator, emulator_of
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
    GenerationRequest,
    ImageInput,
    Provider,
    ReceivesWebhooks,
    ResultLocation,
    UpstreamState,
    UpstreamStatus,
    WebhookRejected,
    WebhookUnverifiable,
)
from reelgate.providers.fal import PLUGIN, FalProvider, request_id_of
from reelgate.providers.http import HttpDeployment
from tests.conftest import LOOPBACK_DOWNLOADS

KEY = "fal-emulated-key-id:0123456789abcdef"
JOB_SECONDS = 0.6
SEEDANCE = "fal-ai/bytedance/seedance/v1/pro/text-to-video"
KLING = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
VEO = "fal-ai/veo3.1"
LUMA = "fal-ai/luma-dream-machine/ray-2"
HAILUO = "fal-ai/minimax/hailuo-02/standard/text-to-video"
LTX = "fal-ai/ltxv-13b-098-distilled"


@dataclass
class Hooks:
    """A webhook receiver on loopback: records every call, answers ``status``."""

    server: EmulatorServer
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200

    def url(self, name: str) -> str:
        return f"{self.server.url}/hooks/{name}"


@dataclass
class Upstream:
    server: EmulatorServer
    emulator: FalEmulator
    provider: FalProvider
    hooks: Hooks

    def provider_with_key(self, key: str) -> FalProvider:
        return _provider(self.server, key)


def _provider(server: EmulatorServer, key: str = KEY, **kwargs: Any) -> FalProvider:
    return FalProvider(
        HttpDeployment(base_url=server.url, api_key=key, downloads=LOOPBACK_DOWNLOADS),
        jwks_url=f"{server.url}/.well-known/jwks.json",
        **kwargs,
    )


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorServer, Hooks]]:
    config = EmulatorConfig(
        api_key=KEY, job_seconds=JOB_SECONDS, video_dir=tmp_path_factory.mktemp("fal-videos")
    )
    box: list[Hooks] = []

    async def receive(request: Request) -> Response:
        hooks = box[0]
        hooks.calls.append(
            ({k.lower(): v for k, v in request.headers.items()}, await request.body())
        )
        return Response(status_code=hooks.status)

    receiver = EmulatorServer(
        Starlette(routes=[Route("/hooks/{name}", receive, methods=["POST"])]), name="fal-hooks"
    )
    receiver.start()
    box.append(Hooks(receiver))
    try:
        with run_emulator("fal", config) as server:
            yield server, box[0]
    finally:
        receiver.stop()


@pytest.fixture
async def upstream(emulated: tuple[EmulatorServer, Hooks]) -> AsyncIterator[Upstream]:
    server, hooks = emulated
    emulator = emulator_of(server)
    emulator.received.clear()
    hooks.calls.clear()
    hooks.status = 200
    provider = _provider(server)
    yield Upstream(server, emulator, provider, hooks)
    await provider.aclose()


def _request(prompt: str, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "job_id": "video_fal",
        "attempt": 1,
        "model": "seedance-1-pro",
        "upstream_model": SEEDANCE,
        "prompt": prompt,
        "duration_seconds": 2,
        "resolution": "480p",
        "aspect_ratio": "16:9",
        "width": 854,
        "height": 480,
    }
    return GenerationRequest(**(fields | overrides))


async def _until_done(provider: Provider, upstream_id: str) -> list[UpstreamStatus]:
    seen: list[UpstreamStatus] = []
    for _ in range(200):
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


# -- the queue ------------------------------------------------------------------------


async def test_text_to_video_queues_runs_and_finishes_in_a_real_mp4(
    upstream: Upstream, tmp_path: Path
) -> None:
    submitted = await upstream.provider.create(_request("a lighthouse at dusk", seed=7))
    base, _, request_id = submitted.upstream_id.rpartition("/requests/")
    assert base == "fal-ai/bytedance"  # status/result live under owner/alias only
    seen = await _until_done(upstream.provider, submitted.upstream_id)
    states = [s.state for s in seen]
    assert states[0] is UpstreamState.PENDING and "queue_position" in seen[0].extra
    positions = [int(str(s.extra["queue_position"])) for s in seen if "queue_position" in s.extra]
    assert positions == sorted(positions, reverse=True), "queue position went up"
    assert UpstreamState.RUNNING in states
    running = [s for s in seen if s.state is UpstreamState.RUNNING]
    assert any("step" in str(s.extra.get("last_log")) for s in running)  # logs=1 was asked
    done = seen[-1]
    assert done.progress == 100 and done.result is not None
    assert done.extra["seed"] == 7 and isinstance(done.extra["file_size"], int)
    assert done.result.url.startswith(f"{upstream.server.url}/files/{request_id}/")
    assert KEY not in done.result.url
    info = _probe(await _download(upstream.provider, done.result), tmp_path)
    assert (info.width, info.height) == (854, 480)
    assert abs(info.duration_seconds - 2.0) <= 0.3
    assert upstream.emulator.polls(request_id) == len(seen)


@pytest.mark.parametrize(
    ("app", "overrides", "expected"),
    [
        (
            SEEDANCE,
            {"duration_seconds": 12, "resolution": "1080p", "aspect_ratio": "21:9", "seed": 3},
            {
                "prompt": "p",
                "duration": "12",
                "resolution": "1080p",
                "aspect_ratio": "21:9",
                "seed": 3,
            },
        ),
        (
            KLING,
            {"duration_seconds": 10, "aspect_ratio": "9:16", "negative_prompt": "blur", "seed": 5},
            {"prompt": "p", "duration": "10", "aspect_ratio": "9:16", "negative_prompt": "blur"},
        ),
        (
            VEO,
            {"duration_seconds": 6, "resolution": "1080P", "negative_prompt": "rain", "seed": 1},
            {
                "prompt": "p",
                "duration": "6s",
                "resolution": "1080p",
                "aspect_ratio": "16:9",
                "negative_prompt": "rain",
                "seed": 1,
            },
        ),
        (
            LUMA,
            {"duration_seconds": 9, "resolution": "540p", "aspect_ratio": "9:21"},
            {"prompt": "p", "duration": "9s", "resolution": "540p", "aspect_ratio": "9:21"},
        ),
        (HAILUO, {"duration_seconds": 6, "resolution": "768p"}, {"prompt": "p", "duration": "6"}),
        (
            LTX,
            {"duration_seconds": 5, "resolution": "720p", "aspect_ratio": "1:1", "seed": 9},
            {
                "prompt": "p",
                "num_frames": 121,
                "resolution": "720p",
                "aspect_ratio": "1:1",
                "seed": 9,
            },
        ),
    ],
)
async def test_each_app_gets_its_own_input_names_and_value_formats(
    upstream: Upstream, app: str, overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    callback = upstream.hooks.url("job")
    submitted = await upstream.provider.create(
        _request("p", upstream_model=app, callback_url=callback, **overrides)
    )
    [received] = upstream.emulator.received
    assert received["app_id"] == app
    assert received["input"] == expected
    assert received["fal_webhook"] == callback
    assert submitted.upstream_id.count("/requests/") == 1


@pytest.mark.parametrize(
    ("app", "i2v", "field_name", "absent"),
    [
        (KLING, "fal-ai/kling-video/v2.5-turbo/pro/image-to-video", "image_url", "aspect_ratio"),
        (VEO, "fal-ai/veo3.1/image-to-video", "image_url", None),
        (HAILUO, "fal-ai/minimax/hailuo-02/standard/image-to-video", "image_url", None),
        (SEEDANCE, "fal-ai/bytedance/seedance/v1/pro/image-to-video", "image_url", None),
    ],
)
async def test_image_to_video_goes_to_the_models_i2v_app_with_a_data_uri(
    upstream: Upstream, app: str, i2v: str, field_name: str, absent: str | None
) -> None:
    png = _png(320, 240)
    resolution = {"fal-ai/veo3.1": "720p", HAILUO: "768p"}.get(app, "480p")
    duration = {KLING: 5, VEO: 4, HAILUO: 6}.get(app, 2)
    await upstream.provider.create(
        _request(
            "the sky moves",
            upstream_model=app,
            resolution=resolution,
            duration_seconds=duration,
            image=ImageInput(data=png, mime_type="image/png"),
        )
    )
    [received] = upstream.emulator.received
    assert received["app_id"] == i2v
    assert received["input"][field_name].startswith("data:image/png;base64,")
    if absent:
        assert absent not in received["input"]
    if app == HAILUO:  # its image-to-video app takes a resolution, spelt 768P
        assert received["input"]["resolution"] == "768P"


async def test_an_image_url_is_passed_through_and_the_output_keeps_the_image_shape(
    upstream: Upstream, tmp_path: Path
) -> None:
    url = "https://images.example/cat.jpg"
    await upstream.provider.create(_request("cat", image=ImageInput(url=url)))
    assert upstream.emulator.received[-1]["input"]["image_url"] == url
    submitted = await upstream.provider.create(
        _request("tall", image=ImageInput(data=_png(240, 320), mime_type="image/png"))
    )
    done = (await _until_done(upstream.provider, submitted.upstream_id))[-1]
    assert done.result is not None
    info = _probe(await _download(upstream.provider, done.result), tmp_path)
    assert (info.width, info.height) == (480, 640)


async def test_a_value_outside_the_apps_enum_is_fals_422_detail_list(upstream: Upstream) -> None:
    with pytest.raises(InvalidRequest) as exc:
        await upstream.provider.create(_request("x", upstream_model=KLING, duration_seconds=7))
    assert exc.value.upstream_status == 422
    assert exc.value.message.startswith("duration: Input should be '5' or '10'")
    assert exc.value.details["upstream_code"] == "literal_error"


async def test_an_unknown_app_is_model_gone(upstream: Upstream) -> None:
    with pytest.raises(ModelGone) as exc:
        await upstream.provider.create(_request("x", upstream_model="fal-ai/no-such-video/v9"))
    assert exc.value.upstream_status == 404


@pytest.mark.parametrize(("fault", "flagged"), [("refuse", "prompt"), ("refuse-image", "image")])
async def test_a_content_policy_violation_is_a_final_refusal(
    upstream: Upstream, fault: str, flagged: str
) -> None:
    submitted = await upstream.provider.create(_request(f"[fault:{fault}] x"))
    with pytest.raises(Refused) as exc:
        await _until_done(upstream.provider, submitted.upstream_id)
    assert exc.value.terminal and exc.value.upstream_status == 422
    assert exc.value.details["flagged"] == flagged
    assert exc.value.details["categories"] == ["violence"]


async def test_the_concurrency_429_is_quota_with_retry_after(upstream: Upstream) -> None:
    with pytest.raises(QuotaExceeded) as exc:
        await upstream.provider.create(_request("[fault:quota] x"))
    assert exc.value.retry_after == 30 and exc.value.upstream_status == 429
    assert "concurrent" in exc.value.message


async def test_an_exhausted_balance_is_quota_not_auth(upstream: Upstream) -> None:
    with pytest.raises(QuotaExceeded) as exc:
        await upstream.provider.create(_request("[fault:credits] x"))
    assert exc.value.code == "upstream_credits" and exc.value.upstream_status == 403
    assert "Exhausted balance" in exc.value.message


async def test_a_503_burst_is_transient_then_the_submit_goes_through(upstream: Upstream) -> None:
    for _ in range(2):
        with pytest.raises(TransientError) as exc:
            await upstream.provider.create(_request("[fault:5xx] burst"))
        assert exc.value.upstream_status == 503 and not exc.value.terminal
        assert "runner" in exc.value.message
    submitted = await upstream.provider.create(_request("[fault:5xx] burst"))
    assert (await _until_done(upstream.provider, submitted.upstream_id))[-1].result is not None


async def test_a_status_answer_that_is_not_json_is_transient(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:malformed] x"))
    with pytest.raises(TransientError) as exc:
        await upstream.provider.status(submitted.upstream_id)
    assert not exc.value.terminal
    assert (await _until_done(upstream.provider, submitted.upstream_id))[-1].result is not None


async def test_a_request_that_fails_is_final_and_polled_no_more(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:fail] x"))
    with pytest.raises(TransientError) as exc:
        await _until_done(upstream.provider, submitted.upstream_id)
    assert exc.value.terminal and exc.value.upstream_status == 500
    assert exc.value.message == "Internal server error"


async def test_a_request_that_never_finishes_stays_in_progress(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:never] x"))
    await asyncio.sleep(JOB_SECONDS + 0.2)
    status = await upstream.provider.status(submitted.upstream_id)
    assert status.state is UpstreamState.RUNNING and status.result is None


async def test_cancel_in_queue_then_already_completed(upstream: Upstream) -> None:
    queued = await upstream.provider.create(_request("cancel me"))
    await upstream.provider.cancel(queued.upstream_id)
    with pytest.raises(TransientError) as exc:
        await upstream.provider.status(queued.upstream_id)
    assert exc.value.code == "upstream_canceled" and exc.value.terminal
    finished = await upstream.provider.create(_request("too late to cancel"))
    await _until_done(upstream.provider, finished.upstream_id)
    await upstream.provider.cancel(finished.upstream_id)  # 400 ALREADY_COMPLETED: no error
    puts = [c for c in upstream.emulator.calls if c[0] == "PUT"]
    assert [p for _, p, _ in puts][-2:] == [
        f"/{queued.upstream_id}/cancel",
        f"/{finished.upstream_id}/cancel",
    ]


async def test_an_expired_result_file_fails_the_second_download(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:expire] x"))
    done = (await _until_done(upstream.provider, submitted.upstream_id))[-1]
    assert done.result is not None
    assert await _download(upstream.provider, done.result)
    with pytest.raises(InvalidRequest) as exc:
        await _download(upstream.provider, done.result)
    assert exc.value.code == "result_expired" and exc.value.upstream_status == 404


async def test_download_faults(upstream: Upstream, tmp_path: Path) -> None:
    faults = ("slow", "truncate", "notvideo")
    ids = [(await upstream.provider.create(_request(f"[fault:{f}] d"))).upstream_id for f in faults]
    results: dict[str, ResultLocation] = {}
    for fault, upstream_id in zip(faults, ids, strict=True):
        done = (await _until_done(upstream.provider, upstream_id))[-1]
        assert done.result is not None
        results[fault] = done.result
    assert _probe(await _download(upstream.provider, results["slow"]), tmp_path).width == 854
    with pytest.raises(TransientError):
        await _download(upstream.provider, results["truncate"])
    with pytest.raises(NotAVideo):
        _probe(await _download(upstream.provider, results["notvideo"]), tmp_path)


@pytest.mark.parametrize("key", ["wrong-id:wrong-secret-4242", ""])
async def test_a_wrong_or_missing_key_is_upstream_auth_and_never_leaks(
    upstream: Upstream, key: str
) -> None:
    provider = upstream.provider_with_key(key)
    try:
        with pytest.raises(InvalidRequest) as exc:
            await provider.create(_request("a lighthouse"))
        with pytest.raises(ProviderError) as check:
            await provider.verify()
    finally:
        await provider.aclose()
    error: ProviderError = exc.value
    assert error.code == "upstream_auth" and error.upstream_status == 401
    assert "REELGATE_FAL_API_KEY" in error.message
    assert check.value.code == "upstream_auth"
    shown = f"{error} {error!r} {json.dumps(error.to_dict())} {provider!r}"
    assert KEY not in shown and (not key or key not in shown)
    await upstream.provider.verify()  # the right key: the missing request is a 404


async def test_from_settings_needs_the_key_and_reads_urls_and_timeout() -> None:
    assert PLUGIN.from_settings(Settings()) is None
    assert PLUGIN.from_settings(Settings(fal_api_key="  ")) is None
    settings = Settings(
        fal_api_key="fal-secret-123",
        fal_queue_url="http://127.0.0.1:9",
        fal_jwks_url="http://127.0.0.1:9/.well-known/jwks.json",
        provider_timeout_seconds=12.5,
    )
    provider = PLUGIN.from_settings(settings)
    assert isinstance(provider, FalProvider) and isinstance(provider, Provider)
    assert isinstance(provider, ReceivesWebhooks)
    assert provider.name == "fal" and provider.route == "fal"
    assert provider.supports_cancel is True and provider.idempotent_create is False
    assert str(provider._client.base_url) == "http://127.0.0.1:9"
    assert provider._client.headers["authorization"] == "Key fal-secret-123"
    assert provider._client.timeout.read == 12.5
    assert provider._jwks.url == "http://127.0.0.1:9/.well-known/jwks.json"
    assert "fal-secret-123" not in repr(provider)
    assert "authorization" not in provider._files.headers  # result files get no key
    await provider.aclose()


# -- webhooks ---------------------------------------------------------------------------


async def _hook(upstream: Upstream, prompt: str) -> tuple[str, dict[str, str], bytes]:
    submitted = await upstream.provider.create(
        _request(prompt, callback_url=upstream.hooks.url(prompt.replace(" ", "-")))
    )
    request_id = request_id_of(submitted.upstream_id)
    for _ in range(100):
        for headers, body in upstream.hooks.calls:
            if headers.get("x-fal-webhook-request-id") == request_id:
                return request_id, headers, body
        await asyncio.sleep(0.05)
    raise AssertionError("no webhook arrived")


async def test_the_emulators_signed_webhook_verifies(upstream: Upstream) -> None:
    request_id, headers, body = await _hook(upstream, "hook ok")
    call = await upstream.provider.verify_webhook(headers, body, now=time.time())
    assert call.upstream_id == request_id and call.final
    assert abs(call.sent_at - time.time()) < 30
    data = json.loads(body)
    assert data["status"] == "OK" and data["gateway_request_id"] == request_id
    assert data["payload"]["video"]["url"].startswith(upstream.server.url)
    again = await upstream.provider.verify_webhook(headers, body, now=time.time())
    assert again.delivery_id == call.delivery_id  # the same delivery twice is a replay


async def test_a_failed_request_calls_back_with_error(upstream: Upstream) -> None:
    _, headers, body = await _hook(upstream, "[fault:refuse] hook")
    call = await upstream.provider.verify_webhook(headers, body, now=time.time())
    data = json.loads(body)
    assert call.final and data["status"] == "ERROR"
    assert data["error"] == "Invalid status code: 422"
    assert data["payload"]["detail"][0]["type"] == "content_policy_violation"


async def test_nohook_sends_nothing_and_failed_deliveries_are_retried(
    upstream: Upstream,
) -> None:
    submitted = await upstream.provider.create(
        _request("[fault:nohook] quiet", callback_url=upstream.hooks.url("quiet"))
    )
    await _until_done(upstream.provider, submitted.upstream_id)
    await asyncio.sleep(0.2)
    quiet = request_id_of(submitted.upstream_id)
    assert not [h for h, _ in upstream.hooks.calls if h["x-fal-webhook-request-id"] == quiet]
    upstream.hooks.status = 500
    request_id, _, _ = await _hook(upstream, "retried hook")
    await asyncio.sleep(0.5)
    attempts = [d for d in upstream.emulator.deliveries if d.request_id == request_id]
    assert len(attempts) >= 2 and all(d.status_code == 500 for d in attempts)


async def test_forged_tampered_stale_unknown_and_headerless_calls_are_rejected(
    upstream: Upstream,
) -> None:
    _, headers, body = await _hook(upstream, "hook to forge")
    verify = upstream.provider.verify_webhook
    now = time.time()
    signature = headers["x-fal-webhook-signature"]
    forged = headers | {
        "x-fal-webhook-signature": ("0" if signature[0] != "0" else "1") + signature[1:]
    }
    with pytest.raises(WebhookRejected, match="no key"):
        await verify(forged, body, now)
    with pytest.raises(WebhookRejected, match="no key"):
        await verify(headers, body.replace(b'"OK"', b'"ERROR"'), now)
    # measured from the signed (whole-second) stamp: ``now`` may be a second or more past it
    sent = float(headers["x-fal-webhook-timestamp"])
    with pytest.raises(WebhookRejected, match="300 s"):
        await verify(headers, body, sent + 301)
    with pytest.raises(WebhookRejected, match="300 s"):
        await verify(headers, body, sent - 301)
    stranger = Ed25519PrivateKey.generate()  # a key fal's JWKS does not hold
    message = "\n".join(
        (
            headers["x-fal-webhook-request-id"],
            headers["x-fal-webhook-user-id"],
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(body).hexdigest(),
        )
    ).encode()
    unknown = headers | {"x-fal-webhook-signature": stranger.sign(message).hex()}
    with pytest.raises(WebhookRejected, match="no key"):
        await verify(unknown, body, now)
    for name in ("request-id", "user-id", "timestamp", "signature"):
        partial = {k: v for k, v in headers.items() if k != f"x-fal-webhook-{name}"}
        with pytest.raises(WebhookRejected, match="missing") as missing:
            await verify(partial, body, now)
        assert signature not in missing.value.reason
    with pytest.raises(WebhookRejected, match="hexadecimal"):
        await verify(headers | {"x-fal-webhook-signature": "zz" * 64}, body, now)


async def test_a_key_rotated_in_after_the_cache_is_found_by_one_refetch(
    upstream: Upstream,
) -> None:
    """The JWKS is cached; a signature no cached key verifies refetches it once."""
    provider = _provider(upstream.server, jwks_min_refetch_seconds=0.0)
    try:
        _, headers, body = await _hook(upstream, "hook before rotation")
        await provider.verify_webhook(headers, body, time.time())
        fetched = provider._jwks.fetched_at
        old = upstream.emulator.signing_key
        upstream.emulator.signing_key = Ed25519PrivateKey.generate()
        try:
            _, headers, body = await _hook(upstream, "hook after rotation")
            call = await provider.verify_webhook(headers, body, time.time())
        finally:
            upstream.emulator.signing_key = old
        assert call.final and provider._jwks.fetched_at != fetched
    finally:
        await provider.aclose()


async def test_the_jwks_is_fals_shape(upstream: Upstream) -> None:
    async with httpx.AsyncClient() as client:
        served = (await client.get(f"{upstream.server.url}/.well-known/jwks.json")).json()
    [key] = served["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and isinstance(key["kid"], str)
    # fal's own sample decodes x with base64.urlsafe_b64decode: 32 bytes, padded
    assert len(base64.urlsafe_b64decode(key["x"])) == 32


async def test_a_replay_spelt_differently_is_the_same_delivery_and_odd_stamps_are_refused(
    upstream: Upstream,
) -> None:
    _, headers, body = await _hook(upstream, "hook to respell")
    now = time.time()
    call = await upstream.provider.verify_webhook(headers, body, now)
    upper = headers | {"x-fal-webhook-signature": headers["x-fal-webhook-signature"].upper()}
    again = await upstream.provider.verify_webhook(upper, body, now)
    assert again.delivery_id == call.delivery_id  # so the gateway sees the replay
    for stamp in ("\u00b2", "1e9", "-1", "0x10"):
        with pytest.raises(WebhookRejected, match="Unix seconds"):
            await upstream.provider.verify_webhook(
                headers | {"x-fal-webhook-timestamp": stamp}, body, now
            )


async def test_unreachable_keys_make_a_call_unverifiable_not_forged(upstream: Upstream) -> None:
    """The gateway answers 503 for these, so fal delivers the call again."""
    _, headers, body = await _hook(upstream, "hook without keys")
    provider = FalProvider(
        HttpDeployment(base_url=upstream.server.url, api_key=KEY, downloads=LOOPBACK_DOWNLOADS),
        jwks_url="http://127.0.0.1:9/.well-known/jwks.json",
    )
    try:
        with pytest.raises(WebhookUnverifiable, match="could not be fetched"):
            await provider.verify_webhook(headers, body, time.time())
    finally:
        await provider.aclose()
