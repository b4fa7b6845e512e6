"""Copy a provider's finished video into storage reelgate controls.

Streams to a temporary file while hashing (constant memory, capped size),
checks with PyAV that the bytes are a real video, then uploads the file. The
upstream URL may expire minutes later; our copy is what clients download.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from reelgate.engine.planner import StoredCopy
from reelgate.errors import InvalidRequest, StorageError
from reelgate.media.join import join_clips
from reelgate.media.previews import make_previews
from reelgate.media.probe import VideoInfo, probe_video
from reelgate.storage import Storage

__all__ = ["fetch_stored", "mirror_result", "spool_dir", "store_file"]


SPOOL_WRITE_BYTES = 1024 * 1024
"""Chunks are gathered to this size before a write: one trip to a thread each."""

_spool_root: Path | None = None


log = logging.getLogger(__name__)


def spool_dir() -> Path:
    """A fresh directory for one download, in this process's spool directory (made
    once, removed at exit): a name of its own per download, and no tree to walk
    when it is done (``TemporaryDirectory`` cost more than the rest of a small copy)."""
    global _spool_root
    if _spool_root is None or not _spool_root.is_dir():
        _spool_root = Path(tempfile.mkdtemp(prefix="reelgate-mirror-"))
        atexit.register(shutil.rmtree, _spool_root, ignore_errors=True)
    one = _spool_root / uuid.uuid4().hex
    one.mkdir()
    return one


async def _spool(source: AsyncIterator[bytes], fh: BinaryIO, max_bytes: int) -> _Spooled:
    """Write the download to ``fh``, hashing it, a megabyte at a time; the last part is
    left for the caller to write with the probe (one trip to a thread for both)."""
    digest = hashlib.sha256()
    size = 0
    pending: list[bytes] = []
    pending_bytes = 0
    async for chunk in source:
        size += len(chunk)
        if size > max_bytes:
            raise StorageError(
                f"the upstream file is larger than the {max_bytes}-byte mirror limit",
                code="mirror_too_large",
            )
        digest.update(chunk)
        pending.append(chunk)
        pending_bytes += len(chunk)
        if pending_bytes >= SPOOL_WRITE_BYTES:
            await asyncio.to_thread(fh.writelines, pending)
            pending, pending_bytes = [], 0
    if size == 0:
        raise StorageError("the upstream file is empty", code="mirror_empty")
    return _Spooled(digest.hexdigest(), pending)


@dataclass(frozen=True)
class _Spooled:
    sha256: str
    tail: list[bytes]


async def _store_previews(
    video: Path, spool: Path, info: VideoInfo, storage: Storage, keys: tuple[str, str]
) -> tuple[str, str, dict[str, object]] | None:
    """Make and store the poster and sprite sheet; None (logged) if that fails."""
    poster_key, sprite_key = keys
    try:
        made = await asyncio.to_thread(
            make_previews, video, spool / "previews", info.duration_seconds
        )
        await storage.put_file(poster_key, made.poster, "image/webp")
        await storage.put_file(sprite_key, made.sprite, "image/jpeg")
    except Exception:  # the video is what was paid for: it is delivered without them
        log.warning("previews of %s could not be made or stored", video.name, exc_info=True)
        return None
    return poster_key, sprite_key, made.layout.to_wire()


async def _joined(
    storage: Storage, before: str, segment: Path, spool: Path, max_bytes: int
) -> tuple[Path, VideoInfo, str]:
    """``before`` (a stored video) then ``segment``, as one video: its path, probe and
    SHA-256."""
    first = spool / "before"
    await fetch_stored(storage, before, first, max_bytes)
    out = spool / "joined"
    try:
        await asyncio.to_thread(join_clips, [first, segment], out)
    except (ValueError, av.FFmpegError) as exc:  # frames PyAV cannot decode
        raise InvalidRequest(
            f"the new part could not be joined onto its source: {exc}", code="join_failed"
        ) from exc
    info = await asyncio.to_thread(probe_video, out)
    return out, info, await asyncio.to_thread(_sha256, out)


async def fetch_stored(storage: Storage, key: str, path: Path, max_bytes: int) -> VideoInfo:
    """Copy a stored video to ``path`` (a megabyte per write) and probe it."""
    with path.open("wb") as fh:
        spooled = await _spool(storage.stream(key), fh, max_bytes)
        return await asyncio.to_thread(_finish_and_probe, fh, spooled.tail, path)


async def store_file(
    storage: Storage,
    path: Path,
    key: str,
    *,
    spool: Path,
    preview_keys: tuple[str, str] | None,
) -> StoredCopy:
    """Store a video made here (a join), with its poster and sprite sheet."""
    info = await asyncio.to_thread(probe_video, path)
    return await _stored(
        storage, path, info, await asyncio.to_thread(_sha256, path), key, spool, preview_keys
    )


async def _stored(
    storage: Storage,
    path: Path,
    info: VideoInfo,
    sha256: str,
    key: str,
    spool: Path,
    preview_keys: tuple[str, str] | None,
) -> StoredCopy:
    stored = await storage.put_file(key, path, "video/mp4")
    previews = None
    if preview_keys is not None:
        previews = await _store_previews(path, spool, info, storage, preview_keys)
    poster_key, sprite_key, layout = previews if previews else (None, None, None)
    return StoredCopy(
        poster_key=poster_key,
        sprite_key=sprite_key,
        sprite_layout=layout,
        key=key,
        bytes=stored.size,
        sha256=sha256,
        duration_seconds=round(info.duration_seconds, 3),
        width=info.width,
        height=info.height,
        content_type="video/mp4",
        has_audio=info.audio_codec is not None,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(SPOOL_WRITE_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _finish_and_probe(fh: BinaryIO, tail: list[bytes], path: Path) -> VideoInfo:
    fh.writelines(tail)
    fh.close()
    return probe_video(path)


async def mirror_result(
    source: AsyncIterator[bytes],
    storage: Storage,
    key: str,
    *,
    max_bytes: int,
    preview_keys: tuple[str, str] | None = None,
    join_after: str | None = None,
) -> StoredCopy:
    """``source``: the provider's download, or (for a result the provider uploaded to
    us) the uploaded object read back from storage. With ``preview_keys`` (poster,
    sprite sheet), the video's poster and sprite sheet are made from the spooled copy
    and stored there too; a video they cannot be made of is still delivered. With
    ``join_after`` (a stored video: an extension's source), what is stored is that
    video followed by the download (``media.join``)."""
    spool = spool_dir()
    path = spool / "video"
    try:
        with path.open("wb") as fh:
            spooled = await _spool(source, fh, max_bytes)
            info = await asyncio.to_thread(_finish_and_probe, fh, spooled.tail, path)
        sha256 = spooled.sha256
        if join_after is not None:
            path, info, sha256 = await _joined(storage, join_after, path, spool, max_bytes)
        return await _stored(storage, path, info, sha256, key, spool, preview_keys)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
