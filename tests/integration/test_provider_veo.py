"""VeoProvider (Gemini API) and VertexVeoProvider against the Veo emulators on loopback:
the wire format they send, how every upstream outcome is classified (a retired model
included), and Vertex credentials minted from a service-account key and refreshed."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.veo import GEMINI_RETIRED, create_gemini_app, create_vertex_app
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
    ResultLocation,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.google_token import GoogleToken
from reelgate.providers.http import HttpDeployment
from reelgate.providers.veo import PLUGIN, VeoProvider, VertexVeoProvider, vertex_base_url
from tests.conftest import LOOPBACK_DOWNLOADS

KEY = "AIzaSy-emulated-gemini-key-0123456789"
TOKEN = "ya29.emulated-vertex-access-token-0123456789"
PROJECT, LOCATION = "reel-project", "us-central1"


@pytest.fixture(scope="session")
def veo_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rendered results are cached per size and length (shared with test_gateway_veo.py)."""
    path = tmp_path_factory.getbasetemp() / "veo-videos"
    path.mkdir(exist_ok=True)
    return path


@contextmanager
def _serve(app: Starlette, config: EmulatorConfig) -> Iterator[tuple[EmulatorServer, Starlette]]:
    server = EmulatorServer(app)
    config.public_url = server.url  # read per request, so setting it after create_app is fine
    server.start()
    try:
        yield server, app
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gemini_emulator(veo_videos: Path) -> Iterator[tuple[EmulatorServer, Starlette]]:
    """A key the Gemini API's retirement of Veo has not reached (the route reelgate keeps
    for such keys); the default emulator answers these ids as gone."""
    config = EmulatorConfig(
        api_key=KEY, job_seconds=0.5, video_dir=veo_videos, still_served=GEMINI_RETIRED
    )
    with _serve(create_gemini_app(config), config) as served:
        yield served


@pytest.fixture(scope="module")
def vertex_emulator(veo_videos: Path) -> Iterator[tuple[EmulatorServer, Starlette]]:
    config = EmulatorConfig(api_key=TOKEN, job_seconds=0.5, video_dir=veo_videos)
    with _serve(create_vertex_app(config), config) as served:
        yield served


def _gemini(server: EmulatorServer, key: str = KEY) -> VeoProvider:
    return VeoProvider(
        HttpDeployment(
            f"{server.url}/v1beta", key, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS
        )
    )


def _vertex(server: EmulatorServer, token: str = TOKEN, **options: Any) -> VertexVeoProvider:
    deployment = HttpDeployment(
        f"{server.url}/v1", token, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS
    )
    return VertexVeoProvider(
        deployment, project=PROJECT, location=LOCATION, gcs_base_url=server.url, **options
    )


@pytest.fixture
async def veo(gemini_emulator: tuple[EmulatorServer, Starlette]) -> AsyncIterator[VeoProvider]:
    provider = _gemini(gemini_emulator[0])
    yield provider
    await provider.aclose()


@pytest.fixture
async def vertex(
    vertex_emulator: tuple[EmulatorServer, Starlette],
) -> AsyncIterator[VertexVeoProvider]:
    provider = _vertex(vertex_emulator[0])
    yield provider
    await provider.aclose()


def _request(prompt: str, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "job_id": "job_1",
        "attempt": 1,
        "model": "veo-3-1-fast",
        "upstream_model": "veo-3.1-fast-generate-preview",
        "prompt": prompt,
        "duration_seconds": 4,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "width": 1280,
        "height": 720,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def _vrequest(prompt: str, **overrides: Any) -> GenerationRequest:
    """A request as the catalog's ``vertex`` route sends it (the -001 ids)."""
    return _request(prompt, **{"upstream_model": "veo-3.1-fast-generate-001", **overrides})


def _creates(app: Starlette, prompt: str) -> list[dict[str, Any]]:
    return [
        r
        for r in app.state.received
        if r["method"] == "POST"
        and r["path"].endswith(":predictLongRunning")
        and r["body"]["instances"][0]["prompt"] == prompt
    ]


async def _finish(provider: VeoProvider, upstream_id: str, timeout: float = 10) -> UpstreamStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        status = await provider.status(upstream_id)
        assert status.progress is None  # Veo reports no progress figure
        if status.state is UpstreamState.SUCCEEDED:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{upstream_id} did not finish")


async def _result(provider: VeoProvider, request: GenerationRequest) -> ResultLocation:
    submitted = await provider.create(request)
    status = await _finish(provider, submitted.upstream_id)
    assert status.result is not None
    return status.result


async def _download(provider: VeoProvider, result: ResultLocation, path: Path) -> VideoInfo:
    with path.open("wb") as fh:
        async for chunk in provider.download(result):
            fh.write(chunk)
    return probe_video(path)


def _png(width: int = 72, height: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


# -- Gemini API -------------------------------------------------------------------------


async def test_text_to_video_sends_veo_fields_and_downloads_a_real_mp4(
    veo: VeoProvider, gemini_emulator: tuple[EmulatorServer, Starlette], tmp_path: Path
) -> None:
    server, app = gemini_emulator
    prompt = "a lighthouse at dusk, waves rolling in"
    request = _request(prompt, negative_prompt="people", seed=42)
    submitted = await veo.create(request)
    assert submitted.upstream_id.startswith("models/veo-3.1-fast-generate-preview/operations/")
    first = await veo.status(submitted.upstream_id)
    assert first.state is UpstreamState.RUNNING
    assert first.progress is None

    status = await _finish(veo, submitted.upstream_id)
    assert status.result is not None
    assert KEY not in status.result.url
    assert status.result.url.startswith(f"{server.url}/v1beta/files/")
    assert status.result.expires_at is not None
    info = await _download(veo, status.result, tmp_path / "t2v.mp4")
    assert (info.width, info.height) == (1280, 720)
    assert abs(info.duration_seconds - 4.0) <= 0.2

    [create] = _creates(app, prompt)
    assert create["path"] == "/v1beta/models/veo-3.1-fast-generate-preview:predictLongRunning"
    assert create["credential"] == "header"  # x-goog-api-key, never ?key=
    assert create["query"] == {}
    assert create["body"] == {
        "instances": [{"prompt": prompt}],
        "parameters": {
            "aspectRatio": "16:9",
            "durationSeconds": 4,
            "resolution": "720p",
            "sampleCount": 1,
            "negativePrompt": "people",
        },  # no seed: the Gemini API does not take one
    }
    downloads = [r for r in app.state.received if r["path"].endswith(":download")]
    assert all(r["credential"] == "header" and r["query"] == {"alt": "media"} for r in downloads)


async def test_image_to_video_sends_the_first_frame_inline(
    veo: VeoProvider, gemini_emulator: tuple[EmulatorServer, Starlette], tmp_path: Path
) -> None:
    png = _png()
    prompt = "the red card flips over"
    request = _request(
        prompt,
        aspect_ratio="9:16",
        width=720,
        height=1280,
        image=ImageInput(data=png, mime_type="image/png", url="https://example.com/card.png"),
    )
    result = await _result(veo, request)
    info = await _download(veo, result, tmp_path / "i2v.mp4")
    assert (info.width, info.height) == (720, 1280)
    [create] = _creates(gemini_emulator[1], prompt)
    assert create["body"]["instances"][0]["image"] == {
        "bytesBase64Encoded": base64.b64encode(png).decode(),
        "mimeType": "image/png",
    }
    assert create["body"]["parameters"]["aspectRatio"] == "9:16"


@pytest.mark.parametrize(("fault", "flagged"), [("refuse", "prompt"), ("refuse-image", "image")])
async def test_a_safety_filtered_operation_is_a_refusal_naming_the_input(
    veo: VeoProvider, fault: str, flagged: str
) -> None:
    submitted = await veo.create(_request(f"something unsafe [fault:{fault}]"))
    with pytest.raises(Refused) as caught:
        await _finish(veo, submitted.upstream_id)
    assert caught.value.details["flagged"] == flagged
    assert caught.value.details["upstream_id"] == submitted.upstream_id
    assert "usage guidelines" in caught.value.message


async def test_quota_is_classified_with_the_retry_delay_from_retry_info(veo: VeoProvider) -> None:
    with pytest.raises(QuotaExceeded) as caught:
        await veo.create(_request("busy day [fault:quota]"))
    assert caught.value.upstream_status == 429
    assert caught.value.retry_after == 30
    assert "exceeded your current quota" in caught.value.message


async def test_a_burst_of_503s_is_transient_then_the_create_goes_through(veo: VeoProvider) -> None:
    request = _request("overloaded [fault:5xx]")
    for _ in range(2):
        with pytest.raises(TransientError) as caught:
            await veo.create(request)
        assert caught.value.upstream_status == 503
    assert (await veo.create(request)).upstream_id


async def test_a_poll_answered_with_html_is_transient(veo: VeoProvider) -> None:
    submitted = await veo.create(_request("glitchy proxy [fault:malformed]"))
    with pytest.raises(TransientError):
        await veo.status(submitted.upstream_id)
    assert (await veo.status(submitted.upstream_id)).state is UpstreamState.RUNNING


async def test_a_job_that_never_finishes_stays_running(veo: VeoProvider) -> None:
    submitted = await veo.create(_request("forever [fault:never]"))
    for _ in range(3):
        await asyncio.sleep(0.25)
        assert (await veo.status(submitted.upstream_id)).state is UpstreamState.RUNNING


async def test_an_expired_link_fails_the_second_download(veo: VeoProvider, tmp_path: Path) -> None:
    result = await _result(veo, _request("fleeting [fault:expire]"))
    await _download(veo, result, tmp_path / "first.mp4")
    with pytest.raises(InvalidRequest) as caught:
        await _download(veo, result, tmp_path / "second.mp4")
    assert caught.value.code == "result_expired"
    assert caught.value.upstream_status == 403


async def test_a_slow_download_completes(veo: VeoProvider, tmp_path: Path) -> None:
    result = await _result(veo, _request("a snail [fault:slow]"))
    info = await _download(veo, result, tmp_path / "slow.mp4")
    assert (info.width, info.height) == (1280, 720)


async def test_a_truncated_download_is_transient(veo: VeoProvider, tmp_path: Path) -> None:
    result = await _result(veo, _request("cut short [fault:truncate]"))
    with pytest.raises(TransientError):
        await _download(veo, result, tmp_path / "cut.mp4")


async def test_a_result_that_is_not_a_video_fails_the_probe(
    veo: VeoProvider, tmp_path: Path
) -> None:
    result = await _result(veo, _request("an error page [fault:notvideo]"))
    with pytest.raises(NotAVideo):
        await _download(veo, result, tmp_path / "page.mp4")


@pytest.mark.parametrize("key", ["AIzaSy-wrong-key-do-not-echo-4242", ""])
async def test_a_wrong_or_missing_key_is_upstream_auth_without_the_key(
    gemini_emulator: tuple[EmulatorServer, Starlette], key: str
) -> None:
    provider = _gemini(gemini_emulator[0], key)
    try:
        with pytest.raises(InvalidRequest) as caught:
            await provider.create(_request("hello"))
    finally:
        await provider.aclose()
    error = caught.value
    assert error.code == "upstream_auth"
    assert error.upstream_status == (400 if key else 403)
    assert "REELGATE_GEMINI_API_KEY" in error.message
    if key:
        assert key not in f"{error} {error.to_dict()} {provider!r}"


async def test_the_key_is_never_sent_to_another_origin(veo: VeoProvider, veo_videos: Path) -> None:
    """A result link on a host other than the deployment's gets no x-goog-api-key."""
    config = EmulatorConfig(api_key=KEY, job_seconds=0.5, video_dir=veo_videos)
    with _serve(create_gemini_app(config), config) as (other, other_app):
        link = ResultLocation(url=f"{other.url}/v1beta/files/abc123:download?alt=media")
        with pytest.raises(InvalidRequest) as caught:
            await _download(veo, link, veo_videos / "never.mp4")
    assert caught.value.code == "upstream_auth"  # the other host saw no key at all
    assert [r["credential"] for r in other_app.state.received] == [None]


async def test_a_prompt_blocked_at_create_is_a_refusal(veo_videos: Path) -> None:
    """Google's documented wording for an input that trips a safety filter, as a 400."""

    async def blocked(request: Request) -> JSONResponse:
        message = "The prompt couldn't be submitted. It might violate our policies."
        error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
        return JSONResponse({"error": error}, status_code=400)

    app = Starlette(
        routes=[Route("/v1beta/models/{m}:predictLongRunning", blocked, methods=["POST"])]
    )
    config = EmulatorConfig(api_key=KEY, video_dir=veo_videos)
    with _serve(app, config) as (server, _):
        provider = _gemini(server)
        try:
            with pytest.raises(Refused) as caught:
                await provider.create(_request("anything"))
        finally:
            await provider.aclose()
    assert caught.value.upstream_status == 400
    assert caught.value.details["flagged"] == "prompt"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": 8, "message": "Quota exceeded for video generation."}, QuotaExceeded),
        ({"code": 13, "message": "Internal error encountered."}, TransientError),
        ({"code": 3, "message": "The input image violates the usage guidelines."}, Refused),
        ({"code": 3, "message": "Unsupported aspect ratio: 4:3."}, InvalidRequest),
    ],
)
async def test_a_failed_operation_is_classified_by_its_rpc_status(
    veo_videos: Path, error: dict[str, Any], expected: type[ProviderError]
) -> None:
    """An operation that ends ``done`` with ``error`` (a google.rpc.Status)."""

    async def failed(request: Request) -> JSONResponse:
        name = "models/veo-3.1-generate-preview/operations/failed1"
        return JSONResponse({"name": name, "done": True, "error": error})

    app = Starlette(routes=[Route("/v1beta/models/{m}/operations/{op}", failed)])
    config = EmulatorConfig(api_key=KEY, video_dir=veo_videos)
    with _serve(app, config) as (server, _):
        provider = _gemini(server)
        try:
            with pytest.raises(expected) as caught:
                await provider.status("models/veo-3.1-generate-preview/operations/failed1")
        finally:
            await provider.aclose()
    assert caught.value.details["upstream_id"].endswith("/failed1")


async def test_the_gemini_api_answers_every_retired_veo_id_as_gone(veo_videos: Path) -> None:
    """tests/fixtures/wire/veo/error-model-retired-404.json: 404 NOT_FOUND "... is no
    longer available" since 2026-10-22 (docs.apiyi.com; google-genai 3.6.1 README)."""
    config = EmulatorConfig(api_key=KEY, job_seconds=0.2, video_dir=veo_videos)
    with run_emulator("veo", config) as server:
        provider = _gemini(server)
        try:
            for model in sorted(GEMINI_RETIRED):
                with pytest.raises(ModelGone) as gone:
                    await provider.create(_request("a retired id", upstream_model=model))
                assert gone.value.upstream_status == 404
                assert f"models/{model} is no longer available" in gone.value.message
                assert gone.value.details["upstream_code"] == "NOT_FOUND"
        finally:
            await provider.aclose()


async def test_run_emulator_serves_vertex_with_the_001_ids(
    veo_videos: Path, tmp_path: Path
) -> None:
    config = EmulatorConfig(api_key=TOKEN, job_seconds=0.2, video_dir=veo_videos)
    with run_emulator("veo", config) as server:
        provider = _vertex(server)
        try:
            result = await _result(provider, _vrequest("registry wiring"))
            info = await _download(provider, result, tmp_path / "reg.mp4")
            with pytest.raises(ModelGone) as gone:
                await provider.create(
                    _vrequest("old id", upstream_model="veo-3.1-generate-preview")
                )
        finally:
            await provider.aclose()
    assert (info.width, info.height) == (1280, 720)
    # tests/fixtures/wire/vertex_veo/error-model-not-found-404.json
    assert "was not found or your project does not have access to it" in gone.value.message
    assert gone.value.upstream_status == 404


# -- Vertex AI --------------------------------------------------------------------------


async def test_vertex_inline_result_is_refetched_and_decoded_at_download(
    vertex: VertexVeoProvider, vertex_emulator: tuple[EmulatorServer, Starlette], tmp_path: Path
) -> None:
    app = vertex_emulator[1]
    prompt = "a glacier calving, aerial shot"
    request = _request(prompt, upstream_model="veo-3.1-generate-001", seed=7)
    submitted = await vertex.create(request)
    model_path = f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models"
    assert submitted.upstream_id.startswith(f"{model_path}/veo-3.1-generate-001/operations/")
    status = await _finish(vertex, submitted.upstream_id)
    assert status.result is not None
    assert status.result.url.startswith("vertex-operation:projects/")
    assert TOKEN not in status.result.url
    info = await _download(vertex, status.result, tmp_path / "inline.mp4")
    assert (info.width, info.height) == (1280, 720)

    [create] = _creates(app, prompt)
    assert create["path"] == f"/v1/{model_path}/veo-3.1-generate-001:predictLongRunning"
    assert create["body"] == {
        "instances": [{"prompt": prompt}],
        "parameters": {
            "aspectRatio": "16:9",
            "durationSeconds": 4,
            "resolution": "720p",
            "sampleCount": 1,
            "generateAudio": True,
            "seed": 7,
        },
    }
    fetches = [r for r in app.state.received if r["path"].endswith(":fetchPredictOperation")]
    assert {"operationName": submitted.upstream_id} in [r["body"] for r in fetches]


async def test_vertex_gcs_result_downloads_through_the_json_api_and_can_expire(
    vertex_emulator: tuple[EmulatorServer, Starlette], tmp_path: Path
) -> None:
    provider = _vertex(vertex_emulator[0], storage_uri="gs://reel-bucket/veo-out")
    try:
        result = await _result(provider, _vrequest("tide pools [fault:expire]"))
        assert result.url.startswith("gs://reel-bucket/veo-out/")
        info = await _download(provider, result, tmp_path / "gcs.mp4")
        assert (info.width, info.height) == (1280, 720)
        with pytest.raises(InvalidRequest) as caught:
            await _download(provider, result, tmp_path / "gone.mp4")
    finally:
        await provider.aclose()
    assert caught.value.code == "result_expired"
    assert caught.value.upstream_status == 404
    reads = [r for r in vertex_emulator[1].state.received if r["path"].startswith("/storage/")]
    assert reads[0]["path"].startswith("/storage/v1/b/reel-bucket/o/veo-out/")
    assert reads[0]["query"] == {"alt": "media"}


async def test_vertex_refusal_and_quota(vertex: VertexVeoProvider) -> None:
    submitted = await vertex.create(_vrequest("unsafe [fault:refuse-image]"))
    with pytest.raises(Refused) as refused:
        await _finish(vertex, submitted.upstream_id)
    assert refused.value.details["flagged"] == "image"
    with pytest.raises(QuotaExceeded) as quota:
        await vertex.create(_vrequest("busy [fault:quota]"))
    assert quota.value.upstream_status == 429


async def test_vertex_wrong_token_is_upstream_auth_without_the_token(
    vertex_emulator: tuple[EmulatorServer, Starlette],
) -> None:
    wrong = "ya29.wrong-token-do-not-echo"
    provider = _vertex(vertex_emulator[0], wrong)
    try:
        with pytest.raises(InvalidRequest) as caught:
            await provider.create(_vrequest("hello"))
    finally:
        await provider.aclose()
    assert caught.value.code == "upstream_auth"
    assert caught.value.upstream_status == 401
    assert "REELGATE_VERTEX_ACCESS_TOKEN" in caught.value.message
    assert wrong not in f"{caught.value} {caught.value.to_dict()} {provider!r}"


# -- from_settings ----------------------------------------------------------------------


async def test_from_settings_prefers_vertex_then_the_gemini_key_then_nothing() -> None:
    assert PLUGIN.from_settings(Settings()) is None
    assert PLUGIN.from_settings(Settings(vertex_access_token="t")) is None  # no project
    vertex = PLUGIN.from_settings(
        Settings(gemini_api_key="k", vertex_access_token="t", vertex_project="p")
    )
    gemini = PLUGIN.from_settings(Settings(gemini_api_key="k"))
    world = PLUGIN.from_settings(
        Settings(vertex_access_token="t", vertex_project="p", vertex_location="global")
    )
    try:
        assert isinstance(vertex, VertexVeoProvider) and vertex.route == "vertex"
        assert "https://us-central1-aiplatform.googleapis.com/v1" in repr(vertex)
        assert type(gemini) is VeoProvider and gemini.route == "gemini"
        assert "generativelanguage.googleapis.com/v1beta" in repr(gemini)
        # google-genai's _api_client: "global" has no regional host prefix
        assert "https://aiplatform.googleapis.com/v1" in repr(world)
    finally:
        for provider in (vertex, gemini, world):
            if provider is not None:
                await provider.aclose()


def test_regional_and_multi_region_hosts_follow_google_genai() -> None:
    assert vertex_base_url("europe-west4") == "https://europe-west4-aiplatform.googleapis.com/v1"
    assert vertex_base_url("us") == "https://aiplatform.us.rep.googleapis.com/v1"
    assert vertex_base_url("global") == "https://aiplatform.googleapis.com/v1"


async def test_lite_renders_up_to_1080p_and_refuses_4k(
    vertex: VertexVeoProvider, vertex_emulator: tuple[EmulatorServer, Starlette]
) -> None:
    lite = "veo-3.1-lite-generate-001"
    ok = await vertex.create(
        _vrequest("lite", upstream_model=lite, resolution="1080p", duration_seconds=8)
    )
    assert f"/models/{lite}/operations/" in ok.upstream_id
    with pytest.raises(InvalidRequest) as refused:
        await vertex.create(_vrequest("lite 4k", upstream_model=lite, resolution="4k"))
    assert refused.value.upstream_status == 400


# -- Vertex credentials: a service-account key, refreshed --------------------------------


def _service_account(path: Path, token_uri: str) -> str:
    """Write a service-account key file (the shape of a real one, with a fresh RSA key);
    returns its public key (PEM) for the emulator's token endpoint to trust."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "0123456789abcdef",
                "private_key": private,
                "client_email": f"reelgate@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": token_uri,
            }
        )
    )
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def token_emulator(veo_videos: Path) -> Iterator[tuple[EmulatorServer, Starlette]]:
    config = EmulatorConfig(
        api_key="no-fixed-token-is-accepted", job_seconds=0.2, video_dir=veo_videos
    )
    with _serve(create_vertex_app(config), config) as served:
        yield served


@pytest.mark.parametrize("lifetime", [3599, 120])
async def test_a_service_account_key_mints_tokens_and_refreshes_them_before_expiry(
    token_emulator: tuple[EmulatorServer, Starlette], tmp_path: Path, lifetime: int
) -> None:
    server, app = token_emulator
    state = app.state.veo
    state.config.token_seconds = lifetime
    key_file = tmp_path / "sa.json"
    email = f"reelgate@{PROJECT}.iam.gserviceaccount.com"
    state.service_accounts[email] = _service_account(key_file, f"{server.url}/token")
    token = GoogleToken.from_service_account_file(key_file)
    provider = VertexVeoProvider(
        HttpDeployment(f"{server.url}/v1", "", timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS),
        project=PROJECT,
        location=LOCATION,
        gcs_base_url=server.url,
        token=token,
    )
    try:
        for n in range(3):
            await provider.create(_vrequest(f"minted {n}"))
    finally:
        await provider.aclose()
    grants = [r for r in state.received if r["path"] == "/token"]
    # a token good for an hour serves every call; one that expires within the refresh
    # margin (5 min) is replaced before each call
    assert state.tokens_issued == len(grants) == (1 if lifetime == 3599 else 3)
    assert token.current is not None and token.current in state.tokens
    assert all(r["credential"] is None for r in grants)  # the grant carries no bearer


async def test_a_key_google_does_not_know_is_upstream_auth(
    token_emulator: tuple[EmulatorServer, Starlette], tmp_path: Path
) -> None:
    server, app = token_emulator
    key_file = tmp_path / "sa.json"
    _service_account(key_file, f"{server.url}/token")  # never registered with the emulator
    provider = VertexVeoProvider(
        HttpDeployment(f"{server.url}/v1", "", timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS),
        project=PROJECT,
        location=LOCATION,
        token=GoogleToken.from_service_account_file(key_file),
    )
    try:
        with pytest.raises(InvalidRequest) as refused:
            await provider.create(_vrequest("who are you"))
    finally:
        await provider.aclose()
    assert refused.value.code == "upstream_auth"
    assert "Invalid JWT Signature" in refused.value.message
    assert not [r for r in app.state.veo.received if r["path"].endswith(":predictLongRunning")]


def test_a_file_that_is_not_a_service_account_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notakey.json"
    bad.write_text('{"type": "authorized_user"}')
    with pytest.raises(ValueError, match="not a service-account key file"):
        GoogleToken.from_service_account_file(bad)


async def test_application_default_credentials_name_the_key_and_the_project(
    token_emulator: tuple[EmulatorServer, Starlette],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REELGATE_VERTEX_USE_ADC: google.auth.default() finds the key file that
    GOOGLE_APPLICATION_CREDENTIALS names, and its project_id serves as the project."""
    server, app = token_emulator
    key_file = tmp_path / "adc.json"
    email = f"reelgate@{PROJECT}.iam.gserviceaccount.com"
    app.state.veo.service_accounts[email] = _service_account(key_file, f"{server.url}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    provider = PLUGIN.from_settings(
        Settings(vertex_use_adc=True, vertex_base_url=f"{server.url}/v1")
    )
    assert isinstance(provider, VertexVeoProvider)
    try:
        submitted = await provider.create(_vrequest("by default"))
    finally:
        await provider.aclose()
    assert submitted.upstream_id.startswith(f"projects/{PROJECT}/locations/us-central1/")
    assert app.state.veo.tokens_issued == 1
