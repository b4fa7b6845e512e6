"""The xAI Grok adapter against the xAI emulator on loopback: wire format, outcomes, faults."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.grok import GrokEmulator, emulator_of
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
    ResultLocation,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.grok import PLUGIN, GrokProvider, _classify
from reelgate.providers.http import HttpDeployment
from tests.conftest import LOOPBACK_DOWNLOADS

KEY = "xai-emulated-0123456789abcdef"
JOB_SECONDS = 0.5


@dataclass
class Upstream:
    server: EmulatorServer
    emulator: GrokEmulator
    provider: GrokProvider

    def provider_with_key(self, key: str) -> GrokProvider:
        return GrokProvider(
            HttpDeployment(
                base_url=f"{self.server.url}/v1", api_key=key, downloads=LOOPBACK_DOWNLOADS
            )
        )


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rendered MP4s shared by the module's tests: each size is rendered once."""
    return tmp_path_factory.mktemp("xai-videos")


@pytest.fixture(scope="module")
def emulated(video_dir: Path) -> Iterator[tuple[EmulatorServer, GrokEmulator]]:
    """One emulator for the module: faults are per prompt, so tests do not interfere."""
    config = EmulatorConfig(api_key=KEY, job_seconds=JOB_SECONDS, video_dir=video_dir)
    with run_emulator("grok", config) as server:
        yield server, emulator_of(server)


@pytest.fixture
async def upstream(emulated: tuple[EmulatorServer, GrokEmulator]) -> AsyncIterator[Upstream]:
    server, emulator = emulated
    emulator.received.clear()
    emulator.client_request_ids.clear()
    provider = GrokProvider(
        HttpDeployment(base_url=f"{server.url}/v1", api_key=KEY, downloads=LOOPBACK_DOWNLOADS)
    )
    yield Upstream(server, emulator, provider)
    await provider.aclose()


def _request(prompt: str, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "job_id": "video_test",
        "attempt": 1,
        "model": "grok-video",
        "upstream_model": "grok-imagine-video",
        "prompt": prompt,
        "duration_seconds": 1,
        "resolution": "480p",
        "aspect_ratio": "16:9",
        "width": 854,
        "height": 480,
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
    Image.new("RGB", (width, height), (30, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


async def test_text_to_video_runs_to_a_real_mp4_at_xai_frame_size(
    upstream: Upstream, tmp_path: Path
) -> None:
    submitted = await upstream.provider.create(_request("a lighthouse at dusk"))
    seen = await _until_done(upstream.provider, submitted.upstream_id)
    pending = [s.progress for s in seen[:-1]]
    assert pending and all(p is None or 0 <= p <= 99 for p in pending)
    assert pending == sorted(pending, key=lambda p: p or 0), "progress went backwards"
    done = seen[-1]
    assert done.progress == 100 and done.duration_seconds == 1.0
    assert done.result is not None and done.result.expires_at is not None
    assert done.result.url.startswith(upstream.server.url + "/xai-vidgen-bucket/")
    assert KEY not in done.result.url
    assert done.extra["cost_in_usd_ticks"] == 500_000_000
    info = _probe(await _download(upstream.provider, done.result), tmp_path)
    # xAI renders 480p 16:9 as 848x480 (its documented size), not reelgate's 854x480
    assert (info.width, info.height) == (848, 480)
    assert abs(info.duration_seconds - 1.0) <= 0.2


async def test_the_create_body_uses_xai_field_names_and_values(upstream: Upstream) -> None:
    request = _request("a red kite", seed=42, resolution="720P", aspect_ratio="9:16")
    await upstream.provider.create(request)
    assert upstream.emulator.received == [
        {
            "model": "grok-imagine-video",
            "prompt": "a red kite",
            "duration": 1,
            "resolution": "720p",
            "aspect_ratio": "9:16",
        }
    ]
    assert upstream.emulator.client_request_ids == [request.idempotency_key]


async def test_image_to_video_sends_a_data_uri_and_keeps_the_image_aspect(
    upstream: Upstream, tmp_path: Path
) -> None:
    png = _png(300, 400)
    request = _request("the sky moves", image=ImageInput(data=png, mime_type="image/png"))
    submitted = await upstream.provider.create(request)
    [body] = upstream.emulator.received
    assert body["image"]["url"].startswith("data:image/png;base64,")
    assert "aspect_ratio" not in body  # xAI takes the aspect ratio from the image
    done = (await _until_done(upstream.provider, submitted.upstream_id))[-1]
    assert done.result is not None
    info = _probe(await _download(upstream.provider, done.result), tmp_path)
    assert (info.width, info.height) == (480, 640)


async def test_an_image_url_is_passed_through_and_unsupported_inputs_fail_before_sending(
    upstream: Upstream,
) -> None:
    url = "https://images.example/cat.jpg"
    await upstream.provider.create(_request("cat", image=ImageInput(url=url)))
    assert upstream.emulator.received[-1]["image"] == {"url": url}
    gif = ImageInput(data=b"GIF89a", mime_type="image/gif")
    with pytest.raises(InvalidRequest) as bad_image:
        await upstream.provider.create(_request("cat", image=gif))
    assert bad_image.value.code == "invalid_image"
    with pytest.raises(InvalidRequest) as negative:
        await upstream.provider.create(_request("cat", negative_prompt="dogs"))
    assert negative.value.code == "unsupported_parameter"
    assert len(upstream.emulator.received) == 1


@pytest.mark.parametrize(
    ("fault", "flagged"), [("refuse-prompt", "prompt"), ("refuse-image", "image")]
)
async def test_a_moderation_block_at_create_is_a_refusal_naming_the_input(
    upstream: Upstream, fault: str, flagged: str
) -> None:
    with pytest.raises(Refused) as exc:
        await upstream.provider.create(_request(f"[fault:{fault}] something"))
    assert exc.value.details["flagged"] == flagged
    assert exc.value.upstream_status == 400
    assert "moderation" in exc.value.message


async def test_a_video_withheld_by_moderation_is_a_refusal(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:refuse] something"))
    with pytest.raises(Refused) as exc:
        await _until_done(upstream.provider, submitted.upstream_id)
    assert exc.value.code == "refused"
    assert "respect_moderation" in exc.value.message
    assert "flagged" not in exc.value.details  # xAI does not say which input caused it


async def test_out_of_credits_is_quota_with_retry_after_and_xai_message(
    upstream: Upstream,
) -> None:
    with pytest.raises(QuotaExceeded) as exc:
        await upstream.provider.create(_request("[fault:quota] something"))
    assert exc.value.retry_after == 30
    assert exc.value.upstream_status == 429
    assert "credits" in exc.value.message


async def test_a_503_burst_is_transient_then_the_create_goes_through(upstream: Upstream) -> None:
    for _ in range(2):
        with pytest.raises(TransientError) as exc:
            await upstream.provider.create(_request("[fault:5xx] something"))
        assert exc.value.upstream_status == 503
        assert "capacity" in exc.value.message
    submitted = await upstream.provider.create(_request("[fault:5xx] something"))
    assert (await _until_done(upstream.provider, submitted.upstream_id))[-1].result is not None


async def test_a_poll_answer_that_is_not_json_is_transient(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:malformed] something"))
    with pytest.raises(TransientError):
        await upstream.provider.status(submitted.upstream_id)
    assert (await _until_done(upstream.provider, submitted.upstream_id))[-1].result is not None


async def test_a_failed_job_is_classified_by_its_error_code(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:fail] something"))
    with pytest.raises(TransientError) as exc:
        await _until_done(upstream.provider, submitted.upstream_id)
    assert exc.value.details["upstream_code"] == "internal_error"


async def test_a_job_that_never_finishes_stays_running(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:never] something"))
    await asyncio.sleep(JOB_SECONDS + 0.2)
    status = await upstream.provider.status(submitted.upstream_id)
    assert status.state is UpstreamState.RUNNING
    assert status.progress == 50 and status.result is None


async def test_an_expired_result_link_fails_the_second_download(upstream: Upstream) -> None:
    submitted = await upstream.provider.create(_request("[fault:expire] something"))
    done = (await _until_done(upstream.provider, submitted.upstream_id))[-1]
    assert done.result is not None
    assert await _download(upstream.provider, done.result)
    with pytest.raises(InvalidRequest) as exc:
        await _download(upstream.provider, done.result)
    assert exc.value.code == "result_expired" and exc.value.upstream_status == 404


async def test_download_faults(upstream: Upstream, tmp_path: Path) -> None:
    faults = ("slow", "truncate", "notvideo")
    ids = [(await upstream.provider.create(_request(f"[fault:{f}] x"))).upstream_id for f in faults]
    results: dict[str, ResultLocation] = {}
    for fault, upstream_id in zip(faults, ids, strict=True):
        done = (await _until_done(upstream.provider, upstream_id))[-1]
        assert done.result is not None
        results[fault] = done.result
    assert _probe(await _download(upstream.provider, results["slow"]), tmp_path).width == 848
    with pytest.raises(TransientError):
        await _download(upstream.provider, results["truncate"])
    with pytest.raises(NotAVideo):
        _probe(await _download(upstream.provider, results["notvideo"]), tmp_path)


@pytest.mark.parametrize("key", ["xai-wrong-key-4242424242", ""])
async def test_a_wrong_or_missing_key_is_upstream_auth_and_never_leaks_the_key(
    upstream: Upstream, key: str
) -> None:
    provider = upstream.provider_with_key(key)
    try:
        with pytest.raises(InvalidRequest) as exc:
            await provider.create(_request("a lighthouse"))
    finally:
        await provider.aclose()
    error: ProviderError = exc.value
    assert error.code == "upstream_auth" and error.upstream_status == 400
    assert "REELGATE_XAI_API_KEY" in error.message
    shown = f"{error} {error!r} {json.dumps(error.to_dict())} {provider!r}"
    if key:
        assert key not in shown
        assert f"{key[:2]}***{key[-2:]}" not in shown  # xAI's echo of the key stays out too
    assert KEY not in shown


async def test_from_settings_needs_the_key_and_reads_base_url_and_timeout() -> None:
    assert PLUGIN.from_settings(Settings()) is None
    assert PLUGIN.from_settings(Settings(xai_api_key="  ")) is None
    settings = Settings(
        xai_api_key="xai-secret-123",
        xai_base_url="http://127.0.0.1:9/v1",
        provider_timeout_seconds=12.5,
    )
    provider = PLUGIN.from_settings(settings)
    assert isinstance(provider, GrokProvider) and isinstance(provider, Provider)
    assert provider.name == "grok"
    assert provider.supports_cancel is False and provider.idempotent_create is False
    assert str(provider._client.base_url) == "http://127.0.0.1:9/v1/"
    assert provider._client.timeout.read == 12.5
    assert "xai-secret-123" not in repr(provider)
    assert "authorization" not in provider._files.headers  # result links get no key
    await provider.aclose()


@pytest.mark.parametrize(
    ("status", "body", "expected", "code"),
    [
        # bodies as xAI sends them (quoted in public bug reports; see docs/providers/grok.md)
        (
            403,
            {
                "code": "The caller does not have permission to execute the specified operation",
                "error": "Your team t-1 has either used all available credits or reached its "
                "monthly spending limit.",
            },
            QuotaExceeded,
            "upstream_credits",
        ),
        (
            403,
            {
                "code": "The caller does not have permission to execute the specified operation",
                "error": "The OAuth2 access token could not be validated.",
            },
            InvalidRequest,
            "upstream_auth",
        ),
        (
            400,
            {"code": "Client specified an invalid argument", "error": "Duration must be 1-15."},
            InvalidRequest,
            "upstream_invalid",
        ),
        (
            404,
            {"code": "Some requested entity was not found", "error": "The model x does not exist"},
            InvalidRequest,
            "upstream_invalid",
        ),
    ],
)
def test_xai_error_bodies_are_classified_by_their_wording(
    status: int, body: dict[str, str], expected: type[ProviderError], code: str
) -> None:
    error = _classify(status, body)
    assert type(error) is expected
    assert error.code == code
    if code != "upstream_auth":
        assert error.message == body["error"]


# -- models and endings as of 2026-12 ---------------------------------------------------


async def test_an_expired_request_is_final_and_polled_no_more(upstream: Upstream) -> None:
    """xai-sdk-python raises "Deferred request expired."; Vercel's client
    XAI_VIDEO_GENERATION_EXPIRED (tests/fixtures/wire/grok/poll-expired.json)."""
    provider = upstream.provider
    submitted = await provider.create(_request("too late [fault:expired]"))
    with pytest.raises(TransientError) as caught:
        await _until_done(provider, submitted.upstream_id)
    assert caught.value.code == "upstream_expired" and caught.value.terminal


async def test_an_unknown_model_is_gone_and_1_5_takes_an_image_at_1080p(
    upstream: Upstream,
) -> None:
    provider = upstream.provider
    with pytest.raises(ModelGone) as gone:
        await provider.create(_request("who", upstream_model="grok-imagine-video-9"))
    ok = await provider.create(
        _request(
            "a still, animated",
            upstream_model="grok-imagine-video-1.5",
            resolution="1080p",
            width=1920,
            height=1080,
            image=ImageInput(data=_png(1920, 1080), mime_type="image/png"),
        )
    )
    assert gone.value.upstream_status == 404
    assert ok.upstream_id
