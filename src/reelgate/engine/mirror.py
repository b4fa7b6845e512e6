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

from reelgate.engine.planner import StoredCopy
from reelgate.errors import StorageError
from reelgate.media.previews import make_previews
from reelgate.media.probe import VideoInfo, probe_video
from reelgate.storage import Storage

__all__ = ["mirror_result"]


SPOOL_WRITE_BYTES = 1024 * 1024
"""Chunks are gathered to this size before a write: one trip to a thread each."""

_spool_root: Path | None = None


log = logging.getLogger(__name__)


def _spool_dir() -> Path:
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
) -> StoredCopy:
    """``source``: the provider's download, or (for a result the provider uploaded to
    us) the uploaded object read back from storage. With ``preview_keys`` (poster,
    sprite sheet), the video's poster and sprite sheet are made from the spooled copy
    and stored there too; a video they cannot be made of is still delivered."""
    spool = _spool_dir()
    path = spool / "video"
    previews: tuple[str, str, dict[str, object]] | None = None
    try:
        with path.open("wb") as fh:
            spooled = await _spool(source, fh, max_bytes)
            info = await asyncio.to_thread(_finish_and_probe, fh, spooled.tail, path)
        stored = await storage.put_file(key, path, "video/mp4")
        if preview_keys is not None:
            previews = await _store_previews(path, spool, info, storage, preview_keys)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    poster_key, sprite_key, layout = previews if previews else (None, None, None)
    return StoredCopy(
        poster_key=poster_key,
        sprite_key=sprite_key,
        sprite_layout=layout,
        key=key,
        bytes=stored.size,
        sha256=spooled.sha256,
        duration_seconds=round(info.duration_seconds, 3),
        width=info.width,
        height=info.height,
        content_type="video/mp4",
        has_audio=info.audio_codec is not None,
    )
