"""Every provider's emulator on loopback, once per session, and a runtime wired to them
(as ``reelgate serve --emulators`` does), for tests that cross every provider kind."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorServer
from reelgate.emulators.wiring import emulated_settings, running_emulators
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, set_flags
from tests.conftest import TEST_KEY

SLOW_CREATE_SECONDS = 2.5
"""How long the emulators hold back a ``slow-create`` answer."""

# One model per provider kind, with a shape each offers.
MODELS: dict[str, dict[str, Any]] = {
    "veo": {"model": "veo-3-1-fast", "duration_seconds": 4, "resolution": "720p"},
    "sora": {"model": "sora-2", "duration_seconds": 4, "resolution": "720p"},
    "wan": {"model": "wan-2-1", "duration_seconds": 5, "resolution": "720p"},
    "grok": {"model": "grok-video", "duration_seconds": 4, "resolution": "720p"},
    "video_gateway": {"model": "veo (Audio)", "duration_seconds": 4, "resolution": "512p"},
    "fal": {"model": "ltx-video", "duration_seconds": 5, "resolution": "480p"},  # fal only
    # Kling is on fal and Replicate; the runtimes here prefer Replicate for it
    "replicate": {"model": "kling-2-5-turbo", "duration_seconds": 5},
    "local": {"model": "local", "duration_seconds": 1, "resolution": "360p"},
}


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EmulatorServer]]:
    videos = tmp_path_factory.mktemp("emulated-videos")
    with running_emulators(
        videos, job_seconds=0.5, slow_create_seconds=SLOW_CREATE_SECONDS
    ) as servers:
        yield servers


@contextlib.asynccontextmanager
async def emulated_runtime(
    settings: Settings, servers: dict[str, EmulatorServer], **overrides: Any
) -> AsyncIterator[Runtime]:
    """A runtime whose cloud models answer through the emulators, polled quickly, with
    every model allowed for the dev account."""
    overrides.setdefault("provider_priority", {"kling-2-5-turbo:replicate": 0})
    configured = emulated_settings(settings, servers).updated(**overrides)
    rt = await build_runtime(
        configured, public_url="http://testserver", emulated=frozenset(servers)
    )
    try:
        rt.catalog.replace(
            [
                dataclasses.replace(s, poll_interval_seconds=0.1, typical_seconds=1.0)
                for s in rt.catalog
            ]
        )
        await ensure_dev_account(rt)
        async with rt.db.begin() as conn:
            await set_flags(conn, DEV_ACCOUNT_ID, allowed_models=rt.catalog.ids(), prc_opt_in=True)
        yield rt
    finally:
        await rt.aclose()


@contextlib.asynccontextmanager
async def api_client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    ) as client:
        yield client


def upstream_prompts(kind: str, server: EmulatorServer) -> list[str]:
    """The prompts of every job an emulator created (its own records)."""
    state = server.app.state
    if kind == "sora":
        return [v.prompt for v in state.sora.videos.values()]
    if kind == "veo":
        return [j.prompt for j in state.veo.jobs.values()]
    if kind == "wan":
        return [t.prompt for t in state.tasks.values()]
    if kind == "grok":
        return [j.prompt for j in state.emulator.jobs.values()]
    if kind == "fal":
        return [j.prompt for j in state.emulator.jobs.values()]
    if kind == "replicate":
        return [p.prompt for p in state.emulator.predictions.values()]
    return [j.body.prompt for j in state.emulator.jobs.values()]
