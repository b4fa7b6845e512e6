"""An upstream that costs nothing, so what is measured is reelgate's own work.

``InstantProvider`` accepts every create, reports success at the first poll,
and streams a real MP4 in chunks. The MP4 is a tiny rendered clip followed by
an ISO-BMFF ``free`` box of any size: a valid file (players and FFmpeg skip
``free`` boxes) whose size is chosen freely, so mirroring hundreds of MiB needs
neither a long render nor the file on disk. Each chunk is a fresh ``bytes``
object, as an HTTP client would hand over, so a leak of chunks shows in RSS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from reelgate.catalog import ModelSpec
from reelgate.media.render import RenderSpec, render_video
from reelgate.providers.base import (
    GenerationRequest,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.runtime import Runtime

__all__ = ["MODEL_ID", "InstantProvider", "install", "tiny_clip"]

MODEL_ID = "bench-instant"
PROVIDER_KIND = "bench"
_FREE_HEADER = 8


def tiny_clip(directory: Path) -> bytes:
    """A 1-second 160x90 H.264/AAC MP4 (about 25 KiB)."""
    path = directory / "tiny.mp4"
    render_video(RenderSpec(prompt="bench", seed=1, duration_seconds=1, width=160, height=90), path)
    return path.read_bytes()


@dataclass
class InstantProvider:
    clip: bytes
    padding_bytes: int = 0
    """Size of the ``free`` box appended to the clip (0: the clip alone)."""
    chunk_bytes: int = 64 * 1024
    latency_seconds: float = 0.0
    """How long each call waits before answering (0: at once), as a real upstream's
    round trip would: a worker is then bound by its concurrency, not its CPU."""
    name: str = PROVIDER_KIND
    route: str = "instant"
    supports_cancel: bool = False
    idempotent_create: bool = True
    creates: int = 0
    _keys: dict[str, str] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return len(self.clip) + (self.padding_bytes + _FREE_HEADER if self.padding_bytes else 0)

    async def create(self, request: GenerationRequest) -> Submitted:
        await self._wait()
        upstream_id = self._keys.get(request.idempotency_key)
        if upstream_id is None:
            self.creates += 1
            upstream_id = f"up_{self.creates}"
            self._keys[request.idempotency_key] = upstream_id
        return Submitted(upstream_id)

    async def status(self, upstream_id: str) -> UpstreamStatus:
        await self._wait()
        return UpstreamStatus(
            UpstreamState.SUCCEEDED,
            progress=100,
            result=ResultLocation(url=f"https://upstream.invalid/{upstream_id}.mp4"),
        )

    async def cancel(self, upstream_id: str) -> None:
        return None

    async def _wait(self) -> None:
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        await self._wait()
        yield self.clip
        if not self.padding_bytes:
            return
        yield struct.pack(">I4s", self.padding_bytes + _FREE_HEADER, b"free")
        template = bytearray(self.chunk_bytes)
        left = self.padding_bytes
        while left > 0:
            n = min(left, self.chunk_bytes)
            yield bytes(template[:n])  # a new object per chunk, like a network read
            left -= n

    async def aclose(self) -> None:
        return None


def install(rt: Runtime, provider: InstantProvider, *, poll_interval_seconds: float) -> str:
    """Register ``provider`` and a catalog model on it (a copy of ``local``); return its id."""
    rt.providers.providers[PROVIDER_KIND] = provider
    local: ModelSpec = rt.catalog.get("local")
    spec = dataclasses.replace(
        local,
        id=MODEL_ID,
        provider=PROVIDER_KIND,
        poll_interval_seconds=poll_interval_seconds,
        typical_seconds=1.0,
    )
    rt.catalog.replace([*rt.catalog, spec])
    return MODEL_ID
