"""The built-in ``local`` provider: an upstream that renders on this machine's CPU.

It behaves like a remote video service whose state lives on disk in
``work_dir``, so every worker process on the machine sees the same jobs and a
worker killed with SIGKILL loses nothing:

    {id}.json      the create, written once (exclusive): a replayed create finds it
    {id}.lock      flock'ed by the process rendering {id}; free means nobody is
    {id}.progress  0-100, only ever raised, replaced atomically
    {id}.mp4       the result, appears atomically when complete
    {id}.error     why the render failed (JSON)
    {id}.canceled  cancel marker, checked by the render as it goes
    {id}.log       one line per render start, for operators (and tests)
    cache/         finished videos by render-spec hash (see ``_cache_key``)

Renders run in a process pool started with "spawn": the parent runs asyncio
and threads, which ``fork`` would copy in an undefined state, and a separate
process keeps the encoder from stealing the GIL from an API in this process.

Any process that polls a job whose render is not alive (its lock is free, no
result, no error) starts the render again; the render takes the lock itself
and exits if someone else holds it, so concurrent pollers cannot render twice.
This module never touches the database or the network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from reelgate.errors import InvalidRequest, ProviderError, TransientError
from reelgate.media.render import RENDERER_VERSION, RenderSpec, render_video
from reelgate.providers.base import (
    GenerationRequest,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.plugin import BuildContext, Capabilities, ProviderPlugin, ProviderSettings

__all__ = ["PLUGIN", "LocalProvider", "LocalSettings", "work_dir"]

log = logging.getLogger(__name__)

_ID = re.compile(r"loc_[0-9a-f]{24}")
_RESULT_URL = re.compile(r"local://(loc_[0-9a-f]{24})\.mp4")
_CHUNK = 1 << 20
_FPS = 24
_LOCK_ATTEMPTS = 10
"""A render retries its lock briefly: a poller's liveness probe holds it for microseconds."""
_MAX_RENDER_STARTS = 5
"""A job whose render process keeps dying (OOM, a crashing decoder) fails instead of looping."""


class LocalProvider:
    """Renders deterministic videos into ``work_dir``; see the module docstring.

    As with any "spawn" multiprocessing, the program's main module must be
    safe to import (``if __name__ == "__main__":``); console scripts are.
    Finished files are never deleted here: retention is the operator's call.
    """

    name = "local"
    route = "local"
    supports_cancel = True
    idempotent_create = True

    def __init__(self, work_dir: Path, *, max_parallel_renders: int = 1) -> None:
        self._root = work_dir
        (work_dir / "cache").mkdir(parents=True, exist_ok=True)
        self._max_parallel = max_parallel_renders
        self._pool: ProcessPoolExecutor | None = None
        self._inflight: dict[str, Future[None]] = {}
        self._deaths: dict[str, int] = {}
        self._closed = False

    async def create(self, request: GenerationRequest) -> Submitted:
        spec = _spec_document(request)
        upstream_id = "loc_" + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:24]
        spec["id"] = upstream_id
        path = self._root / f"{upstream_id}.json"
        if await asyncio.to_thread(_write_exclusively, path, spec):
            self._launch(upstream_id)
            return Submitted(upstream_id)
        existing = await asyncio.to_thread(_read_json, path)
        if _cache_key(existing) != _cache_key(spec):
            raise InvalidRequest(
                "this idempotency key was already used for a different request",
                code="idempotency_conflict",
                upstream_id=upstream_id,
            )
        await self.status(upstream_id)  # a replay after a crash revives an orphaned render
        return Submitted(upstream_id)

    async def status(self, upstream_id: str) -> UpstreamStatus:
        path = self._spec_path(upstream_id)
        seen = await asyncio.to_thread(_Snapshot, self._root, upstream_id)
        if not seen.spec:
            raise InvalidRequest(f"no such local job: {upstream_id}", upstream_status=404)
        if seen.canceled:
            raise InvalidRequest(
                f"local job {upstream_id} was canceled", code="canceled", terminal=True
            )
        if seen.error is not None:
            raise _error_from(seen.error, upstream_id)
        if seen.done:
            self._deaths.pop(upstream_id, None)
            spec = await asyncio.to_thread(_read_json, path)
            return UpstreamStatus(
                state=UpstreamState.SUCCEEDED,
                progress=100,
                result=ResultLocation(url=f"local://{upstream_id}.mp4"),
                duration_seconds=float(spec["duration_seconds"]),
            )
        future = self._inflight.get(upstream_id)
        if future is None and await asyncio.to_thread(_orphaned, self._root, upstream_id):
            if self._deaths.get(upstream_id, 0) >= _MAX_RENDER_STARTS:
                message = "the local render process died repeatedly"
                await asyncio.to_thread(
                    _write_error, self._root, upstream_id, "transient", "render_crashed", message
                )
                raise TransientError(
                    message, code="render_crashed", upstream_id=upstream_id, terminal=True
                )
            self._launch(upstream_id)
        if seen.progress is None:
            return UpstreamStatus(state=UpstreamState.PENDING, progress=0)
        return UpstreamStatus(state=UpstreamState.RUNNING, progress=min(seen.progress, 99))

    async def cancel(self, upstream_id: str) -> None:
        path = self._spec_path(upstream_id)
        if not await asyncio.to_thread(path.exists):
            raise InvalidRequest(f"no such local job: {upstream_id}", upstream_status=404)
        await asyncio.to_thread(_touch, self._root / f"{upstream_id}.canceled")
        future = self._inflight.get(upstream_id)
        if future is not None:
            future.cancel()  # only succeeds while queued; a running render sees the marker

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        match = _RESULT_URL.fullmatch(result.url)
        if match is None:
            raise InvalidRequest(f"not a local result: {result.url}")
        path = self._root / f"{match.group(1)}.mp4"
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise InvalidRequest(f"no such local result: {result.url}") from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                yield chunk
        finally:
            handle.close()

    def created_tasks(self) -> list[dict[str, Any]]:
        """Every create this work dir has accepted (tests count upstream creates with it)."""
        specs = [_read_json(path) for path in self._root.glob("loc_*.json")]
        return sorted(specs, key=lambda spec: (str(spec["created_at"]), str(spec["id"])))

    def sweep(self, max_age_seconds: float, now: float) -> int:
        """Delete finished renders (every ``{id}.*`` file of a job with an outcome) whose
        create is older than ``max_age_seconds``, and cached videos not used that long;
        a render in progress (its lock held) is left alone. Returns files deleted.
        Called by the retention sweeper (``engine.retention``) once their videos are in
        storage; a job swept here that is polled again reads as unknown upstream."""
        cutoff = now - max_age_seconds
        deleted = 0
        for spec in self._root.glob("loc_*.json"):
            upstream_id = spec.stem
            finished = any(
                (self._root / f"{upstream_id}{ext}").exists()
                for ext in (".mp4", ".error", ".canceled")
            )
            with contextlib.suppress(FileNotFoundError):
                if not finished or spec.stat().st_mtime >= cutoff:
                    continue
            deleted += _delete_unlocked(
                self._root / f"{upstream_id}.lock", self._root.glob(f"{upstream_id}.*")
            )
        cache = self._root / "cache"
        for video in cache.glob("*.mp4"):
            with contextlib.suppress(FileNotFoundError):
                if video.stat().st_mtime >= cutoff:
                    continue
                deleted += _delete_unlocked(cache / f"{video.stem}.lock", [video])
        return deleted

    async def aclose(self) -> None:
        """Stop taking renders; wait for the running one, drop queued ones.

        Waiting keeps a render's work; a dropped one is restarted by whichever
        process polls the job next.
        """
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def _spec_path(self, upstream_id: str) -> Path:
        if _ID.fullmatch(upstream_id) is None:
            raise InvalidRequest(f"no such local job: {upstream_id}", upstream_status=404)
        return self._root / f"{upstream_id}.json"

    def _launch(self, upstream_id: str) -> None:
        """Queue a render; a broken pool (a render process was killed) is replaced once."""
        if self._closed:
            return
        for _ in range(2):
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    self._max_parallel,
                    mp_context=context,
                    initializer=_watch_parent,
                    initargs=(os.getpid(),),
                )
            try:
                future = self._pool.submit(_render_job, str(self._root), upstream_id)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                continue
            self._inflight[upstream_id] = future
            future.add_done_callback(partial(self._forget, upstream_id))
            return

    def _forget(self, upstream_id: str, future: Future[None]) -> None:
        if self._inflight.get(upstream_id) is future:
            del self._inflight[upstream_id]
        if not future.cancelled() and (exc := future.exception()) is not None:
            if isinstance(exc, BrokenProcessPool):
                self._deaths[upstream_id] = self._deaths.get(upstream_id, 0) + 1
            # The job's files say what happened; the next poll re-launches if needed.
            log.warning("local render of %s ended abnormally: %r", upstream_id, exc)


def _spec_document(request: GenerationRequest) -> dict[str, Any]:
    """The create as stored on disk; invalid parameters fail here, as an upstream 400."""
    image: bytes | None = None
    if request.image is not None:
        if request.image.data is None:
            raise InvalidRequest("the local provider needs inline image bytes, not an image URL")
        image = request.image.data
    seed = 0 if request.seed is None else request.seed  # a fixed default keeps the cache warm
    try:
        RenderSpec(request.prompt, seed, request.duration_seconds, request.width, request.height)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    return {
        "job_id": request.job_id,
        "attempt": request.attempt,
        "model": request.model,
        "prompt": request.prompt,
        "seed": seed,
        "duration_seconds": request.duration_seconds,
        "width": request.width,
        "height": request.height,
        "fps": _FPS,
        "image_b64": base64.b64encode(image).decode() if image is not None else None,
        "image_sha256": hashlib.sha256(image).hexdigest() if image is not None else None,
        "created_at": datetime.now(UTC).isoformat(),
    }


def _cache_key(spec: dict[str, Any]) -> str:
    """Everything that determines the video, and nothing else.

    Rendering is deterministic, so equal keys mean equal videos: a finished
    render is kept under this key and later jobs link to it instead of
    rendering again. Demos repeat prompts, and test suites run hundreds of
    identical jobs that would otherwise spend seconds of CPU each.
    """
    fields = ("prompt", "seed", "duration_seconds", "width", "height", "fps", "image_sha256")
    identity = {name: spec[name] for name in fields} | {"renderer": RENDERER_VERSION}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _error_from(document: dict[str, Any], upstream_id: str) -> ProviderError:
    kind = InvalidRequest if document.get("error_class") == "invalid" else TransientError
    return kind(
        str(document.get("message", "the local render failed")),
        code=str(document.get("code", "render_failed")),
        upstream_id=upstream_id,
        terminal=True,  # the error file stays: this render will not succeed on a later look
    )


class _Snapshot:
    """One look at a job's files, taken in a worker thread."""

    def __init__(self, root: Path, upstream_id: str) -> None:
        self.spec = (root / f"{upstream_id}.json").exists()
        self.canceled = (root / f"{upstream_id}.canceled").exists()
        self.done = (root / f"{upstream_id}.mp4").exists()
        self.error: dict[str, Any] | None = None
        with contextlib.suppress(FileNotFoundError):
            self.error = _read_json(root / f"{upstream_id}.error")
        self.progress: int | None = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.progress = int((root / f"{upstream_id}.progress").read_text())


def _orphaned(root: Path, upstream_id: str) -> bool:
    """True when nobody renders the job and it has no outcome yet."""
    with _open_lock(root / f"{upstream_id}.lock") as fd:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
    outcome = (f"{upstream_id}.mp4", f"{upstream_id}.error", f"{upstream_id}.canceled")
    return not any((root / name).exists() for name in outcome)


# --- everything below runs in the render process -----------------------------------


_rendering = threading.Event()


def _watch_parent(parent_pid: int) -> None:
    """Pool initializer: leave once idle if the parent process is gone.

    A pool worker otherwise outlives a SIGKILLed parent forever, blocked on
    its task pipe. A render in progress is finished first: its result is on
    disk for whoever polls the job next.
    """

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid and not _rendering.is_set():
                os._exit(0)

    threading.Thread(target=watch, name="reelgate-parent-watch", daemon=True).start()


class _Canceled(Exception):
    """Raised from the progress callback to stop a render between frames."""


def _render_job(work_dir: str, upstream_id: str) -> None:
    """Render one job unless another process is on it or it already has an outcome."""
    _rendering.set()
    try:
        _render_job_once(Path(work_dir), upstream_id)
    finally:
        _rendering.clear()


def _render_job_once(root: Path, upstream_id: str) -> None:
    with _open_lock(root / f"{upstream_id}.lock") as fd:
        for attempt in range(_LOCK_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _LOCK_ATTEMPTS - 1:
                    return  # someone else is rendering it
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        outcome = (f"{upstream_id}.mp4", f"{upstream_id}.error", f"{upstream_id}.canceled")
        if any((root / name).exists() for name in outcome):
            return
        if _render_starts(root, upstream_id) >= _MAX_RENDER_STARTS:
            message = "the local render process died repeatedly"
            _write_error(root, upstream_id, "transient", "render_crashed", message)
            return
        try:
            _render_locked(root, upstream_id)
        except _Canceled:
            pass  # the marker is the outcome
        except ValueError as exc:
            _write_error(root, upstream_id, "invalid", "invalid_input", str(exc))
        except Exception as exc:
            log.exception("local render of %s failed", upstream_id)
            _write_error(root, upstream_id, "transient", "render_failed", repr(exc))


def _render_locked(root: Path, upstream_id: str) -> None:
    document = _read_json(root / f"{upstream_id}.json")
    image = document["image_b64"]
    spec = RenderSpec(
        prompt=document["prompt"],
        seed=document["seed"],
        duration_seconds=document["duration_seconds"],
        width=document["width"],
        height=document["height"],
        fps=document["fps"],
        image=base64.b64decode(image) if image is not None else None,
    )
    out = root / f"{upstream_id}.mp4"
    cached = root / "cache" / f"{_cache_key(document)}.mp4"
    progress = _Progress(root, upstream_id)
    # Identical specs render one at a time, so the second finds the first's result.
    with _open_lock(root / "cache" / f"{cached.stem}.lock") as cache_fd:
        fcntl.flock(cache_fd, fcntl.LOCK_EX)
        if cached.exists():
            _append_log(root, upstream_id, "cache-hit")
            _link_or_copy(cached, out)
            progress(100)
            return
        _append_log(root, upstream_id, "render")
        render_video(spec, out, progress)
        _link_or_copy(out, cached)


class _Progress:
    """Writes progress without ever lowering it (a restarted render starts at 0 again)."""

    def __init__(self, root: Path, upstream_id: str) -> None:
        self._path = root / f"{upstream_id}.progress"
        self._canceled = root / f"{upstream_id}.canceled"
        self._floor = 0
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._floor = int(self._path.read_text())

    def __call__(self, percent: int) -> None:
        if self._canceled.exists():
            raise _Canceled
        if percent < self._floor or (percent == self._floor and self._path.exists()):
            return
        self._floor = percent
        _write_atomically(self._path, str(percent).encode())


@contextlib.contextmanager
def _open_lock(path: Path) -> Iterator[int]:
    """A lock file's descriptor; closing it releases any flock, also on SIGKILL."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield fd
    finally:
        os.close(fd)


def _delete_unlocked(lock: Path, paths: Iterable[Path]) -> int:
    """Delete ``paths`` (and the lock file) while holding ``lock``, if nobody holds it."""
    if not lock.exists():
        return sum(_unlink(p) for p in paths)
    with _open_lock(lock) as fd:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # rendering now
        return sum(_unlink(p) for p in {*paths, lock})


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1


def _write_exclusively(path: Path, document: dict[str, Any]) -> bool:
    """Publish ``document`` at ``path`` unless it exists; False when it did.

    Written to a temp file and hard-linked into place: like ``O_EXCL`` the link
    fails if the name exists, and unlike it no reader sees a half-written file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(document))
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_error(root: Path, upstream_id: str, error_class: str, code: str, message: str) -> None:
    document = {"error_class": error_class, "code": code, "message": message}
    _write_atomically(root / f"{upstream_id}.error", json.dumps(document).encode())


def _link_or_copy(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically, sharing the bytes where the disk allows."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _append_log(root: Path, upstream_id: str, event: str) -> None:
    with (root / f"{upstream_id}.log").open("a") as handle:
        handle.write(f"{datetime.now(UTC).isoformat()} pid={os.getpid()} {event}\n")


def _render_starts(root: Path, upstream_id: str) -> int:
    try:
        lines = (root / f"{upstream_id}.log").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(line.endswith(" render") for line in lines)


def _read_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _touch(path: Path) -> None:
    path.touch(exist_ok=True)


class LocalSettings(ProviderSettings):
    """The built-in renderer: always on (it needs no account)."""

    local_work_dir: Path | None = None
    """Where renders are kept; default: ``<data_dir>/local-renders``."""


def work_dir(settings: LocalSettings, data_dir: Path) -> Path:
    return settings.local_work_dir or data_dir / "local-renders"


def build(settings: LocalSettings, context: BuildContext) -> LocalProvider:
    return LocalProvider(work_dir(settings, context.data_dir))


PLUGIN = ProviderPlugin(
    kind="local",
    settings=LocalSettings,
    build=build,
    setup_hint="it is built in and always configured",
    capabilities=Capabilities(cancel=True, idempotent_create=True),
)
