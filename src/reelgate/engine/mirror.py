"""Copy a provider's finished video into storage reelgate controls.

Streams to a temporary file while hashing (constant memory, capped size),
checks with PyAV that the bytes are a real video, then uploads the file. The
upstream URL may expire minutes later; our copy is what clients download.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from reelgate.engine.planner import StoredCopy
from reelgate.errors import StorageError
from reelgate.media.probe import probe_video
from reelgate.storage import Storage

__all__ = ["mirror_result"]


async def _spool(source: AsyncIterator[bytes], path: Path, max_bytes: int) -> str:
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as fh:
        async for chunk in source:
            size += len(chunk)
            if size > max_bytes:
                raise StorageError(
                    f"the upstream file is larger than the {max_bytes}-byte mirror limit",
                    code="mirror_too_large",
                )
            digest.update(chunk)
            await asyncio.to_thread(fh.write, chunk)
    if size == 0:
        raise StorageError("the upstream file is empty", code="mirror_empty")
    return digest.hexdigest()


async def mirror_result(
    source: AsyncIterator[bytes], storage: Storage, key: str, *, max_bytes: int
) -> StoredCopy:
    """``source``: the provider's download, or (for a result the provider uploaded to
    us) the uploaded object read back from storage."""
    with tempfile.TemporaryDirectory(prefix="reelgate-mirror-") as tmp:
        path = Path(tmp) / "video"
        sha = await _spool(source, path, max_bytes)
        info = await asyncio.to_thread(probe_video, path)
        stored = await storage.put_file(key, path, "video/mp4")
    return StoredCopy(
        key=key,
        bytes=stored.size,
        sha256=sha,
        duration_seconds=round(info.duration_seconds, 3),
        width=info.width,
        height=info.height,
        content_type="video/mp4",
        has_audio=info.audio_codec is not None,
    )
