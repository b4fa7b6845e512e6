"""LocalProvider against real render processes and a real work directory.

Several providers on one work dir stand in for several worker processes on
one machine: they share nothing but the files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import io
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from reelgate.engine.worker import Worker
from reelgate.errors import InvalidRequest, ProviderError, TransientError
from reelgate.media.probe import probe_video
from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    Provider,
    ResultLocation,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.local import LocalProvider, _write_error
from reelgate.runtime import Runtime
from tests.conftest import wait_for_status

POLL_SECONDS = 0.1


def _request(job_id: str, **overrides: object) -> GenerationRequest:
    fields: dict[str, object] = {
        "job_id": job_id,
        "attempt": 1,
        "model": "local",
        "upstream_model": "local",
        "prompt": "a paper boat on a river",
        "duration_seconds": 1,
        "resolution": "180p",
        "aspect_ratio": "16:9",
        "width": 320,
        "height": 180,
        "seed": 3,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)  # type: ignore[arg-type]


def _slow_request(job_id: str, prompt: str) -> GenerationRequest:
    """Big enough to take a couple of seconds, with a prompt no other test renders."""
    return _request(
        job_id, prompt=prompt, duration_seconds=4, width=1280, height=720, resolution="720p"
    )


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "local"


@pytest.fixture
async def provider(work_dir: Path) -> AsyncIterator[LocalProvider]:
    local = LocalProvider(work_dir)
    yield local
    await local.aclose()


async def _until_done(
    provider: LocalProvider, upstream_id: str, timeout: float = 20.0
) -> list[UpstreamStatus]:
    """Poll to success, checking progress never goes backwards on the way."""
    seen: list[UpstreamStatus] = []
    async with asyncio.timeout(timeout):
        while True:
            status = await provider.status(upstream_id)
            if seen:
                assert (status.progress or 0) >= (seen[-1].progress or 0), "progress went back"
            seen.append(status)
            if status.state is UpstreamState.SUCCEEDED:
                return seen
            await asyncio.sleep(0.05)


async def _until(condition: object, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def _renders(work_dir: Path, upstream_id: str) -> list[str]:
    """What the render processes did for a job: "render" or "cache-hit", in order."""
    log = work_dir / f"{upstream_id}.log"
    return [line.split()[-1] for line in log.read_text().splitlines()] if log.exists() else []


def _lock_is_free(path: Path) -> bool:
    """True once no render process holds the job's lock."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


async def _download(provider: LocalProvider, result: ResultLocation) -> bytes:
    return b"".join([chunk async for chunk in provider.download(result)])


def test_local_provider_implements_the_provider_protocol(provider: LocalProvider) -> None:
    assert isinstance(provider, Provider)
    assert (provider.name, provider.supports_cancel, provider.idempotent_create) == (
        "local",
        True,
        True,
    )


async def test_a_job_runs_to_a_playable_mp4_with_rising_progress(
    provider: LocalProvider, tmp_path: Path
) -> None:
    submitted = await provider.create(_request("job-basic", duration_seconds=2))
    seen = await _until_done(provider, submitted.upstream_id)

    final = seen[-1]
    assert final.progress == 100
    assert final.duration_seconds == 2.0
    assert final.result == ResultLocation(url=f"local://{submitted.upstream_id}.mp4")
    assert all((s.progress or 0) < 100 for s in seen[:-1])
    video = tmp_path / "downloaded.mp4"
    video.write_bytes(await _download(provider, final.result))
    info = probe_video(video)
    assert (info.video_codec, info.audio_codec, info.width, info.height) == (
        "h264",
        "aac",
        320,
        180,
    )
    assert abs(info.duration_seconds - 2.0) <= 0.05


async def test_a_replayed_create_returns_the_same_id_and_creates_nothing_new(
    provider: LocalProvider, work_dir: Path
) -> None:
    first = await provider.create(_request("job-replay"))
    second = await provider.create(_request("job-replay"))
    await _until_done(provider, first.upstream_id)
    third = await provider.create(_request("job-replay"))

    assert first == second == third
    assert [task["job_id"] for task in provider.created_tasks()] == ["job-replay"]
    assert _renders(work_dir, first.upstream_id) == ["render"]


async def test_a_new_attempt_is_a_new_upstream_job(provider: LocalProvider) -> None:
    first = await provider.create(_request("job-attempts", attempt=1))
    second = await provider.create(_request("job-attempts", attempt=2))
    assert first != second
    assert [task["attempt"] for task in provider.created_tasks()] == [1, 2]


async def test_reusing_a_key_for_a_different_request_is_refused(provider: LocalProvider) -> None:
    await provider.create(_request("job-conflict"))
    with pytest.raises(InvalidRequest) as caught:
        await provider.create(_request("job-conflict", prompt="something else"))
    assert caught.value.code == "idempotency_conflict"


async def test_identical_jobs_render_once_and_share_the_cached_video(
    provider: LocalProvider, work_dir: Path
) -> None:
    ids = [(await provider.create(_request(f"job-same-{n}"))).upstream_id for n in range(3)]
    results = [(await _until_done(provider, upstream_id))[-1] for upstream_id in ids]

    videos = {await _download(provider, r.result) for r in results if r.result is not None}
    assert len(videos) == 1
    events = [event for upstream_id in ids for event in _renders(work_dir, upstream_id)]
    assert sorted(events) == ["cache-hit", "cache-hit", "render"]


@pytest.mark.parametrize("upstream_id", ["loc_0123456789abcdef01234567", "../etc/passwd"])
async def test_status_of_an_unknown_job_is_an_invalid_request(
    provider: LocalProvider, upstream_id: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await provider.status(upstream_id)
    assert caught.value.upstream_status == 404


async def test_a_killed_render_is_restarted_by_the_next_poll(
    provider: LocalProvider, work_dir: Path
) -> None:
    submitted = await provider.create(_slow_request("job-killed", "a render that gets killed"))
    root, upstream_id = work_dir, submitted.upstream_id
    progress = root / f"{upstream_id}.progress"
    await _until(lambda: progress.exists() and int(progress.read_text() or 0) >= 10)
    os.kill(int((root / f"{upstream_id}.lock").read_text()), signal.SIGKILL)

    seen = await _until_done(provider, upstream_id, timeout=30)
    assert _renders(root, upstream_id) == ["render", "render"]
    assert all((s.progress or 0) >= 10 for s in seen)
    probe_video(root / f"{upstream_id}.mp4")


_WORKER_THAT_DIES = """
import asyncio, os, signal, sys
from pathlib import Path
from reelgate.providers.base import GenerationRequest
from reelgate.providers.local import LocalProvider

async def main() -> None:
    provider = LocalProvider(Path(sys.argv[1]))
    request = GenerationRequest(
        job_id="job-worker-dies", attempt=1, model="local", upstream_model="local",
        prompt="the worker that started me is gone", duration_seconds=2,
        resolution="360p", aspect_ratio="16:9", width=640, height=360,
    )
    submitted = await provider.create(request)
    progress = Path(sys.argv[1]) / f"{submitted.upstream_id}.progress"
    while not progress.exists():
        await asyncio.sleep(0.02)
    print(submitted.upstream_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie is dead; whether anyone reaps it is not ours to decide


async def test_a_render_outlives_its_killed_worker_and_its_process_then_exits(
    work_dir: Path,
) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WORKER_THAT_DIES, str(work_dir), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(worker.communicate(), timeout=20)
    assert worker.returncode == -signal.SIGKILL
    upstream_id = stdout.decode().strip()
    render_pid = int((work_dir / f"{upstream_id}.lock").read_text())

    mp4 = work_dir / f"{upstream_id}.mp4"
    await _until(lambda: mp4.exists() and not _alive(render_pid), timeout=20)
    assert _renders(work_dir, upstream_id) == ["render"]
    probe_video(mp4)


async def test_an_orphaned_job_is_revived_once_by_concurrent_pollers(work_dir: Path) -> None:
    crashed = LocalProvider(work_dir)
    # A worker that died right after writing the spec, before starting the render.
    crashed._launch = lambda upstream_id: None  # type: ignore[method-assign]
    submitted = await crashed.create(_request("job-orphan", prompt="an orphaned job"))
    pollers = [LocalProvider(work_dir), LocalProvider(work_dir)]
    try:
        assert _renders(work_dir, submitted.upstream_id) == []
        await asyncio.gather(*(p.status(submitted.upstream_id) for p in pollers))
        await _until_done(pollers[0], submitted.upstream_id)
        await _until_done(pollers[1], submitted.upstream_id)
    finally:
        await asyncio.gather(*(p.aclose() for p in pollers))
    assert _renders(work_dir, submitted.upstream_id) == ["render"]


async def test_cancel_stops_the_render_and_status_reports_canceled(
    provider: LocalProvider, work_dir: Path
) -> None:
    submitted = await provider.create(_slow_request("job-cancel", "a render that is canceled"))
    root, upstream_id = work_dir, submitted.upstream_id
    progress = root / f"{upstream_id}.progress"
    await _until(lambda: progress.exists())
    await provider.cancel(upstream_id)

    with pytest.raises(ProviderError) as caught:
        await provider.status(upstream_id)
    assert caught.value.code == "canceled"
    await _until(lambda: _lock_is_free(root / f"{upstream_id}.lock"), timeout=10)
    assert _renders(root, upstream_id) == ["render"]  # canceled mid-render, not before
    assert not (root / f"{upstream_id}.mp4").exists()
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == []


async def test_an_undecodable_image_fails_the_job_as_invalid(provider: LocalProvider) -> None:
    image = ImageInput(data=b"GIF89a but not really", mime_type="image/gif")
    submitted = await provider.create(_request("job-bad-image", image=image))
    with pytest.raises(InvalidRequest) as caught:
        await _until_done(provider, submitted.upstream_id)
    assert caught.value.code == "invalid_input"
    assert "image" in caught.value.message


async def test_image_to_video_stores_the_image_and_renders_it(provider: LocalProvider) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (10, 200, 10)).save(buffer, "PNG")
    request = _request("job-i2v", image=ImageInput(data=buffer.getvalue(), mime_type="image/png"))
    submitted = await provider.create(request)
    await _until_done(provider, submitted.upstream_id)
    (task,) = provider.created_tasks()
    assert task["image_b64"] is not None


async def test_inputs_the_renderer_cannot_take_are_refused_at_create(
    provider: LocalProvider,
) -> None:
    with pytest.raises(InvalidRequest):
        await provider.create(_request("job-url", image=ImageInput(url="https://x/y.png")))
    with pytest.raises(InvalidRequest, match="width"):
        await provider.create(_request("job-odd", width=321))
    assert provider.created_tasks() == []


async def test_download_of_a_foreign_or_missing_result_is_an_invalid_request(
    provider: LocalProvider,
) -> None:
    for url in ["https://example.com/v.mp4", "local://loc_0123456789abcdef01234567.mp4"]:
        with pytest.raises(InvalidRequest):
            await _download(provider, ResultLocation(url=url))


class _RenderThatFails(LocalProvider):
    """Renders fail the way a crashing encoder does (the render process leaves the
    job's error file); every status look is counted per job, as an emulator counts polls."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self.polls: Counter[str] = Counter()
        self.final_polls: Counter[str] = Counter()

    def _launch(self, upstream_id: str) -> None:
        _write_error(self._root, upstream_id, "transient", "render_failed", "encoder crashed")

    async def status(self, upstream_id: str) -> UpstreamStatus:
        self.polls[upstream_id] += 1
        try:
            return await super().status(upstream_id)
        except ProviderError:
            self.final_polls[upstream_id] += 1
            raise


async def test_through_the_gateway_a_failed_render_is_looked_at_once_and_unbilled(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker, work_dir: Path
) -> None:
    failing = _RenderThatFails(work_dir)
    await rt.providers.providers["local"].aclose()
    rt.providers.providers["local"] = failing  # closed by the runtime
    rt.catalog.replace(
        dataclasses.replace(spec, poll_interval_seconds=POLL_SECONDS)
        if spec.id == "local"
        else spec
        for spec in rt.catalog
    )
    before = (await client.get("/v1/balance")).json()["millicredits"]
    body = {"model": "local", "prompt": "a boat", "duration_seconds": 1, "resolution": "360p"}
    made = await client.post("/v1/videos", json=body)
    assert made.status_code == 202, made.text
    seen = await wait_for_status(client, made.json()["id"], {"completed", "failed"})
    job: dict[str, Any] = seen[-1]

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "upstream_unavailable"
    assert [(a["model"], a["outcome"]) for a in job["attempts"]] == [("local", "transient")]
    assert job["cost"]["millicredits"] == 0
    assert (await client.get("/v1/balance")).json()["millicredits"] == before

    upstream_id = job["attempts"][0]["upstream_id"]
    assert failing.final_polls[upstream_id] == 1, "the failed render was looked at again"
    polls = failing.polls[upstream_id]
    await asyncio.sleep(5 * POLL_SECONDS)
    assert failing.polls[upstream_id] == polls

    with pytest.raises(TransientError) as failed:
        await failing.status(upstream_id)
    assert failed.value.terminal and failed.value.code == "render_failed"
