"""The Wan (DashScope) adapter against its emulator on loopback: wire format and faults."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr
from starlette.applications import Starlette

from reelgate.catalog import load_catalog
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer
from reelgate.emulators.wan import API_PREFIX, BEIJING_PREFIX, create_app
from reelgate.errors import (
    InvalidRequest,
    ModelGone,
    NotAVideo,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.media.probe import probe_video
from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    Provider,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.http import HttpDeployment
from reelgate.providers.wan import PLUGIN, REGION_BASE_URLS, WanProvider
from tests.conftest import LOOPBACK_DOWNLOADS

KEY = "sk-wan-emulator-0123456789abcdef"


class Upstream:
    """The emulator app and its server, so tests can read what DashScope received."""

    def __init__(self, app: Starlette, server: EmulatorServer, config: EmulatorConfig) -> None:
        self.app = app
        self.server = server
        self.config = config
        self.base_url = f"{server.url}{API_PREFIX}"

    @property
    def received(self) -> list[dict[str, Any]]:
        return self.app.state.received  # type: ignore[no-any-return]

    @property
    def downloads(self) -> list[dict[str, str]]:
        return self.app.state.downloads  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def wan_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rendered results are cached by size and length: share them across tests."""
    return tmp_path_factory.mktemp("wan-videos")


@pytest.fixture(scope="module")
def wan_server(wan_videos: Path) -> Iterator[Upstream]:
    """One emulator per module: starting and stopping uvicorn costs more than a test."""
    config = EmulatorConfig(
        api_key=KEY, job_seconds=0.5, video_dir=wan_videos, retry_after_seconds=7
    )
    app = create_app(config)
    server = EmulatorServer(app)
    config.public_url = server.url
    server.start()
    try:
        yield Upstream(app, server, config)
    finally:
        server.stop()


@pytest.fixture
def upstream(wan_server: Upstream) -> Upstream:
    wan_server.received.clear()
    wan_server.downloads.clear()
    return wan_server


@pytest.fixture
async def wan(upstream: Upstream) -> AsyncIterator[WanProvider]:
    provider = WanProvider(
        HttpDeployment(base_url=upstream.base_url, api_key=KEY, downloads=LOOPBACK_DOWNLOADS)
    )
    yield provider
    await provider.aclose()


def _request(prompt: str = "a paper boat on a river", **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "job_id": "video_test",
        "attempt": 1,
        "model": "wan-2-1",
        "upstream_model": "wan2.1-t2v-turbo",
        "prompt": prompt,
        "duration_seconds": 5,
        "resolution": "480p",
        "aspect_ratio": "16:9",
        "width": 854,
        "height": 480,
        "seed": 3,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


@pytest.fixture
async def offline() -> AsyncIterator[WanProvider]:
    """For checks of the request body alone: create_body makes no call."""
    provider = WanProvider(
        HttpDeployment(
            base_url="https://dashscope.invalid/api/v1", api_key=KEY, downloads=LOOPBACK_DOWNLOADS
        )
    )
    yield provider
    await provider.aclose()


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


async def _finish(
    wan: WanProvider, upstream_id: str, timeout: float = 10.0
) -> list[UpstreamStatus]:
    seen: list[UpstreamStatus] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        status = await wan.status(upstream_id)
        seen.append(status)
        if status.state is UpstreamState.SUCCEEDED:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {upstream_id} never finished: {seen[-1] if seen else None}")


async def _download(wan: WanProvider, status: UpstreamStatus, path: Path) -> Path:
    assert status.result is not None
    with path.open("wb") as fh:
        async for chunk in wan.download(status.result):
            fh.write(chunk)
    return path


def test_the_adapter_implements_the_provider_protocol(wan: WanProvider) -> None:
    assert isinstance(wan, Provider)
    assert wan.name == "wan"
    assert wan.supports_cancel is True
    assert wan.idempotent_create is False


async def test_text_to_video_runs_to_a_real_video_at_dashscope_size(
    wan: WanProvider, upstream: Upstream, tmp_path: Path
) -> None:
    submitted = await wan.create(_request(negative_prompt="blurry, text"))
    seen = await _finish(wan, submitted.upstream_id)

    states = [s.state for s in seen]
    assert states[0] is UpstreamState.PENDING
    assert UpstreamState.RUNNING in states
    assert all(s.progress is None for s in seen[:-1]), "DashScope reports no progress figure"
    final = seen[-1]
    assert final.result is not None and final.result.expires_at is not None
    assert final.duration_seconds == 5.0
    assert KEY not in final.result.url

    info = probe_video(await _download(wan, final, tmp_path / "t2v.mp4"))
    assert (info.width, info.height) == (832, 480)
    assert abs(info.duration_seconds - 5.0) <= 0.2

    [create] = upstream.received
    assert create["headers"] == {"x-dashscope-async": "enable"}
    assert create["body"] == {
        "model": "wan2.1-t2v-turbo",
        "input": {"prompt": "a paper boat on a river", "negative_prompt": "blurry, text"},
        "parameters": {"size": "832*480", "duration": 5, "prompt_extend": True, "seed": 3},
    }
    [download] = upstream.downloads
    assert "authorization" not in download, "the key must not travel to the result host"


@pytest.mark.parametrize(
    ("resolution", "aspect_ratio", "size"),
    [
        ("720p", "16:9", "1280*720"),
        ("720p", "9:16", "720*1280"),
        ("720p", "1:1", "960*960"),
        ("480p", "9:16", "480*832"),
        ("480p", "1:1", "624*624"),
    ],
)
def test_resolution_and_aspect_ratio_map_to_the_sizes_dashscope_accepts(
    offline: WanProvider, resolution: str, aspect_ratio: str, size: str
) -> None:
    body = offline.create_body(_request(resolution=resolution, aspect_ratio=aspect_ratio))
    assert body["parameters"]["size"] == size


def test_a_combination_without_a_dashscope_size_fails_before_any_call(
    offline: WanProvider,
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        offline.create_body(_request(resolution="480p", aspect_ratio="4:3"))
    assert caught.value.code == "unsupported_size"


def test_seeds_beyond_dashscope_range_are_folded_reproducibly(offline: WanProvider) -> None:
    wan = offline
    body = wan.create_body(_request(seed=2**32 - 1))
    assert body["parameters"]["seed"] == 2_147_483_647
    assert "seed" not in wan.create_body(_request(seed=None))["parameters"]


async def test_image_to_video_uses_the_i2v_model_a_data_uri_and_a_tier(
    wan: WanProvider, upstream: Upstream, tmp_path: Path
) -> None:
    image = ImageInput(data=_png(320, 180), mime_type="image/png")
    submitted = await wan.create(_request(image=image, duration_seconds=3, aspect_ratio="9:16"))
    final = (await _finish(wan, submitted.upstream_id))[-1]

    body = upstream.received[0]["body"]
    assert body["model"] == "wan2.1-i2v-turbo"
    assert body["input"]["img_url"].startswith("data:image/png;base64,")
    assert body["parameters"] == {
        "resolution": "480P",
        "duration": 3,
        "prompt_extend": True,
        "seed": 3,
    }
    info = probe_video(await _download(wan, final, tmp_path / "i2v.mp4"))
    assert (info.width, info.height) == (832, 480), "the image's 16:9 wins over the request"
    assert abs(info.duration_seconds - 3.0) <= 0.2


async def test_a_refused_prompt_is_refused_at_create_and_flags_the_prompt(
    wan: WanProvider,
) -> None:
    with pytest.raises(Refused) as caught:
        await wan.create(_request("something forbidden [fault:refuse]"))
    assert caught.value.details["flagged"] == "prompt"
    assert caught.value.details["upstream_code"] == "DataInspectionFailed"
    assert caught.value.upstream_status == 400


async def test_a_refused_image_fails_the_task_and_flags_the_image(wan: WanProvider) -> None:
    image = ImageInput(data=_png(320, 180), mime_type="image/png")
    submitted = await wan.create(_request("fine words [fault:refuse-image]", image=image))
    with pytest.raises(Refused) as caught:
        await _finish(wan, submitted.upstream_id)
    assert caught.value.details["flagged"] == "image"
    assert caught.value.details["upstream_id"] == submitted.upstream_id


async def test_throttling_is_quota_and_leaves_the_pause_to_the_default_cooldown(
    wan: WanProvider,
) -> None:
    """DashScope documents no Retry-After (tests/fixtures/wire/wan/error-throttling-*):
    with none, the engine cools the deployment down for its default (planner)."""
    with pytest.raises(QuotaExceeded) as caught:
        await wan.create(_request("busy [fault:quota]"))
    assert caught.value.upstream_status == 429
    assert caught.value.details["upstream_code"] == "Throttling.RateQuota"
    assert caught.value.retry_after is None


async def test_a_burst_of_503s_is_transient_and_then_clears(wan: WanProvider) -> None:
    for _ in range(2):
        with pytest.raises(TransientError) as caught:
            await wan.create(_request("flaky [fault:5xx]"))
        assert caught.value.upstream_status == 503
    assert (await wan.create(_request("flaky [fault:5xx]"))).upstream_id


async def test_a_task_answer_that_is_not_json_is_transient(wan: WanProvider) -> None:
    submitted = await wan.create(_request("garbled [fault:malformed]"))
    with pytest.raises(TransientError):
        await wan.status(submitted.upstream_id)
    assert (await wan.status(submitted.upstream_id)).state is UpstreamState.PENDING


async def test_a_task_that_never_finishes_stays_running_and_cannot_be_canceled(
    wan: WanProvider, upstream: Upstream
) -> None:
    submitted = await wan.create(_request("forever [fault:never]"))
    await asyncio.sleep(upstream.config.job_seconds * 1.2)
    assert (await wan.status(submitted.upstream_id)).state is UpstreamState.RUNNING
    with pytest.raises(InvalidRequest) as caught:
        await wan.cancel(submitted.upstream_id)
    assert "PENDING" in caught.value.message


async def test_a_pending_task_can_be_canceled(wan: WanProvider) -> None:
    submitted = await wan.create(_request("changed my mind"))
    await wan.cancel(submitted.upstream_id)
    with pytest.raises(InvalidRequest) as caught:
        await wan.status(submitted.upstream_id)
    assert caught.value.code == "upstream_canceled"


async def test_an_unknown_or_expired_task_id_is_invalid(wan: WanProvider) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await wan.status("00000000-0000-0000-0000-000000000000")
    assert caught.value.code == "upstream_task_unknown"


async def test_a_duration_the_model_does_not_take_fails_with_the_upstream_message(
    wan: WanProvider,
) -> None:
    submitted = await wan.create(_request("six seconds please", duration_seconds=6))
    with pytest.raises(InvalidRequest) as caught:
        await _finish(wan, submitted.upstream_id)
    assert caught.value.details["upstream_code"] == "InvalidParameter"
    assert "duration" in caught.value.message


async def test_an_expired_result_link_fails_the_second_download(
    wan: WanProvider, tmp_path: Path
) -> None:
    final = (await _finish(wan, (await wan.create(_request("once [fault:expire]"))).upstream_id))[
        -1
    ]
    probe_video(await _download(wan, final, tmp_path / "first.mp4"))
    with pytest.raises(InvalidRequest) as caught:
        await _download(wan, final, tmp_path / "second.mp4")
    assert caught.value.code == "result_expired"
    assert caught.value.upstream_status == 403


async def test_a_slow_download_completes(wan: WanProvider, tmp_path: Path) -> None:
    final = (await _finish(wan, (await wan.create(_request("drip [fault:slow]"))).upstream_id))[-1]
    info = probe_video(await _download(wan, final, tmp_path / "slow.mp4"))
    assert (info.width, info.height) == (832, 480)


async def test_a_truncated_download_is_transient(wan: WanProvider, tmp_path: Path) -> None:
    final = (await _finish(wan, (await wan.create(_request("cut [fault:truncate]"))).upstream_id))[
        -1
    ]
    with pytest.raises(TransientError):
        await _download(wan, final, tmp_path / "cut.mp4")


async def test_a_result_that_is_not_a_video_fails_the_probe(
    wan: WanProvider, tmp_path: Path
) -> None:
    final = (await _finish(wan, (await wan.create(_request("junk [fault:notvideo]"))).upstream_id))[
        -1
    ]
    path = await _download(wan, final, tmp_path / "junk.mp4")
    with pytest.raises(NotAVideo):
        probe_video(path)


async def test_a_wrong_key_is_upstream_auth_and_never_shows_the_key(upstream: Upstream) -> None:
    wrong = "sk-definitely-not-the-right-key-42"
    provider = WanProvider(
        HttpDeployment(base_url=upstream.base_url, api_key=wrong, downloads=LOOPBACK_DOWNLOADS)
    )
    try:
        for call in (provider.create(_request()), provider.status("some-task")):
            with pytest.raises(InvalidRequest) as caught:
                await call
            error = caught.value
            assert error.code == "upstream_auth"
            assert error.upstream_status == 401
            assert "REELGATE_DASHSCOPE_API_KEY" in error.message
            for text in (str(error), repr(error), repr(error.to_dict()), repr(provider)):
                assert wrong not in text
    finally:
        await provider.aclose()


async def test_the_emulator_answers_a_missing_key_like_dashscope(upstream: Upstream) -> None:
    async with httpx.AsyncClient(base_url=upstream.base_url) as client:
        resp = await client.get("/tasks/anything")
    assert resp.status_code == 401
    assert resp.json()["code"] == "InvalidApiKey"
    assert resp.json()["message"] == "No API-key provided."


async def test_from_settings_needs_the_key_and_reads_the_base_url(tmp_path: Path) -> None:
    assert PLUGIN.from_settings(Settings(data_dir=tmp_path)) is None
    assert (
        PLUGIN.from_settings(Settings(data_dir=tmp_path, dashscope_api_key=SecretStr(" "))) is None
    )
    settings = Settings(
        data_dir=tmp_path,
        dashscope_api_key=SecretStr(KEY),
        dashscope_base_url="https://dashscope.aliyuncs.com/api/v1",
        provider_timeout_seconds=12.0,
    )
    provider = PLUGIN.from_settings(settings)
    assert isinstance(provider, WanProvider)
    assert "dashscope.aliyuncs.com" in repr(provider)
    assert KEY not in repr(provider)
    await provider.aclose()


# -- regions and their model names -----------------------------------------------------


async def test_each_region_knows_its_own_names_and_a_missing_one_is_gone(
    upstream: Upstream,
) -> None:
    """International names are ``wan2.1-*``, Beijing's ``wanx2.1-*`` (Alibaba's EN and ZH
    references); the other region's name is DashScope's "Model not exist." (fixture
    wan/error-model-not-exist-400.json), which is ModelGone: the job falls back."""
    beijing = WanProvider(
        HttpDeployment(
            base_url=f"{upstream.server.url}{BEIJING_PREFIX}",
            api_key=KEY,
            downloads=LOOPBACK_DOWNLOADS,
        ),
        region="beijing",
    )
    intl = WanProvider(
        HttpDeployment(base_url=upstream.base_url, api_key=KEY, downloads=LOOPBACK_DOWNLOADS)
    )
    try:
        ok = await beijing.create(_request("beijing", upstream_model="wanx2.1-t2v-turbo"))
        assert ok.upstream_id
        with pytest.raises(ModelGone) as wrong_region:
            await beijing.create(_request("beijing", upstream_model="wan2.1-t2v-turbo"))
        with pytest.raises(ModelGone):
            await intl.create(_request("intl", upstream_model="wanx2.1-t2v-turbo"))
        image = ImageInput(data=_png(640, 480), mime_type="image/png")
        with pytest.raises(ModelGone) as i2v:
            await beijing.create(_request("i2v", upstream_model="wan2.1-t2v-turbo", image=image))
    finally:
        await beijing.aclose()
        await intl.aclose()
    assert wrong_region.value.upstream_status == 400
    assert wrong_region.value.details["upstream_code"] == "InvalidParameter"
    assert wrong_region.value.message == "Model not exist."
    # the mark goes on the name that was sent (image-to-video's), not on the t2v one
    assert i2v.value.details["upstream_model"] == "wan2.1-i2v-turbo"


async def test_the_catalog_routes_wan_to_the_region_names() -> None:
    catalog = load_catalog()
    assert catalog.get("wan-2-1").route("intl").upstream_model == "wan2.1-t2v-turbo"
    assert catalog.get("wan-2-1").route("beijing").upstream_model == "wanx2.1-t2v-turbo"
    for region, url in REGION_BASE_URLS.items():
        built = PLUGIN.from_settings(Settings(dashscope_api_key="k", dashscope_region=region))
        assert built is not None and built.route == region
        assert url in repr(built)
        await built.aclose()
    chosen = PLUGIN.from_settings(
        Settings(
            dashscope_api_key="k",
            dashscope_region="beijing",
            dashscope_base_url="https://ws-1.cn-beijing.maas.aliyuncs.com/api/v1",
        )
    )
    assert chosen is not None and "ws-1.cn-beijing.maas" in repr(chosen)
    await chosen.aclose()


async def test_wan_2_5_renders_10_s_at_1080p_and_wan_2_2_refuses_720p(
    wan: WanProvider, tmp_path: Path
) -> None:
    ten = await wan.create(
        _request(
            "a long take",
            upstream_model="wan2.5-t2v-preview",
            duration_seconds=10,
            resolution="1080p",
            width=1920,
            height=1080,
        )
    )
    seen = await _finish(wan, ten.upstream_id)
    assert seen[-1].duration_seconds == 10
    odd = await wan.create(
        _request(
            "no 720p", upstream_model="wan2.2-t2v-plus", resolution="720p", width=1280, height=720
        )
    )
    with pytest.raises(InvalidRequest) as refused:
        await _finish(wan, odd.upstream_id)
    assert refused.value.details["upstream_code"] == "InvalidParameter"
