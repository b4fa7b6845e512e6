"""Extend and remix: what the engine sends for a job that edits a finished video.

An edit job (``JobParams.edit``) names a source video of the same account and its
stored copy. On a route whose provider edits natively (``providers.base.EditsVideos``:
xAI's extensions and edits) the create carries the source itself, and the provider's
result is the finished edit. On any other route an extension is an image-to-video job
from the source's last frame (stored as the job's image at submit), and the mirror joins
the source and the new segment into one video (``media.join``); a remix has no such
fallback, so such a route refuses it before anything is sent.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from reelgate.engine.mirror import fetch_stored
from reelgate.errors import InvalidRequest, StorageError, TransientError
from reelgate.job import JobParams
from reelgate.media.join import last_frame_png
from reelgate.providers.base import EditsVideos, Provider, SourceVideo
from reelgate.storage import Storage
from reelgate.storage.keys import source_copy_key

__all__ = [
    "MAX_SOURCE_BYTES",
    "copy_source",
    "joins_source",
    "last_frame",
    "native",
    "source_for",
]

MAX_SOURCE_BYTES = 256 * 1024 * 1024


def native(provider: Provider, upstream_model: str, params: JobParams) -> bool:
    """Whether ``provider`` makes this job's edit itself with ``upstream_model``."""
    if params.edit is None or not isinstance(provider, EditsVideos):
        return False
    return provider.edits_natively(
        params.edit, upstream_model, params.duration_seconds, params.source_seconds or 0.0
    )


def joins_source(provider: Provider, upstream_model: str, params: JobParams) -> bool:
    """Whether the mirror puts the source before this job's video: an extension made
    from the last frame, not by the provider."""
    return (
        params.edit == "extend"
        and params.source_key is not None
        and not native(provider, upstream_model, params)
    )


async def source_for(
    provider: Provider, upstream_model: str, params: JobParams, storage: Storage
) -> SourceVideo | None:
    """The source to send with the create: None for an ordinary job or an extension
    made from the last frame; raises ``InvalidRequest`` for a remix the route cannot
    make (the planner moves on to the next model, as for any refused request)."""
    if params.edit is None:
        return None
    if native(provider, upstream_model, params):
        assert params.source_key is not None
        try:
            data = await storage.read_bytes(params.source_key, MAX_SOURCE_BYTES)
        except StorageError as exc:
            if exc.code == "object_not_found":
                raise InvalidRequest(
                    f"the source video {params.source_video_id} was deleted",
                    code="source_deleted",
                ) from exc
            raise TransientError(f"the source video could not be read: {exc.code}") from exc
        return SourceVideo(edit=params.edit, data=data)
    if params.edit == "remix":
        raise InvalidRequest(
            f"{provider.name} cannot remix a video; remix on a model whose provider can",
            code="remix_not_supported",
        )
    return None


async def last_frame(storage: Storage, key: str) -> bytes:
    """The stored video's last frame as a PNG: the start image of a shot that continues
    from it (a storyboard's)."""
    with tempfile.TemporaryDirectory(prefix="reelgate-source-") as tmp:
        path = Path(tmp) / "source.mp4"
        await fetch_stored(storage, key, path, MAX_SOURCE_BYTES)
        return await asyncio.to_thread(last_frame_png, path)


async def copy_source(
    storage: Storage, key: str, account_id: str, job_id: str, *, with_last_frame: bool
) -> tuple[str, bytes | None]:
    """The edit's own copy of its source (``storage.keys.source_copy_key``), and the
    source's last frame as a PNG when asked (an extension's start image)."""
    target = source_copy_key(account_id, job_id)
    with tempfile.TemporaryDirectory(prefix="reelgate-source-") as tmp:
        path = Path(tmp) / "source.mp4"
        await fetch_stored(storage, key, path, MAX_SOURCE_BYTES)
        await storage.put_file(target, path, "video/mp4")
        frame = await asyncio.to_thread(last_frame_png, path) if with_last_frame else None
    return target, frame
