"""Inbound provider webhooks: upstream polls per job, and the time from an upstream
finishing to reelgate's ``completed``, with the providers' calls and without them.

The fal, Replicate and OpenAI Videos (Sora) emulators (loopback, each job finishing
``upstream_seconds`` after its create) stand in for the upstreams; a gateway listens on
a real port (its public URL, which the emulators call back: per job for fal and
Replicate, at the project endpoint for OpenAI) with a worker in the same process, on a
fresh SQLite database per run. The models (Kling 2.5 Turbo on fal or Replicate, Sora 2)
keep their catalog poll intervals, so the runs without calls poll as production would.

Latency is measured from the upstream's own clock (its job's create plus its render
time) to the job's ``completed_at`` in reelgate's database, so it includes the mirror
of the video (a small file on loopback) but no client polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from benchmarks.common import Latencies, Section, fmt
from benchmarks.scratch import Scratch
from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.fal import emulator_of as fal_of
from reelgate.emulators.replicate import emulator_of as replicate_of
from reelgate.emulators.sora import state_of as sora_of
from reelgate.emulators.wiring import emulated_settings
from reelgate.engine.worker import Worker
from reelgate.runtime import build_runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, set_flags
from reelgate.store.jobs import get_job

__all__ = ["HookLoad", "HookRun", "run_webhooks", "webhooks_section"]

KINDS = ("fal", "replicate", "sora")
MODELS = {"fal": "kling-2-5-turbo", "replicate": "kling-2-5-turbo", "sora": "sora-2"}
KEY = "rg_bench_webhooks_0123456789abcdef"


@dataclass(frozen=True)
class HookLoad:
    jobs: int = 8
    """Submitted at once, per platform and mode."""
    upstream_seconds: float = 2.0


@dataclass
class HookRun:
    kind: str
    model: str
    webhooks: bool
    poll_interval_seconds: float
    polls: list[int] = field(default_factory=list)
    latency: Latencies = field(default_factory=Latencies)
    """Upstream finished → ``completed`` in reelgate's database."""

    @property
    def polls_per_job(self) -> float:
        return sum(self.polls) / len(self.polls) if self.polls else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _emulators(videos: Path, seconds: float) -> Iterator[dict[str, EmulatorServer]]:
    with contextlib.ExitStack() as stack:
        yield {
            kind: stack.enter_context(
                run_emulator(
                    kind,
                    EmulatorConfig(
                        api_key=f"emulator-{kind}", job_seconds=seconds, video_dir=videos
                    ),
                )
            )
            for kind in KINDS
        }


def _upstream_done_ms(servers: dict[str, EmulatorServer], kind: str, upstream_id: str) -> int:
    """When the emulator's job finished, on the wall clock (its own clock is monotonic)."""
    wall_minus_mono = time.time() - time.monotonic()
    if kind == "fal":
        fal = fal_of(servers["fal"])
        created = fal.jobs[upstream_id.rsplit("/", 1)[-1]].created
        seconds = fal.config.job_seconds
    elif kind == "sora":
        sora = sora_of(servers["sora"].app)
        created = sora.videos[upstream_id].started
        seconds = sora.config.job_seconds
    else:
        rep = replicate_of(servers["replicate"])
        created = rep.predictions[upstream_id].created
        seconds = rep.config.job_seconds
    return round((created + seconds + wall_minus_mono) * 1000)


def _polls(servers: dict[str, EmulatorServer], kind: str, upstream_id: str) -> int:
    if kind == "fal":
        return fal_of(servers["fal"]).polls(upstream_id.rsplit("/", 1)[-1])
    if kind == "sora":
        return sora_of(servers["sora"].app).videos[upstream_id].polls
    return replicate_of(servers["replicate"]).polls_of(upstream_id)


async def _one(
    scratch: Scratch,
    servers: dict[str, EmulatorServer],
    kind: str,
    webhooks: bool,
    load: HookLoad,
) -> HookRun:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    name = f"hooks-{kind}-{'on' if webhooks else 'off'}-{load.jobs}"
    model = MODELS[kind]
    settings = scratch.settings(
        await scratch.database("sqlite"),
        name,
        dev_api_key=KEY,
        public_url=url,
        inbound_webhooks=webhooks,
        provider_priority={kind: 0},
    )
    settings = emulated_settings(settings, servers)
    rt = await build_runtime(settings, public_url=url, emulated=frozenset(servers))
    run = HookRun(kind, model, webhooks, rt.catalog.get(model).poll_interval_seconds)
    await ensure_dev_account(rt)
    async with rt.db.begin() as conn:  # sora-2 is on an allow list
        await set_flags(conn, DEV_ACCOUNT_ID, allowed_models=[model])
    api = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(api.serve())
    worker = Worker.from_runtime(rt, concurrency=load.jobs, lease_seconds=30, idle_poll_seconds=0.5)
    working: asyncio.Task[None] | None = None
    try:
        for _ in range(1000):
            if api.started:
                break
            await asyncio.sleep(0.01)
        working = asyncio.create_task(worker.run())
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        ) as client:
            ids = []
            for i in range(load.jobs):
                body = {"model": model, "prompt": f"{name} {i}: a kite over dunes"}
                made = await client.post("/v1/videos", json=body)
                made.raise_for_status()
                ids.append(made.json()["id"])
        deadline = time.monotonic() + load.upstream_seconds + 4 * run.poll_interval_seconds + 30
        while True:
            async with rt.db.connect() as conn:
                jobs = [await get_job(conn, job_id) for job_id in ids]
            if all(j is not None and j.completed_at is not None for j in jobs):
                break
            if time.monotonic() > deadline:
                states = sorted({j.state for j in jobs if j is not None})
                raise RuntimeError(f"{name}: jobs not completed in time (states {states})")
            await asyncio.sleep(0.1)
        for job in jobs:
            if job is None or job.completed_at is None:
                raise RuntimeError(f"{name}: a job vanished")
            attempt = job.attempts[-1]
            if attempt.provider != kind or attempt.upstream_id is None:
                raise RuntimeError(f"{name}: job {job.id} ran on {attempt.provider}, not {kind}")
            run.polls.append(_polls(servers, kind, attempt.upstream_id))
            done = _upstream_done_ms(servers, kind, attempt.upstream_id)
            run.latency.add(max(0, job.completed_at - done) / 1000)
        return run
    finally:
        worker.stop()
        if working is not None:
            await asyncio.wait_for(working, 30)
        api.should_exit = True
        await asyncio.wait_for(serving, 10)
        await rt.aclose()


async def run_webhooks(scratch: Scratch, load: HookLoad) -> list[HookRun]:
    runs: list[HookRun] = []
    with _emulators(scratch.path("hook-videos"), load.upstream_seconds) as servers:
        # interleaved: each platform with and without its calls, back to back, after
        # one unmeasured job that has the emulator render (and cache) its video
        for kind in KINDS:
            await _one(scratch, servers, kind, True, HookLoad(1, load.upstream_seconds))
            for webhooks in (True, False):
                runs.append(await _one(scratch, servers, kind, webhooks, load))
    return runs


def webhooks_section(runs: Sequence[HookRun], load: HookLoad) -> Section:
    section = Section(
        f"Inbound webhooks: {load.jobs} jobs at once per row, "
        f"{load.upstream_seconds:g} s upstream render, SQLite",
        [
            "route",
            "provider calls",
            "poll every",
            "polls / job",
            "max polls",
            "done → completed p50 ms",
            "p95 ms",
            "max ms",
        ],
    )
    for r in runs:
        section.row(
            f"{r.model} via {r.kind}",
            "on" if r.webhooks else "off",
            f"{r.poll_interval_seconds:g} s",
            fmt(r.polls_per_job),
            str(max(r.polls, default=0)),
            fmt(r.latency.pct_ms(50), 0),
            fmt(r.latency.pct_ms(95), 0),
            fmt(r.latency.pct_ms(100), 0),
        )
    section.notes.append(
        "with calls on, polling is only a safety net (webhook_safety_poll_seconds, 300 s); "
        "OpenAI's event names the video only, so one poll follows it"
    )
    section.notes.append("latency includes mirroring the video into reelgate's storage")
    return section
