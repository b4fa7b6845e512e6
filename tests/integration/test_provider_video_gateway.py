"""The video gateway adapter against its emulator on loopback: the wire format,
every fault's classification, and the API key kept to the gateway alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.video_gateway import create_app
from reelgate.errors import (
    InvalidRequest,
    NotAVideo,
    ProviderError,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.media.probe import probe_video
from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    Provider,
    ResultLocation,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.http import HttpDeployment
from reelgate.providers.video_gateway import (
    PLUGIN,
    VideoGatewayProvider,
    interpret_status,
)
from tests.conftest import LOOPBACK_DOWNLOADS

KEY = "vg-secret-0123456789abcdef"
RETRY_AFTER = 7


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared across the module: each (size, seconds) MP4 is rendered once."""
    return tmp_path_factory.mktemp("vg-videos")


@pytest.fixture
def config(video_dir: Path) -> EmulatorConfig:
    return EmulatorConfig(
        api_key=KEY, job_seconds=0.5, video_dir=video_dir, retry_after_seconds=RETRY_AFTER
    )


@pytest.fixture
def emulator(config: EmulatorConfig) -> Iterator[EmulatorServer]:
    with run_emulator("video_gateway", config) as server:
        yield server


@pytest.fixture
async def provider(emulator: EmulatorServer) -> AsyncIterator[VideoGatewayProvider]:
    adapter = VideoGatewayProvider(
        HttpDeployment(emulator.url, KEY, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS)
    )
    yield adapter
    await adapter.aclose()


def make_request(
    prompt: str = "a serene mountain lake at sunset", **changes: Any
) -> GenerationRequest:
    base = GenerationRequest(
        job_id="video_test",
        attempt=1,
        model="veo fast (Audio)",
        upstream_model="veo fast (Audio)",
        prompt=prompt,
        duration_seconds=4,
        resolution="512p",
        aspect_ratio="16:9",
        width=910,
        height=512,
    )
    return dataclasses.replace(base, **changes)


async def poll_until_done(
    provider: VideoGatewayProvider, upstream_id: str, timeout: float = 10.0
) -> tuple[UpstreamStatus, list[UpstreamStatus]]:
    seen: list[UpstreamStatus] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        status = await provider.status(upstream_id)
        seen.append(status)
        if status.state is UpstreamState.SUCCEEDED:
            return status, seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"upstream job {upstream_id} never finished: {seen[-1:]}")


async def finished_result(provider: VideoGatewayProvider, prompt: str) -> ResultLocation:
    submitted = await provider.create(make_request(prompt))
    status, _ = await poll_until_done(provider, submitted.upstream_id)
    assert status.result is not None
    return status.result


async def save(provider: VideoGatewayProvider, result: ResultLocation, path: Path) -> Path:
    with path.open("wb") as fh:
        async for chunk in provider.download(result):
            fh.write(chunk)
    return path


def received(server: EmulatorServer) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = httpx.get(f"{server.url}/_emulator/received").json()
    return answer


async def test_text_to_video_is_created_polled_and_downloaded_as_a_real_video(
    provider: VideoGatewayProvider, tmp_path: Path
) -> None:
    assert isinstance(provider, Provider)
    submitted = await provider.create(make_request())
    status, seen = await poll_until_done(provider, submitted.upstream_id)

    order = [UpstreamState.PENDING, UpstreamState.RUNNING, UpstreamState.SUCCEEDED]
    ranks = [order.index(s.state) for s in seen]
    assert ranks == sorted(ranks), "the upstream's states went backwards"
    assert all(s.progress is None for s in seen[:-1]), "the upstream reports no progress"
    assert status.duration_seconds == 4.0
    assert status.extra == {
        "model": "veo fast (Audio)",
        "resolution": "512P",
        "aspect_ratio": "16:9",
    }
    assert status.result is not None and KEY not in status.result.url

    info = probe_video(await save(provider, status.result, tmp_path / "out.mp4"))
    assert (info.width, info.height) == (910, 512)
    assert abs(info.duration_seconds - 4.0) <= 0.2


async def test_the_upstream_receives_its_exact_field_names_and_strings(
    provider: VideoGatewayProvider, emulator: EmulatorServer
) -> None:
    request = make_request(
        "portrait clip",
        model="veo (Audio)",
        upstream_model="veo (Audio)",
        duration_seconds=8,
        resolution="1080p",
        aspect_ratio="9:16",
        width=1080,
        height=1920,
    )
    await provider.create(request)
    [create] = [r for r in received(emulator) if r["kind"] == "create"]
    assert create["body"] == {
        "prompt": "portrait clip",
        "model": "veo (Audio)",
        "resolution": "1080P",
        "duration": "8s",
        "aspect_ratio": "9:16",
    }
    assert create["path"] == "/api/video/generate"
    assert create["credential_sent"] is True


@pytest.mark.parametrize(
    ("param", "changes"),
    [
        ("image", {"image": ImageInput(data=b"\x89PNG\r\n\x1a\n", mime_type="image/png")}),
        ("image", {"image": ImageInput(url="https://example.com/first-frame.png")}),
        ("negative_prompt", {"negative_prompt": "blurry"}),
        ("seed", {"seed": 42}),
    ],
)
async def test_image_to_video_and_other_unsupported_inputs_are_refused_before_sending(
    provider: VideoGatewayProvider,
    emulator: EmulatorServer,
    param: str,
    changes: dict[str, Any],
) -> None:
    """The upstream is text-to-video only and drops unknown fields silently."""
    with pytest.raises(InvalidRequest) as caught:
        await provider.create(make_request(**changes))
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.details["param"] == param
    assert received(emulator) == []


@pytest.mark.parametrize("fault", ["refuse", "refuse-image"])
async def test_a_refusal_envelope_is_refused_naming_the_prompt(
    provider: VideoGatewayProvider, fault: str
) -> None:
    submitted = await provider.create(make_request(f"[fault:{fault}] a lake"))
    with pytest.raises(Refused) as caught:
        await poll_until_done(provider, submitted.upstream_id)
    assert caught.value.details["flagged"] == "prompt"
    assert "usage guidelines" in caught.value.message
    assert "Support codes" in caught.value.message


async def test_quota_is_quota_exceeded_with_retry_after(provider: VideoGatewayProvider) -> None:
    with pytest.raises(QuotaExceeded) as caught:
        await provider.create(make_request("[fault:quota] a lake"))
    assert caught.value.retry_after == RETRY_AFTER
    assert caught.value.upstream_status == 429
    assert "Rate limit exceeded" in caught.value.message


async def test_a_5xx_burst_is_transient_and_then_the_create_succeeds(
    provider: VideoGatewayProvider,
) -> None:
    request = make_request("[fault:5xx] a lake")
    for _ in range(2):
        with pytest.raises(TransientError) as caught:
            await provider.create(request)
        assert caught.value.upstream_status == 503
        assert "unavailable" in caught.value.message
    assert (await provider.create(request)).upstream_id


async def test_a_malformed_status_answer_is_transient_and_the_next_poll_recovers(
    provider: VideoGatewayProvider,
) -> None:
    submitted = await provider.create(make_request("[fault:malformed] a lake"))
    with pytest.raises(TransientError):
        await provider.status(submitted.upstream_id)
    status, _ = await poll_until_done(provider, submitted.upstream_id)
    assert status.state is UpstreamState.SUCCEEDED


async def test_a_job_that_never_finishes_stays_running(provider: VideoGatewayProvider) -> None:
    submitted = await provider.create(make_request("[fault:never] a lake"))
    await asyncio.sleep(0.75)  # past the emulator's 0.5 s job time
    status = await provider.status(submitted.upstream_id)
    assert status.state is UpstreamState.RUNNING
    assert status.result is None


async def test_an_expired_link_fails_the_second_download(
    provider: VideoGatewayProvider, tmp_path: Path
) -> None:
    result = await finished_result(provider, "[fault:expire] a lake")
    probe_video(await save(provider, result, tmp_path / "first.mp4"))
    with pytest.raises(InvalidRequest) as caught:
        await save(provider, result, tmp_path / "second.mp4")
    assert caught.value.code == "result_unavailable"
    assert caught.value.upstream_status == 403


async def test_a_slow_download_completes(provider: VideoGatewayProvider, tmp_path: Path) -> None:
    result = await finished_result(provider, "[fault:slow] a lake")
    info = probe_video(await save(provider, result, tmp_path / "slow.mp4"))
    assert (info.width, info.height) == (910, 512)


async def test_a_truncated_download_is_transient(
    provider: VideoGatewayProvider, tmp_path: Path
) -> None:
    result = await finished_result(provider, "[fault:truncate] a lake")
    with pytest.raises(TransientError):
        await save(provider, result, tmp_path / "cut.mp4")


async def test_a_result_that_is_not_a_video_fails_the_probe(
    provider: VideoGatewayProvider, tmp_path: Path
) -> None:
    result = await finished_result(provider, "[fault:notvideo] a lake")
    path = await save(provider, result, tmp_path / "page.mp4")
    with pytest.raises(NotAVideo):
        probe_video(path)


@pytest.mark.parametrize(
    ("key", "header", "scheme"),
    [
        ("wrong-key-that-must-not-leak-42", "Authorization", "Bearer"),
        (KEY, "X-API-Key", None),  # the right key in a header this upstream does not read
    ],
)
async def test_a_rejected_key_is_upstream_auth_and_the_key_appears_nowhere(
    emulator: EmulatorServer, key: str, header: str, scheme: str | None
) -> None:
    adapter = VideoGatewayProvider(
        HttpDeployment(emulator.url, key, downloads=LOOPBACK_DOWNLOADS),
        auth_header=header,
        auth_scheme=scheme,
    )
    try:
        errors: list[ProviderError] = []
        with pytest.raises(InvalidRequest) as at_create:
            await adapter.create(make_request())
        errors.append(at_create.value)
        with pytest.raises(InvalidRequest) as at_status:
            await adapter.status("some-job")
        errors.append(at_status.value)
    finally:
        await adapter.aclose()
    for error in errors:
        assert error.code == "upstream_auth"
        assert error.upstream_status == 401
        assert "REELGATE_VIDEO_GATEWAY_API_KEY" in error.message
        text = " ".join([str(error), repr(error), json.dumps(error.to_dict())])
        assert key not in text
    assert key not in repr(adapter)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"duration_seconds": 6}, "duration: Input should be '4s' or '8s'"),
        ({"resolution": "720p"}, "resolution: Input should be '512P' or '1080P'"),
        (
            {"upstream_model": "veo-3.1"},
            "model: Input should be 'veo (Audio)' or 'veo fast (Audio)'",
        ),
    ],
)
async def test_values_the_upstream_rejects_are_invalid_with_its_pydantic_message(
    provider: VideoGatewayProvider, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await provider.create(make_request(**changes))
    assert caught.value.upstream_status == 400
    assert caught.value.message == expected


async def test_an_unknown_upstream_job_is_invalid(provider: VideoGatewayProvider) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await provider.status("no-such-job")
    assert caught.value.upstream_status == 404
    assert caught.value.message == "Job not found"


async def test_the_key_goes_to_the_gateway_but_never_to_the_result_host(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """The adapter talks to ``localhost``; the result link names ``127.0.0.1``: another origin."""
    port = emulator.url.rsplit(":", 1)[1]
    adapter = VideoGatewayProvider(
        HttpDeployment(f"http://localhost:{port}", KEY, downloads=LOOPBACK_DOWNLOADS)
    )
    try:
        result = await finished_result(adapter, "a lake")
        assert result.url.startswith("http://127.0.0.1:")
        probe_video(await save(adapter, result, tmp_path / "out.mp4"))
    finally:
        await adapter.aclose()
    sent = {(r["kind"], r["credential_sent"]) for r in received(emulator)}
    assert sent == {("create", True), ("status", True), ("download", False)}


async def test_completed_is_accepted_as_the_finished_status_word(
    config: EmulatorConfig,
) -> None:
    server = EmulatorServer(create_app(config, finished_status="completed"))
    config.public_url = server.url
    server.start()
    adapter = VideoGatewayProvider(HttpDeployment(server.url, KEY, downloads=LOOPBACK_DOWNLOADS))
    try:
        submitted = await adapter.create(make_request())
        status, _ = await poll_until_done(adapter, submitted.upstream_id)
        assert status.result is not None
        assert status.result.url.endswith("/video.mp4")
    finally:
        await adapter.aclose()
        server.stop()


@pytest.mark.parametrize(
    ("message", "error", "flagged"),
    [
        (
            "Veo could not generate videos because the input image violates Vertex AI's "
            "usage guidelines. Support codes: 15236754",
            Refused,
            "image",
        ),
        ("The prompt couldn't be submitted: it might violate our policies", Refused, "prompt"),
        ("Generated video was filtered by the safety system", Refused, None),
        ("429 RESOURCE_EXHAUSTED. Quota exceeded for aiplatform", QuotaExceeded, None),
        ("Invalid aspect ratio for this model", InvalidRequest, None),
        ("Video generation failed", TransientError, None),
    ],
)
def test_error_envelopes_are_classified_by_what_they_say(
    message: str, error: type[ProviderError], flagged: str | None
) -> None:
    with pytest.raises(error) as caught:
        interpret_status({"job_id": "j", "status": "error", "error": message})
    assert type(caught.value) is error
    assert caught.value.details.get("flagged") == flagged
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("body", "state", "progress"),
    [
        ({"status": "queued"}, UpstreamState.PENDING, None),
        ({"status": "processing", "progress": 42}, UpstreamState.RUNNING, 42),
        ({"status": "rendering"}, UpstreamState.RUNNING, None),
        ({"status": "processing", "progress": "42%"}, UpstreamState.RUNNING, None),
    ],
)
def test_status_words_and_an_upstream_progress_figure_are_read(
    body: dict[str, object], state: UpstreamState, progress: int | None
) -> None:
    status = interpret_status(body)
    assert (status.state, status.progress) == (state, progress)


@pytest.mark.parametrize(
    "body",
    [
        {"status": "success"},
        {"status": "success", "video_url": "file:///etc/passwd"},
        {"job_id": "j"},
        ["not", "an", "object"],
    ],
)
def test_a_finished_answer_without_a_usable_link_is_transient(body: object) -> None:
    with pytest.raises(TransientError):
        interpret_status(body)


def test_from_settings_is_none_unless_both_the_key_and_the_base_url_are_set() -> None:
    assert PLUGIN.from_settings(Settings()) is None
    assert PLUGIN.from_settings(Settings(video_gateway_api_key=KEY)) is None
    assert PLUGIN.from_settings(Settings(video_gateway_base_url="https://vg.example")) is None


async def test_from_settings_uses_the_configured_create_path(config: EmulatorConfig) -> None:
    server = EmulatorServer(create_app(config, create_path="/v2/generate"))
    config.public_url = server.url
    server.start()
    provider = PLUGIN.from_settings(
        Settings(
            video_gateway_api_key=KEY,
            video_gateway_base_url=server.url,
            video_gateway_create_path="/v2/generate",
        )
    )
    assert isinstance(provider, VideoGatewayProvider)
    try:
        assert provider.name == "video_gateway"
        assert not provider.idempotent_create and not provider.supports_cancel
        assert KEY not in repr(provider)
        assert (await provider.create(make_request())).upstream_id
    finally:
        await provider.aclose()
        server.stop()
