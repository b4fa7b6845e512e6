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
import math
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
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
from reelgate.job import Job
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, set_flags
from reelgate.store.jobs import get_job

__all__ = [
    "HookLoad",
    "HookRun",
    "SpreadLoad",
    "SpreadRun",
    "run_spread",
    "run_webhooks",
    "spread_section",
    "webhooks_section",
]

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
        job = fal.jobs[upstream_id.rsplit("/", 1)[-1]]
        created, seconds = job.created, job.render_seconds
    elif kind == "sora":
        sora = sora_of(servers["sora"].app)
        video = sora.videos[upstream_id]
        created, seconds = video.started, video.render_seconds
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


@contextlib.asynccontextmanager
async def _gateway(
    scratch: Scratch,
    servers: dict[str, EmulatorServer],
    kind: str,
    name: str,
    *,
    webhooks: bool,
    concurrency: int,
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A gateway on a loopback port (API and a worker, fresh SQLite) pinned to ``kind``,
    and a client of it with the dev key."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
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
    await ensure_dev_account(rt)
    async with rt.db.begin() as conn:  # sora-2 is on an allow list
        await set_flags(conn, DEV_ACCOUNT_ID, allowed_models=[MODELS[kind]])
    api = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(api.serve())
    worker = Worker.from_runtime(
        rt, concurrency=concurrency, lease_seconds=30, idle_poll_seconds=0.5
    )
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
            yield rt, client
    finally:
        worker.stop()
        if working is not None:
            await asyncio.wait_for(working, 30)
        api.should_exit = True
        await asyncio.wait_for(serving, 10)
        await rt.aclose()


async def _one(
    scratch: Scratch,
    servers: dict[str, EmulatorServer],
    kind: str,
    webhooks: bool,
    load: HookLoad,
) -> HookRun:
    name = f"hooks-{kind}-{'on' if webhooks else 'off'}-{load.jobs}"
    model = MODELS[kind]
    async with _gateway(scratch, servers, kind, name, webhooks=webhooks, concurrency=load.jobs) as (
        rt,
        client,
    ):
        run = HookRun(kind, model, webhooks, rt.catalog.get(model).poll_interval_seconds)
        ids = []
        for i in range(load.jobs):
            body = {"model": model, "prompt": f"{name} {i}: a kite over dunes"}
            made = await client.post("/v1/videos", json=body)
            made.raise_for_status()
            ids.append(made.json()["id"])
        within = load.upstream_seconds + 4 * run.poll_interval_seconds + 30
        for job in await _wait_completed(rt, ids, name, within):
            attempt = job.attempts[-1]
            if attempt.provider != kind or attempt.upstream_id is None:
                raise RuntimeError(f"{name}: job {job.id} ran on {attempt.provider}, not {kind}")
            assert job.completed_at is not None
            run.polls.append(_polls(servers, kind, attempt.upstream_id))
            done = _upstream_done_ms(servers, kind, attempt.upstream_id)
            run.latency.add(max(0, job.completed_at - done) / 1000)
        return run


@dataclass(frozen=True)
class SpreadLoad:
    jobs: int = 16
    """At once, measured, after ``learn`` jobs one after another taught the worker the
    model's time (a gateway in service has seen many)."""
    learn: int = 8
    median_seconds: float = 6.0
    """The median upstream time: a 2-minute job compressed 20-fold."""
    sigma: float = 0.35
    """The spread (log-normal): about 3 to 12 s around a 6 s median."""
    seed: int = 12


@dataclass
class SpreadRun:
    kind: str
    model: str
    polls: list[int] = field(default_factory=list)
    upstream: list[float] = field(default_factory=list)
    """Each measured job's upstream time (s)."""
    latency: Latencies = field(default_factory=Latencies)
    """Upstream finished -> ``completed`` (mirror included)."""
    over: list[float] = field(default_factory=list)
    """Each job's added latency over its allowance, max(1 s, 10 % of its upstream time)."""

    def over_p95(self) -> float:
        ordered = sorted(self.over)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else float("nan")


async def _spread(
    scratch: Scratch, servers: dict[str, EmulatorServer], kind: str, load: SpreadLoad
) -> SpreadRun:
    """Upstream times drawn from a spread, provider calls off: how many polls a job
    costs and how late its end is seen, once the worker has learned the model's time."""
    rng = random.Random(load.seed)  # noqa: S311 - a reproducible spread, not a secret
    name = f"spread-{kind}"
    run = SpreadRun(kind, MODELS[kind])
    async with _gateway(scratch, servers, kind, name, webhooks=False, concurrency=load.jobs) as (
        rt,
        client,
    ):
        for round_no, batch in enumerate([1] * load.learn + [load.jobs]):
            measured = round_no == load.learn
            ids = []
            for i in range(batch):
                seconds = load.median_seconds * math.exp(rng.gauss(0, load.sigma))
                prompt = f"{name} {round_no} {i}: a kite over dunes [render:{seconds:.2f}]"
                made = await client.post("/v1/videos", json={"model": run.model, "prompt": prompt})
                made.raise_for_status()
                ids.append(made.json()["id"])
            jobs = await _wait_completed(rt, ids, name, 120)
            if measured:
                _measure_spread(run, servers, jobs)
    return run


async def _wait_completed(rt: Runtime, ids: list[str], name: str, within: float) -> list[Job]:
    deadline = time.monotonic() + within
    while True:
        async with rt.db.connect() as conn:
            found = [await get_job(conn, job_id) for job_id in ids]
        jobs = [j for j in found if j is not None and j.completed_at is not None]
        if len(jobs) == len(ids):
            return jobs
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: jobs not completed in time")
        await asyncio.sleep(0.1)


def _measure_spread(run: SpreadRun, servers: dict[str, EmulatorServer], jobs: list[Job]) -> None:
    for job in jobs:
        attempt = job.attempts[-1]
        if attempt.provider != run.kind or attempt.upstream_id is None:
            raise RuntimeError(f"job {job.id} ran on {attempt.provider}, not {run.kind}")
        assert job.completed_at is not None
        done = _upstream_done_ms(servers, run.kind, attempt.upstream_id)
        upstream = (done - job.created_at) / 1000
        late = max(0, job.completed_at - done) / 1000
        run.polls.append(_polls(servers, run.kind, attempt.upstream_id))
        run.upstream.append(upstream)
        run.latency.add(late)
        run.over.append(late / max(1.0, 0.1 * upstream))


async def run_spread(scratch: Scratch, load: SpreadLoad) -> list[SpreadRun]:
    with _emulators(scratch.path("spread-videos"), load.median_seconds) as servers:
        return [await _spread(scratch, servers, kind, load) for kind in SPREAD_KINDS]


SPREAD_KINDS = ("sora", "fal")


def spread_section(runs: Sequence[SpreadRun], load: SpreadLoad) -> Section:
    section = Section(
        f"Adaptive polling: upstream times spread around {load.median_seconds:g} s "
        f"(log-normal, sigma {load.sigma:g}), {load.jobs} jobs at once, provider calls off, "
        "SQLite",
        [
            "route",
            "upstream s min-max",
            "polls / job",
            "max polls",
            "done → completed p50 ms",
            "p95 ms",
            "p95 late / allowance",
        ],
    )
    for r in runs:
        section.row(
            f"{r.model} via {r.kind}",
            f"{min(r.upstream):.1f}-{max(r.upstream):.1f}" if r.upstream else "-",
            fmt(sum(r.polls) / len(r.polls) if r.polls else None),
            str(max(r.polls, default=0)),
            fmt(r.latency.pct_ms(50), 0),
            fmt(r.latency.pct_ms(95), 0),
            fmt(r.over_p95()),
        )
    section.notes.append(
        f"{load.learn} jobs one after another teach the worker the model's time "
        "(engine.pacing), then the jobs at once are measured. allowance: max(1 s, 10 % "
        "of the job's upstream time); latency includes the mirror"
    )
    section.notes.append(
        "sora reports progress and openai-poll-after-ms: first look at the learned 10th "
        "percentile, then the hint decides. fal reports neither: looks at the learned "
        "median, 90th percentile and 1.1 x the longest, so its lateness is a figure, not "
        "a target (its webhook is: section 5)"
    )
    return section


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
