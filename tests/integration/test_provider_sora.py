"""SoraProvider against the Videos API emulator on loopback: the wire format it sends,
and how every upstream outcome is classified."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.sora import SoraEmulatorState, point_webhooks, state_of
from reelgate.errors import (
    InvalidRequest,
    ModelGone,
    NotAVideo,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.media.probe import VideoInfo, probe_video
from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    ResultLocation,
    UpstreamState,
    UpstreamStatus,
    WebhookRejected,
)
from reelgate.providers.http import HttpDeployment
from reelgate.providers.sora import PLUGIN, SoraProvider
from tests.conftest import LOOPBACK_DOWNLOADS

KEY = "sk-emulated-sora-key-0123456789abcdef"


@pytest.fixture(scope="session")
def sora_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rendered results are cached per size and length, so the whole file renders few."""
    return tmp_path_factory.mktemp("sora-videos")


@pytest.fixture
def emulator(sora_videos: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_key=KEY, job_seconds=0.5, video_dir=sora_videos)
    with run_emulator("sora", config) as server:
        yield server


def _state(server: EmulatorServer) -> SoraEmulatorState:
    return state_of(server.app)


def _provider(server: EmulatorServer, key: str = KEY, *, azure: bool = False) -> SoraProvider:
    base = f"{server.url}/openai/v1" if azure else f"{server.url}/v1"
    deployment = HttpDeployment(
        base_url=base, api_key=key, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS
    )
    return SoraProvider(deployment, api_style="azure" if azure else "compatible")


@pytest.fixture
async def sora(emulator: EmulatorServer) -> AsyncIterator[SoraProvider]:
    provider = _provider(emulator)
    yield provider
    await provider.aclose()


def _request(prompt: str = "a paper boat on a river", **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "job_id": "job_1",
        "attempt": 1,
        "model": "sora-2",
        "upstream_model": "sora-2",
        "prompt": prompt,
        "duration_seconds": 4,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "width": 1280,
        "height": 720,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


async def _until_done(provider: SoraProvider, upstream_id: str) -> list[UpstreamStatus]:
    seen: list[UpstreamStatus] = []
    async with asyncio.timeout(15):
        while True:
            status = await provider.status(upstream_id)
            seen.append(status)
            if status.state is UpstreamState.SUCCEEDED:
                return seen
            await asyncio.sleep(0.05)


async def _fetch(provider: SoraProvider, result: ResultLocation, path: Path) -> Path:
    with path.open("wb") as handle:
        async for chunk in provider.download(result):
            handle.write(chunk)
    return path


async def _generate(provider: SoraProvider, request: GenerationRequest) -> ResultLocation:
    submitted = await provider.create(request)
    final = (await _until_done(provider, submitted.upstream_id))[-1]
    assert final.result is not None
    return final.result


async def _probe(provider: SoraProvider, result: ResultLocation, tmp_path: Path) -> VideoInfo:
    path = await _fetch(provider, result, tmp_path / "result.mp4")
    return await asyncio.to_thread(probe_video, path)


async def test_text_to_video_is_sent_as_json_and_delivers_a_real_video_of_the_size(
    emulator: EmulatorServer, sora: SoraProvider, tmp_path: Path
) -> None:
    submitted = await sora.create(_request())
    seen = await _until_done(sora, submitted.upstream_id)

    assert submitted.upstream_id.startswith("video_")
    assert _state(emulator).received == [
        {
            "content_type": "application/json",
            "fields": {
                "model": "sora-2",
                "prompt": "a paper boat on a river",
                "seconds": "4",
                "size": "1280x720",
            },
            "input_reference": None,
        }
    ]
    progress = [s.progress for s in seen]
    assert progress == sorted(progress), "the provider's own progress is passed through"
    assert any(s.state is UpstreamState.RUNNING and 0 < (s.progress or 0) < 100 for s in seen)
    # ``openai-poll-after-ms`` on an unfinished video is the status's poll hint
    hints = [s.poll_after_seconds for s in seen[:-1]]
    assert hints and all(h is not None and 0.1 <= h <= 0.5 for h in hints), hints
    final = seen[-1]
    assert (final.progress, final.duration_seconds) == (100, 4.0)
    assert final.result is not None
    assert final.result.url == (
        f"{emulator.url}/v1/videos/{submitted.upstream_id}/content?variant=video"
    )
    assert final.result.expires_at is not None
    assert KEY not in final.result.url
    info = await _probe(sora, final.result, tmp_path)
    assert (info.width, info.height) == (1280, 720)
    assert info.duration_seconds == pytest.approx(4.0, abs=0.2)


async def test_image_to_video_uploads_the_reference_fitted_to_the_requested_size(
    emulator: EmulatorServer, sora: SoraProvider, tmp_path: Path
) -> None:
    image = ImageInput(data=_png(640, 480), mime_type="image/png")
    request = _request(
        "the boat sails away", width=720, height=1280, aspect_ratio="9:16", image=image
    )
    result = await _generate(sora, request)

    [received] = _state(emulator).received
    assert received["content_type"] == "multipart/form-data"
    assert received["fields"] == {
        "model": "sora-2",
        "prompt": "the boat sails away",
        "seconds": "4",
        "size": "720x1280",
    }
    reference = received["input_reference"]
    assert (reference["content_type"], reference["size"]) == ("image/png", "720x1280")
    info = await _probe(sora, result, tmp_path)
    assert (info.width, info.height) == (720, 1280)


async def test_the_emulator_rejects_a_reference_image_of_another_size(
    emulator: EmulatorServer,
) -> None:
    """What the adapter's fitting avoids: the API wants the image at exactly ``size``."""
    async with httpx.AsyncClient(base_url=f"{emulator.url}/v1") as client:
        resp = await client.post(
            "/videos",
            headers={"Authorization": f"Bearer {KEY}"},
            data={"prompt": "x", "size": "1280x720"},
            files={"input_reference": ("ref.png", _png(640, 480), "image/png")},
        )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "input_reference"


@pytest.mark.parametrize(
    ("fault", "with_image", "flagged"),
    [("refuse", False, "prompt"), ("refuse-image", True, "image")],
)
async def test_a_moderation_block_at_create_is_a_refusal_naming_the_flagged_input(
    sora: SoraProvider, fault: str, with_image: bool, flagged: str
) -> None:
    image = ImageInput(data=_png(1280, 720), mime_type="image/png") if with_image else None
    with pytest.raises(Refused) as caught:
        await sora.create(_request(f"a boat [fault:{fault}]", image=image))
    assert caught.value.details["flagged"] == flagged
    assert caught.value.details["upstream_code"] == "moderation_blocked"
    assert caught.value.upstream_status == 400
    assert "moderation" in caught.value.message


async def test_a_video_that_fails_moderation_after_rendering_is_a_refusal(
    sora: SoraProvider,
) -> None:
    submitted = await sora.create(_request("a boat [fault:refuse-output]"))
    with pytest.raises(Refused) as caught:
        await _until_done(sora, submitted.upstream_id)
    assert caught.value.details["upstream_code"] == "moderation_blocked"
    assert caught.value.details["upstream_id"] == submitted.upstream_id


async def test_a_rate_limit_is_quota_with_the_retry_after_of_the_answer(
    sora: SoraProvider,
) -> None:
    with pytest.raises(QuotaExceeded) as caught:
        await sora.create(_request("a boat [fault:quota]"))
    assert caught.value.retry_after == 30
    assert caught.value.upstream_status == 429
    assert "Rate limit" in caught.value.message


async def test_a_burst_of_503s_is_transient_and_the_third_create_succeeds(
    emulator: EmulatorServer, sora: SoraProvider
) -> None:
    for _ in range(2):
        with pytest.raises(TransientError) as caught:
            await sora.create(_request("a boat [fault:5xx]"))
        assert caught.value.upstream_status == 503
    submitted = await sora.create(_request("a boat [fault:5xx]"))
    assert list(_state(emulator).videos) == [submitted.upstream_id]


async def test_a_poll_answered_with_html_is_transient_and_the_next_poll_recovers(
    sora: SoraProvider,
) -> None:
    submitted = await sora.create(_request("a boat [fault:malformed]"))
    with pytest.raises(TransientError) as caught:
        await sora.status(submitted.upstream_id)
    assert "not JSON" in caught.value.message
    assert (await _until_done(sora, submitted.upstream_id))[-1].result is not None


async def test_a_video_that_never_finishes_stays_running(sora: SoraProvider) -> None:
    submitted = await sora.create(_request("a boat [fault:never]"))
    await asyncio.sleep(0.7)
    status = await sora.status(submitted.upstream_id)
    assert (status.state, status.progress, status.result) == (UpstreamState.RUNNING, 90, None)


async def test_an_expired_result_downloads_once_and_then_is_gone(
    sora: SoraProvider, tmp_path: Path
) -> None:
    result = await _generate(sora, _request("a boat [fault:expire]"))
    await _fetch(sora, result, tmp_path / "first.mp4")
    with pytest.raises(InvalidRequest) as caught:
        await _fetch(sora, result, tmp_path / "second.mp4")
    assert (caught.value.code, caught.value.upstream_status) == ("result_expired", 404)


async def test_a_slow_download_completes(sora: SoraProvider, tmp_path: Path) -> None:
    result = await _generate(sora, _request("a boat [fault:slow]"))
    info = await _probe(sora, result, tmp_path)
    assert (info.width, info.height) == (1280, 720)


async def test_a_truncated_download_is_transient(sora: SoraProvider, tmp_path: Path) -> None:
    result = await _generate(sora, _request("a boat [fault:truncate]"))
    with pytest.raises(TransientError):
        await _fetch(sora, result, tmp_path / "cut.mp4")


async def test_a_result_that_is_not_a_video_fails_the_probe(
    sora: SoraProvider, tmp_path: Path
) -> None:
    result = await _generate(sora, _request("a boat [fault:notvideo]"))
    with pytest.raises(NotAVideo):
        await _probe(sora, result, tmp_path)


@pytest.mark.parametrize("azure", [False, True])
async def test_a_wrong_key_is_upstream_auth_and_never_shows_the_key(
    emulator: EmulatorServer, azure: bool
) -> None:
    wrong = "sk-wrong-key-9876543210zyxw"
    provider = _provider(emulator, wrong, azure=azure)
    try:
        with pytest.raises(InvalidRequest) as caught:
            await provider.create(_request())
    finally:
        await provider.aclose()
    error = caught.value
    assert (error.code, error.upstream_status) == ("upstream_auth", 401)
    assert "REELGATE_OPENAI_API_KEY" in error.message
    shown = f"{error} {error.to_dict()} {error.details} {provider!r}"
    assert wrong not in shown
    assert "sk-" not in shown and "zyxw" not in shown, "not even the masked key OpenAI echoes"
    if azure:
        assert "REELGATE_OPENAI_BASE_URL" in error.message


async def test_the_azure_style_sends_the_key_as_api_key_on_the_v1_path(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # a resource the retirement has not reached (by default Azure answers 410: below)
    _state(emulator).config.still_served = frozenset({"sora-2"})
    provider = _provider(emulator, azure=True)
    try:
        result = await _generate(provider, _request())
        assert result.url.startswith(f"{emulator.url}/openai/v1/videos/")
        info = await _probe(provider, result, tmp_path)
    finally:
        await provider.aclose()
    assert (info.width, info.height) == (1280, 720)


async def test_a_result_url_of_another_host_is_refused_before_any_request(
    sora: SoraProvider, tmp_path: Path
) -> None:
    foreign = ResultLocation(url="https://elsewhere.example/v1/videos/x/content")
    with pytest.raises(InvalidRequest) as caught:
        await _fetch(sora, foreign, tmp_path / "never.mp4")
    assert caught.value.code == "foreign_result"


async def test_a_redirect_to_another_origin_drops_both_credential_headers(
    sora: SoraProvider,
) -> None:
    request = httpx.Request(
        "GET",
        "https://cdn.example/video.mp4",
        headers={"Authorization": "Bearer k", "api-key": "k"},
    )
    await sora._strip_foreign_credentials(request)
    assert "authorization" not in request.headers and "api-key" not in request.headers


async def test_parameters_sora_cannot_honour_fail_before_any_upstream_call(
    emulator: EmulatorServer, sora: SoraProvider
) -> None:
    for extra in ({"negative_prompt": "fog"}, {"seed": 7}):
        with pytest.raises(InvalidRequest):
            await sora.create(_request(**extra))
    assert _state(emulator).received == []


async def test_cancel_deletes_a_finished_video_but_cannot_stop_a_running_one(
    emulator: EmulatorServer, sora: SoraProvider
) -> None:
    assert sora.supports_cancel is False and sora.idempotent_create is False
    running = await sora.create(_request("a boat [fault:never]"))
    with pytest.raises(InvalidRequest):
        await sora.cancel(running.upstream_id)
    done = await sora.create(_request())
    await _until_done(sora, done.upstream_id)
    await sora.cancel(done.upstream_id)
    assert list(_state(emulator).videos) == [running.upstream_id]
    with pytest.raises(InvalidRequest) as caught:
        await sora.status(done.upstream_id)
    assert caught.value.upstream_status == 404


async def test_from_settings_needs_the_key_and_reads_base_url_style_and_timeout() -> None:
    assert PLUGIN.from_settings(Settings()) is None
    assert PLUGIN.from_settings(Settings(openai_api_key="")) is None  # type: ignore[arg-type]
    provider = PLUGIN.from_settings(
        Settings(
            openai_api_key=KEY,  # type: ignore[arg-type]
            openai_base_url="https://example.openai.azure.com/openai/v1/",
            openai_api_style="azure",
            provider_timeout_seconds=12.5,
        )
    )
    assert provider is not None
    assert KEY not in repr(provider)
    assert "api_style='azure'" in repr(provider)
    client = provider._client
    await provider.aclose()
    assert str(client.base_url) == "https://example.openai.azure.com/openai/v1/"
    assert client.headers["api-key"] == KEY and "authorization" not in client.headers
    assert client.timeout.read == 12.5


# -- where sora-2 is served today ---------------------------------------------------------


async def test_azure_answers_a_retired_model_with_410_and_the_job_may_fall_back(
    emulator: EmulatorServer,
) -> None:
    """Microsoft's retirement docs: "All inference requests return 410 Gone" (sora-2
    2025-12-08 retired on 2026-10-15; tests/fixtures/wire/azure_sora/)."""
    provider = _provider(emulator, azure=True)
    try:
        with pytest.raises(ModelGone) as gone:
            await provider.create(_request())
        with pytest.raises(ModelGone) as missing:
            await provider.create(_request(upstream_model="my-sora"))
    finally:
        await provider.aclose()
    assert gone.value.upstream_status == 410
    # tests/fixtures/wire/azure_sora/error-deployment-not-found.json: code null, 404
    assert missing.value.upstream_status == 404
    assert "The API deployment 'my-sora' for this resource does not exist" in missing.value.message


async def test_an_unknown_model_is_model_not_found_and_gone(sora: SoraProvider) -> None:
    """tests/fixtures/wire/sora/error-model-not-found.json: OpenAI's 404 envelope."""
    with pytest.raises(ModelGone) as gone:
        await sora.create(_request(upstream_model="sora-3"))
    assert gone.value.details["upstream_code"] == "model_not_found"
    assert "does not exist or you do not have access to it" in gone.value.message


async def test_seconds_are_4_8_or_12(sora: SoraProvider) -> None:
    """openai-python ``VideoSeconds`` = "4" | "8" | "12"; 16 and 20 s were OpenAI-only."""
    with pytest.raises(InvalidRequest) as refused:
        await sora.create(_request(duration_seconds=16))
    assert refused.value.upstream_status == 400
    assert "'4', '8', '12'" in refused.value.message


async def test_azure_retry_after_ms_wins_over_retry_after(emulator: EmulatorServer) -> None:
    _state(emulator).config.still_served = frozenset({"sora-2"})
    provider = _provider(emulator, azure=True)
    try:
        with pytest.raises(QuotaExceeded) as quota:
            await provider.create(_request("a boat [fault:quota]"))
    finally:
        await provider.aclose()
    assert quota.value.retry_after == 30.5  # retry-after-ms 30500, not Retry-After 30


def test_the_route_is_the_api_style() -> None:
    for style in ("openai", "azure", "compatible"):
        built = PLUGIN.from_settings(Settings(openai_api_key="k", openai_api_style=style))
        assert built is not None and built.route == style


# ── OpenAI's project webhooks: video.completed / video.failed ──────────────────────


async def test_the_emulators_events_verify_with_openais_own_client_and_with_the_adapter(
    emulator: EmulatorServer, sora_videos: Path
) -> None:
    """The emulator signs its events as OpenAI documents (checked with openai-python's
    ``webhooks.verify_signature``, the official verifier); the adapter accepts exactly
    those, names the video, and refuses a changed body, a wrong secret or a stale call."""
    received: list[tuple[dict[str, str], bytes]] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        received.append((headers, body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    hook = EmulatorServer(endpoint, name="hook")
    hook.start()
    try:
        secret = point_webhooks(emulator, f"{hook.url}/v1/provider-hooks/sora")
        assert secret.startswith("whsec_")
        provider = SoraProvider(
            HttpDeployment(
                base_url=f"{emulator.url}/v1",
                api_key=KEY,
                timeout_seconds=10,
                downloads=LOOPBACK_DOWNLOADS,
            ),
            api_style="compatible",
            webhook_secret=secret,
        )
        try:
            done = await provider.create(_request("a lighthouse at dusk"))
            failed = await provider.create(_request("a storm [fault:fail]"))
            async with asyncio.timeout(15):
                while len(received) < 2:
                    await asyncio.sleep(0.05)
            by_video: dict[str, tuple[dict[str, str], bytes]] = {}
            for headers, body in received:
                openai.OpenAI(api_key="unused").webhooks.verify_signature(
                    body, headers, secret=secret
                )
                event = openai.OpenAI(api_key="unused").webhooks.unwrap(
                    body, headers, secret=secret
                )
                by_video[event.data.id] = (headers, body)  # type: ignore[union-attr]
            assert set(by_video) == {done.upstream_id, failed.upstream_id}
            now = time.time()
            call = await provider.verify_webhook(*by_video[done.upstream_id], now)
            assert (call.upstream_id, call.final, call.result) == (done.upstream_id, True, None)
            headers, body = by_video[failed.upstream_id]
            assert b'"video.failed"' in body
            assert (await provider.verify_webhook(headers, body, now)).final
            with pytest.raises(WebhookRejected, match="signature"):
                await provider.verify_webhook(headers, body.replace(b"failed", b"complete"), now)
            with pytest.raises(WebhookRejected, match="tolerance"):
                await provider.verify_webhook(headers, body, now + 600)
            stranger = SoraProvider(
                HttpDeployment(
                    base_url=f"{emulator.url}/v1",
                    api_key=KEY,
                    timeout_seconds=10,
                    downloads=LOOPBACK_DOWNLOADS,
                ),
                webhook_secret="whsec_" + "A" * 32,
            )
            with pytest.raises(WebhookRejected, match="signature"):
                await stranger.verify_webhook(headers, body, now)
            await stranger.aclose()
        finally:
            await provider.aclose()
            point_webhooks(emulator, None)
    finally:
        hook.stop()


def test_a_sora_deployment_takes_calls_only_with_a_webhook_secret() -> None:
    plain = PLUGIN.from_settings(Settings(openai_api_key=KEY))  # type: ignore[call-arg]
    hooked = PLUGIN.from_settings(
        Settings(openai_api_key=KEY, openai_webhook_secret="whsec_" + "B" * 32)  # type: ignore[call-arg]
    )
    assert isinstance(plain, SoraProvider) and isinstance(hooked, SoraProvider)
    assert not plain.receives_webhooks and hooked.receives_webhooks
    assert not hooked.per_job_callbacks  # one endpoint per project, never a URL per job
    assert "whsec_" not in repr(hooked)
