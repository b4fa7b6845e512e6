"""The Python SDK against a real reelgate (API + worker on SQLite, uvicorn on a
loopback port), every test run with both ``Client`` and ``AsyncClient``; plus
tiny loopback servers for what a healthy gateway will not do on demand (5xx,
429, a dropped event stream, no event stream at all)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import reelgate_client
from reelgate.api.app import create_app
from reelgate.catalog import load_catalog
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorServer
from reelgate.engine.worker import Worker
from reelgate.media.probe import probe_video
from reelgate.runtime import Runtime, build_runtime
from reelgate.store import migrate
from reelgate.store.accounts import create_account, create_key
from reelgate.store.ledger import grant
from reelgate_client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    InsufficientCreditsError,
    JobCanceledError,
    JobTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ReelgateAPIError,
    ReelgateClientError,
    RefusedError,
    ServerError,
    ValidationError,
    Video,
    WaitTimeout,
)
from tests.conftest import TEST_KEY
from tests.scripted import ScriptedProvider

T = TypeVar("T")


# -- a real gateway on a loopback port -------------------------------------------


class Gateway:
    """reelgate's app and a worker on one event loop in a background thread."""

    def __init__(self, settings: Settings, video: Path) -> None:
        self.settings = settings
        self.scripted = ScriptedProvider(video=video)
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""

    def _add_scripted_models(self, rt: Runtime) -> None:
        rt.providers.providers["scripted"] = self.scripted
        local = load_catalog().get("local")

        def model(model_id: str, **changes: Any) -> Any:
            return dataclasses.replace(
                local,
                id=model_id,
                provider="scripted",
                upstream_model=model_id,
                poll_interval_seconds=0.05,
                typical_seconds=1.0,
                **changes,
            )

        # q-primary answers quota (its upstream then cools down for 30 s, so it is
        # kept apart from s-primary); s-deadline fails with timeout after 1 s
        extra = [
            model("s-primary"),
            model("s-backup"),
            model("q-primary"),
            model("s-deadline", deadline_seconds=1),
        ]
        rt.catalog.replace([*rt.catalog, *extra])

    async def _main(self) -> None:
        from reelgate.accounts.dev import ensure_dev_account

        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = uvicorn.Config("", host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        sock = config.bind_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        rt = await build_runtime(self.settings, public_url=self.url)
        self.rt = rt
        await ensure_dev_account(rt)
        self._add_scripted_models(rt)
        config.app = create_app(rt)
        server = uvicorn.Server(config)
        worker = Worker.from_runtime(rt, concurrency=4, lease_seconds=10)
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock])),
            asyncio.create_task(worker.run()),
        ]
        while not server.started:
            await asyncio.sleep(0.01)
        self._ready.set()
        await self._stop.wait()
        server.should_exit = True
        worker.stop()
        await asyncio.gather(*tasks)
        await rt.aclose()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("reelgate did not start")

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the gateway's loop (its database lives there)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def new_key(self, *, credits_milli: int = 0, scopes: tuple[str, ...] = ()) -> str:
        async def make() -> str:
            async with self.rt.db.begin() as conn:
                account = await create_account(conn, "sdk test")
                kw: dict[str, Any] = {"scopes": scopes} if scopes else {}
                key = await create_key(conn, account, **kw)
                if credits_milli:
                    await grant(conn, account, credits_milli, "sdk test grant")
            return key

        return await asyncio.to_thread(self.run, make())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_video: Path) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("sdk-gateway")
    db = f"sqlite:///{tmp / 'reelgate.db'}"
    migrate.upgrade(db)
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("REELGATE_")]:
            mp.delenv(name)
        # mirror retries of a result that is not a video: fast, not minutes
        mp.setattr("reelgate.engine.planner.backoff_seconds", lambda *a, **k: 0.01)
        settings = Settings(
            data_dir=tmp / "data",
            database_url=db,
            storage_url=(tmp / "videos").as_uri(),
            dev_api_key=TEST_KEY,
            idle_poll_seconds=1.0,
            rate_limit="",
        )
        gw = Gateway(settings, tiny_video)
        gw.start()
        try:
            yield gw
        finally:
            gw.stop()


class Sdk:
    """One test body for both clients: every call is awaited; the blocking
    client's calls run in a thread, as a blocking program would make them."""

    def __init__(self, kind: str, base_url: str, api_key: str | None, **kw: Any) -> None:
        self.kind = kind
        self.sync = Client(base_url, api_key, **kw) if kind == "sync" else None
        self.aio = AsyncClient(base_url, api_key, **kw) if kind == "async" else None

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target: Any = self.aio if self.aio is not None else self.sync
        for part in method.split("."):
            target = getattr(target, part)
        if self.aio is not None:
            return await target(*args, **kwargs)
        return await asyncio.to_thread(target, *args, **kwargs)

    async def collect(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Drain an iterator method (iter_videos, events) into a list."""
        if self.aio is not None:
            return [x async for x in getattr(self.aio, method)(*args, **kwargs)]
        assert self.sync is not None
        it = getattr(self.sync, method)
        return await asyncio.to_thread(lambda: list(it(*args, **kwargs)))

    async def close(self) -> None:
        if self.aio is not None:
            await self.aio.aclose()
        if self.sync is not None:
            self.sync.close()


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_sdk(kind: str) -> AsyncIterator[Callable[..., Sdk]]:
    made: list[Sdk] = []

    def make(base_url: str, api_key: str | None = TEST_KEY, **kw: Any) -> Sdk:
        sdk = Sdk(kind, base_url, api_key, **kw)
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        await sdk.close()


@pytest.fixture
def sdk(gateway: Gateway, make_sdk: Callable[..., Sdk]) -> Sdk:
    return make_sdk(gateway.url)


# -- the public surface ---------------------------------------------------------------


def test_every_name_in_all_exists_and_errors_share_one_root() -> None:
    for name in reelgate_client.__all__:
        assert hasattr(reelgate_client, name), name
    errors = [
        getattr(reelgate_client, n)
        for n in reelgate_client.__all__
        if isinstance(getattr(reelgate_client, n), type)
        and issubclass(getattr(reelgate_client, n), BaseException)
    ]
    assert len(errors) >= 15
    assert all(issubclass(e, ReelgateClientError) for e in errors)


# -- against the real gateway ----------------------------------------------------------


async def test_generate_reports_rising_progress_and_downloads_a_playable_video(
    sdk: Sdk, tmp_path: Path
) -> None:
    seen: list[tuple[str, int]] = []
    video: Video = await sdk(
        "generate",
        "local",
        f"a red fox running through snow ({sdk.kind})",
        duration_seconds=1,
        resolution="360p",
        aspect_ratio="16:9",
        metadata={"test": "sdk"},
        on_progress=lambda v: seen.append((v.status, v.progress)),
    )
    assert video.status == "completed" and video.delivered_by == "local"
    assert video.cost is not None and video.cost.millicredits == 1000
    assert video.metadata == {"test": "sdk"}
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and progress[-1] == 100, seen
    assert len(set(progress)) >= 2, seen
    assert seen[-1][0] == "completed"

    path = await sdk("download", video, tmp_path / "fox.mp4")
    assert path == tmp_path / "fox.mp4"
    assert [p.name for p in tmp_path.iterdir()] == ["fox.mp4"]  # no temp file left over
    assert video.result is not None and path.stat().st_size == video.result.bytes
    info = probe_video(path)
    assert info.video_codec == "h264" and (info.width, info.height) == (640, 360)
    assert abs(info.duration_seconds - 1.0) <= 0.1

    # by id, into a folder: <id>.mp4
    into = await sdk("download", video.id, tmp_path)
    assert into == tmp_path / f"{video.id}.mp4" and into.read_bytes() == path.read_bytes()

    # its poster and sprite sheet, as OpenAI names the variants
    assert video.result.thumbnail_url and video.result.spritesheet_url
    layout = video.result.spritesheet
    assert layout is not None and (layout["tiles"], layout["interval_seconds"]) == (1, 1.0)
    poster = await sdk("download", video, tmp_path, variant="thumbnail")
    sheet = await sdk("download", video.id, tmp_path, variant="spritesheet")
    assert (poster.name, sheet.name) == (
        f"{video.id}.thumbnail.webp",
        f"{video.id}.spritesheet.jpg",
    )
    with Image.open(poster) as p, Image.open(sheet) as s:
        assert (p.format, p.size) == ("WEBP", (640, 360))
        assert (s.format, s.size) == ("JPEG", (layout["tile_width"], layout["tile_height"]))


async def test_extend_continues_a_video_and_remix_names_the_models_that_can(
    sdk: Sdk, tmp_path: Path
) -> None:
    source: Video = await sdk(
        "generate", "local", f"a kite ({sdk.kind})", duration_seconds=1, resolution="360p"
    )
    queued: Video = await sdk("extend", source.id, "the kite climbs", duration_seconds=2)
    assert queued.status == "queued" and queued.extended_from_video_id == source.id
    done: Video = await sdk("wait", queued.id)
    assert done.status == "completed" and done.units_consumed == 2  # the seconds added
    assert done.result is not None and done.result.duration_seconds == 3.0  # the whole
    path = await sdk("download", done, tmp_path / "longer.mp4")
    assert abs(probe_video(path).duration_seconds - 3.0) < 0.1
    with pytest.raises(ValidationError) as refused:
        await sdk("remix", source.id, "a balloon")
    assert refused.value.code == "remix_not_supported"


async def test_a_storyboard_is_made_followed_and_downloaded(sdk: Sdk, tmp_path: Path) -> None:
    shots = [
        {"model": "local", "prompt": f"shot {n} ({sdk.kind})", "duration_seconds": 1}
        for n in (1, 2)
    ]
    for shot in shots:
        shot["resolution"] = "360p"
    board = await sdk("create_storyboard", shots, continue_from_previous=True)
    assert board.status == "queued" and [s.status for s in board.shots] == ["pending"] * 2
    seen: list[int] = []
    done = await sdk("wait_storyboard", board.id, on_progress=lambda b: seen.append(b.progress))
    assert done.status == "completed" and seen[-1] == 100 and seen == sorted(seen)
    assert [s.status for s in done.shots] == ["completed", "completed"]
    assert done.units_consumed == 2 and done.cost is not None and done.cost.credits == "2.000"
    assert done.result is not None and done.result["joins_at"] == [1.0]
    path = await sdk("download_storyboard", done, tmp_path)
    assert path.name == f"{done.id}.mp4"
    assert abs(probe_video(path).duration_seconds - 2.0) < 0.1
    with pytest.raises(ConflictError) as refused:
        await sdk("retry_shot", done.id, 1, prompt="again")
    assert refused.value.code == "shot_not_retryable"


async def test_models_list_get_iterate_and_the_usage_log(sdk: Sdk) -> None:
    models = await sdk("models")
    local = next(m for m in models if m.id == "local")
    assert local.usable and "360p" in local.allowed.resolution
    assert local.price.millicredits_per_second == 1000
    assert (local.lifecycle, local.route, local.successor) == ("ga", "local", None)
    sora = next(m for m in models if m.id == "sora-2")
    assert sora.successor == "veo-3-1"
    azure = sora.raw["routes"]["azure"]
    assert {k: azure[k] for k in ("upstream_model", "lifecycle", "retires_at", "provider")} == {
        "upstream_model": "sora-2",
        "lifecycle": "retired",
        "retires_at": "2026-10-15",
        "provider": "sora",
    }

    done = [await sdk("generate", "s-primary", f"page {i} {sdk.kind}") for i in range(3)]
    page = await sdk("list", limit=2)
    assert len(page.data) == 2 and page.has_more
    rest = await sdk("list", limit=100, after=page.last_id)
    ids = [v.id for v in (*page.data, *rest.data)]
    assert all(v.id in ids for v in done)
    everything = await sdk.collect("iter_videos", page_size=2)
    assert [v.id for v in everything] == ids

    got = await sdk("get", done[0].id)
    assert (
        got.id == done[0].id and got.status == "completed" and got.attempts[0].model == "s-primary"
    )
    completed = await sdk("list", status="completed", limit=100)
    assert {v.status for v in completed.data} == {"completed"}

    recent = await sdk("usage.recent", limit=3)
    assert [r.job_id for r in recent.data] == [v.id for v in reversed(done)]
    assert recent.data[0].cost == "1.000" and recent.data[0].seconds == 1
    summary = await sdk("usage.summary")
    assert summary.total_seconds >= 3 and any(d.model == "s-primary" for d in summary.days)
    exported = await sdk("usage.export_csv")
    assert exported.startswith("job_id,") and all(v.id in exported for v in done)
    balance = await sdk("balance")
    assert (
        balance.available_millicredits == balance.balance_millicredits - balance.held_millicredits
    )


async def test_fallback_on_quota_completes_on_the_next_model(sdk: Sdk) -> None:
    video = await sdk("generate", "q-primary", "quota please", fallback=["s-backup"])
    assert video.status == "completed" and video.delivered_by == "s-backup"
    assert [a.model for a in video.attempts] == ["q-primary", "s-backup"]


async def test_failed_jobs_raise_their_typed_error(sdk: Sdk) -> None:
    with pytest.raises(RefusedError) as refused:
        await sdk("generate", "s-primary", "refuse this")
    assert refused.value.code == "refused" and refused.value.status is None
    assert refused.value.video.status == "failed" and refused.value.message

    with pytest.raises(QuotaError) as quota:
        await sdk("generate", "q-primary", "quota and no fallback")
    assert quota.value.video.error is not None and quota.value.video.error.code == "quota"

    with pytest.raises(JobTimeoutError) as timeout:
        await sdk("generate", "s-deadline", "never finishes")
    assert timeout.value.code == "timeout"


async def test_wait_timeout_leaves_the_job_running_and_cancel_ends_it(sdk: Sdk) -> None:
    video = await sdk("submit", "s-primary", "never finishes either")
    with pytest.raises(WaitTimeout) as waited:
        await sdk("wait", video.id, timeout=0.5)
    assert waited.value.video_id == video.id
    assert (await sdk("get", video.id)).status in ("queued", "in_progress")

    await sdk("cancel", video.id)
    with pytest.raises(JobCanceledError) as canceled:
        await sdk("wait", video, timeout=20)
    assert canceled.value.video.status == "canceled"


async def test_events_are_numbered_and_end_with_the_final_one(sdk: Sdk) -> None:
    video = await sdk("generate", "s-primary", "events please")
    events = await sdk.collect("events", video.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "video.queued" and events[-1].type == "video.completed"
    assert events[-1].video is not None and events[-1].video.id == video.id
    later = await sdk.collect("events", video.id, after=len(events) - 1)
    assert [e.seq for e in later] == [len(events)]


async def test_retry_mirror_after_a_failed_mirror(gateway: Gateway, sdk: Sdk) -> None:
    video = await sdk("generate", "s-primary", f"notavideo {sdk.kind}")
    assert video.result is not None and video.result.mirror_status == "failed"

    upstream_id = video.attempts[-1].upstream_id
    assert upstream_id is not None
    gateway.scripted._prompts[upstream_id] = "fixed"  # the upstream serves a real video now
    again = await sdk("retry_mirror", video.id)
    assert again.status == "completed"
    for _ in range(200):
        got = await sdk("get", video.id)
        if got.result is not None and got.result.mirror_status == "stored":
            break
        await asyncio.sleep(0.05)
    assert got.result is not None and got.result.mirror_status == "stored"
    with pytest.raises(ConflictError) as twice:
        await sdk("retry_mirror", video.id)
    assert twice.value.status == 409 and twice.value.code == "mirror_not_retryable"


async def test_http_errors_become_typed_exceptions(
    gateway: Gateway, sdk: Sdk, make_sdk: Callable[..., Sdk]
) -> None:
    with pytest.raises(ValidationError) as invalid:
        await sdk("submit", "local", "a fox", resolution="4k")
    err = invalid.value
    assert (err.status, err.code, err.param) == (400, "invalid_parameter", "resolution")
    assert err.allowed == ["360p", "480p", "720p", "1080p"]

    with pytest.raises(AuthenticationError) as unauthorized:
        await make_sdk(gateway.url, "rg_not_a_key")("models")
    assert unauthorized.value.status == 401 and unauthorized.value.code == "invalid_api_key"

    broke = make_sdk(gateway.url, await gateway.new_key())
    with pytest.raises(InsufficientCreditsError) as poor:
        await broke("submit", "local", "a fox", duration_seconds=2)
    assert poor.value.status == 402 and poor.value.code == "insufficient_credits"
    assert (poor.value.available, poor.value.shortfall) == ("0.000", "2.000")

    reader = make_sdk(gateway.url, await gateway.new_key(scopes=("jobs:read",)))
    with pytest.raises(PermissionDeniedError) as denied:
        await reader("submit", "local", "a fox")
    assert denied.value.status == 403 and denied.value.code == "insufficient_scope"

    for call in ("get", "cancel", "wait"):
        with pytest.raises(NotFoundError) as missing:
            await sdk(call, "video_does_not_exist")
        assert missing.value.status == 404 and missing.value.details.get("param") == "id"


# -- what a healthy gateway will not do on demand: tiny loopback servers ---------------


def _job(progress: int, status: str = "in_progress") -> dict[str, Any]:
    return {
        "id": "video_x",
        "object": "video",
        "model": "m",
        "status": status,
        "progress": progress,
    }


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reelgate_client._core.INITIAL_BACKOFF", 0.05)


@pytest.fixture
def fake() -> Iterator[Callable[[list[Route]], EmulatorServer]]:
    started: list[EmulatorServer] = []

    def serve(routes: list[Route]) -> EmulatorServer:
        server = EmulatorServer(Starlette(routes=routes))
        server.start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


async def test_5xx_is_retried_with_backoff_and_400_is_not(
    fake: Callable[[list[Route]], EmulatorServer], make_sdk: Callable[..., Sdk], fast_backoff: None
) -> None:
    hits: dict[str, int] = {"models": 0, "submit": 0}
    keys: list[str | None] = []

    async def models(_: Request) -> Response:
        hits["models"] += 1
        if hits["models"] <= 2:
            return JSONResponse({"error": {"code": "down", "message": "busy"}}, status_code=503)
        return JSONResponse({"object": "list", "data": [{"id": "m"}]})

    async def submit(request: Request) -> Response:
        hits["submit"] += 1
        keys.append(request.headers.get("idempotency-key"))
        error = {"code": "invalid_parameter", "message": "no", "param": "seed"}
        return JSONResponse({"error": error}, status_code=400)

    server = fake([Route("/v1/models", models), Route("/v1/videos", submit, methods=["POST"])])
    sdk = make_sdk(server.url)
    assert [m.id for m in await sdk("models")] == ["m"]
    assert hits["models"] == 3
    with pytest.raises(ValidationError):
        await sdk("submit", "m", "p")
    assert hits["submit"] == 1 and keys[0] and keys[0].startswith("rg-sdk-")


async def test_a_retried_submit_reuses_its_idempotency_key_and_5xx_gives_up(
    fake: Callable[[list[Route]], EmulatorServer], make_sdk: Callable[..., Sdk], fast_backoff: None
) -> None:
    keys: list[str | None] = []

    async def submit(request: Request) -> Response:
        keys.append(request.headers.get("idempotency-key"))
        return JSONResponse({"error": {"code": "internal_error", "message": "x"}}, status_code=500)

    server = fake([Route("/v1/videos", submit, methods=["POST"])])
    with pytest.raises(ServerError) as failed:
        await make_sdk(server.url, max_retries=1)("submit", "m", "p", idempotency_key="mine")
    assert failed.value.status == 500 and failed.value.code == "internal_error"
    assert keys == ["mine", "mine"]


async def test_429_waits_for_retry_after_then_raises_rate_limit_error(
    fake: Callable[[list[Route]], EmulatorServer], make_sdk: Callable[..., Sdk]
) -> None:
    times: list[float] = []

    async def limited(_: Request) -> Response:
        times.append(time.monotonic())
        body = {"error": {"code": "rate_limited", "message": "slow down"}}
        return JSONResponse(body, status_code=429, headers={"Retry-After": "0.3"})

    server = fake([Route("/v1/balance", limited)])
    with pytest.raises(RateLimitError) as limited_err:
        await make_sdk(server.url, max_retries=1)("balance")
    assert limited_err.value.retry_after == 0.3 and limited_err.value.code == "rate_limited"
    assert len(times) == 2 and times[1] - times[0] >= 0.29


async def test_an_unreachable_gateway_is_an_api_connection_error(
    make_sdk: Callable[..., Sdk], fast_backoff: None
) -> None:
    from reelgate.emulators.base import _free_port

    with pytest.raises(APIConnectionError):
        await make_sdk(f"http://127.0.0.1:{_free_port()}", max_retries=1)("get", "video_x")


def _sse(seq: int, progress: int, status: str = "in_progress") -> str:
    kind = {"completed": "video.completed"}.get(status, "video.progress")
    data = {"seq": seq, "type": kind, "status": status, "progress": progress}
    data["job"] = _job(progress, status)
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


async def test_wait_follows_the_event_stream_and_resumes_from_last_event_id(
    fake: Callable[[list[Route]], EmulatorServer], make_sdk: Callable[..., Sdk]
) -> None:
    resumed_from: list[str | None] = []
    polls = 0

    async def events(request: Request) -> Response:
        resumed_from.append(request.headers.get("last-event-id"))

        async def first() -> AsyncIterator[str]:
            yield "retry: 50\n\n: keep-alive\n\n"
            yield _sse(1, 10)
            yield _sse(2, 60)  # then the connection drops mid-job

        async def second() -> AsyncIterator[str]:
            yield _sse(3, 100, "completed")

        body = first() if len(resumed_from) == 1 else second()
        return StreamingResponse(body, media_type="text/event-stream")

    async def get(_: Request) -> Response:
        nonlocal polls
        polls += 1
        return JSONResponse(_job(0, "queued"))

    server = fake([Route("/v1/videos/{vid}/events", events), Route("/v1/videos/{vid}", get)])
    seen: list[int] = []
    video = await make_sdk(server.url)(
        "wait", "video_x", on_progress=lambda v: seen.append(v.progress)
    )
    assert video.status == "completed"
    assert seen == [10, 60, 100]
    assert resumed_from == ["0", "2"]
    assert polls == 0


async def test_wait_polls_when_the_gateway_has_no_event_stream(
    fake: Callable[[list[Route]], EmulatorServer], make_sdk: Callable[..., Sdk]
) -> None:
    answers = iter([_job(0, "queued"), _job(40), _job(40), _job(100, "completed")])
    event_requests = 0

    async def get(_: Request) -> Response:
        return JSONResponse(next(answers))

    async def events(_: Request) -> Response:
        nonlocal event_requests
        event_requests += 1
        error = {"code": "not_found", "message": "No such route."}
        return JSONResponse({"error": error}, status_code=404)

    server = fake([Route("/v1/videos/{vid}/events", events), Route("/v1/videos/{vid}", get)])
    sdk = make_sdk(server.url)
    seen: list[tuple[str, int]] = []
    video = await sdk(
        "wait",
        "video_x",
        poll_interval=0.05,
        on_progress=lambda v: seen.append((v.status, v.progress)),
    )
    assert video.status == "completed"
    assert seen == [("queued", 0), ("in_progress", 40), ("completed", 100)]
    answers = iter([_job(100, "completed")])
    await sdk("wait", "video_x")
    assert event_requests == 1  # remembered: no second try at the stream


async def test_async_on_progress_may_be_a_coroutine(
    fake: Callable[[list[Route]], EmulatorServer],
) -> None:
    async def events(_: Request) -> Response:
        body = _sse(1, 50) + _sse(2, 100, "completed")
        return Response(body, media_type="text/event-stream")

    server = fake([Route("/v1/videos/{vid}/events", events)])
    seen: list[int] = []

    async def report(video: Video) -> None:
        await asyncio.sleep(0)
        seen.append(video.progress)

    async with AsyncClient(server.url, "k") as client:
        await client.wait("video_x", on_progress=report)
    assert seen == [50, 100]


def test_env_configures_the_client_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGATE_URL", "http://gateway.example:9000/")
    monkeypatch.setenv("REELGATE_API_KEY", "rg_from_env")
    with Client() as client:
        assert client.base_url == "http://gateway.example:9000"
        assert client._config.api_key == "rg_from_env"
    with Client("http://other:1", "explicit") as client:
        assert client.base_url == "http://other:1" and client._config.api_key == "explicit"


def test_errors_print_the_gateway_code_and_status() -> None:
    err = ReelgateAPIError("nope", code="model_unavailable", status=400)
    assert str(err) == "[model_unavailable] (HTTP 400) nope"
