"""An in-memory provider whose behaviour the test scripts by prompt keyword.

It exists to drive the engine's decisions (fallback, refusal, retry, timeout,
cancel, mirror failure) through the real Provider Protocol. It is not a
stand-in for any real upstream: those get faithful emulators (issue 3).
Keywords: ``quota``, ``refuse``, ``flaky`` (two 503s at create), ``never``
(never finishes), ``jobfails`` (the upstream job ends failed), ``notavideo``
(the result is not a video), ``slowpoll``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from reelgate.errors import InvalidRequest, QuotaExceeded, Refused, TransientError
from reelgate.providers.base import (
    GenerationRequest,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)


@dataclass
class ScriptedProvider:
    video: Path
    name: str = "scripted"
    route: str = "scripted"
    supports_cancel: bool = True
    idempotent_create: bool = True
    creates: list[GenerationRequest] = field(default_factory=list)
    create_calls: int = 0
    canceled: list[str] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    _prompts: dict[str, str] = field(default_factory=dict)
    _flaky: dict[str, int] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)

    async def create(self, request: GenerationRequest) -> Submitted:
        self.create_calls += 1
        prompt = request.prompt
        if "quota" in prompt and request.model.endswith("primary"):
            raise QuotaExceeded("Resource has been exhausted", upstream_status=429, retry_after=30)
        if "refuse" in prompt:
            raise Refused(
                "the prompt violates the usage policy", flagged="prompt", upstream_status=400
            )
        if "flaky" in prompt:
            n = self._flaky.get(request.idempotency_key, 0)
            self._flaky[request.idempotency_key] = n + 1
            if n < 2:
                raise TransientError("upstream answered 503", upstream_status=503)
        if request.idempotency_key in self._keys:
            return Submitted(self._keys[request.idempotency_key])
        upstream_id = f"up_{len(self.creates)}"
        self._keys[request.idempotency_key] = upstream_id
        self.creates.append(request)
        self._prompts[upstream_id] = prompt
        return Submitted(upstream_id)

    async def status(self, upstream_id: str) -> UpstreamStatus:
        if upstream_id not in self._prompts:
            raise InvalidRequest(f"no such task {upstream_id}", upstream_status=404)
        n = self.polls.get(upstream_id, 0) + 1
        self.polls[upstream_id] = n
        prompt = self._prompts[upstream_id]
        if "jobfails" in prompt:
            raise TransientError("the upstream job failed: internal error", terminal=True)
        if "never" in prompt or ("slowpoll" in prompt and n < 4):
            return UpstreamStatus(UpstreamState.RUNNING, progress=min(90, 10 * n))
        return UpstreamStatus(
            UpstreamState.SUCCEEDED,
            progress=100,
            result=ResultLocation(url=f"https://upstream.invalid/{upstream_id}.mp4"),
        )

    async def cancel(self, upstream_id: str) -> None:
        self.canceled.append(upstream_id)

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        upstream_id = result.url.rsplit("/", 1)[-1].removesuffix(".mp4")
        if "notavideo" in self._prompts[upstream_id]:
            yield b"<html>this is an error page, not a video</html>"
            return
        data = await asyncio.to_thread(self.video.read_bytes)
        for i in range(0, len(data), 64 * 1024):
            yield data[i : i + 64 * 1024]

    async def aclose(self) -> None:
        return None
