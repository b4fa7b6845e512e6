"""Scale: one worker process carrying 10,000 jobs in flight, steps per second, and two
worker processes against one.

In flight: the Sora emulator (its real API on loopback, through reelgate's Sora
adapter and its HTTP client) renders one video for an hour. A worker really submits
one job to it; its running row is then copied 10,000 times into the same database
(the copies share its upstream id, which changes nothing in a poll's work), due at
random over the first ``spread`` seconds. A worker process, spawned and built as
``reelgate worker`` builds one, carries them for ``seconds``: it polls each when due
(the emulator's answers carry progress and ``openai-poll-after-ms``, so each job is
then due again minutes later), and samples its own RSS and its event loop's lag (a
50 ms sleep measured against the loop's clock).

Steps: jobs queued in a fresh database, then worker processes in burst mode take them
to ``completed`` against ``InstantProvider`` (submit, poll, mirror of a real MP4).
Steps per second are over the wall time from the moment every process is ready to the
last one's exit, the database's own CPU included in what the two cores share:

- one process against the provider answering at once: what a worker's CPU allows;
- one process, then two at once, against the provider answering after ``latency``
  (an upstream's round trip; seconds in production): a worker is then bound by its
  concurrency, and a second process doubles the work done unless something serializes
  them (the claim, a lock, the database). Against the instant provider that cannot be
  shown on two cores: one worker already takes about one core and the database part of
  the other, so a second can add at most ~0.7 x (printed beside it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.common import Section, fmt, ratio
from benchmarks.provider import InstantProvider, install, tiny_clip
from benchmarks.scratch import Scratch
from benchmarks.seed import new_job, submit_jobs
from reelgate.accounts.dev import ensure_dev_account
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, run_emulator
from reelgate.emulators.wiring import emulated_settings
from reelgate.engine.commands import submit_job
from reelgate.engine.steps import Stepper
from reelgate.engine.worker import Worker
from reelgate.ids import new_job_id
from reelgate.job import JobState
from reelgate.runtime import build_runtime, freeze_startup_heap
from reelgate.store.accounts import DEV_ACCOUNT_ID, set_flags
from reelgate.store.jobs import claim_due, now_ms
from reelgate.store.schema import jobs

__all__ = ["ScaleFigures", "ScaleLoad", "run_scale", "scale_section"]

SLOW_MODEL = "sora-2"
LAG_TICK = 0.05


@dataclass(frozen=True)
class ScaleLoad:
    in_flight: int = 10_000
    spread: float = 60.0
    """The copies are due at random over this many seconds: ~167 polls a second."""
    seconds: float = 30.0
    """How long the worker carries them (measured)."""
    in_flight_concurrency: int = 32
    steps_jobs: int = 400
    """Jobs per worker process in the steps run (3 steps each)."""
    steps_concurrency: int = 8
    """The worker's default (``REELGATE_WORKER_CONCURRENCY``)."""
    latency: float = 0.05
    """Each upstream call's round trip in the scaling runs."""


@dataclass
class Carried:
    backend: str
    jobs: int
    polls: int
    seconds: float
    rss_max_mib: float
    lag_ms: list[float]
    cpu_seconds: float

    def lag(self, q: float) -> float:
        ordered = sorted(self.lag_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Steps:
    backend: str
    processes: int
    latency: float
    steps: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else float("nan")


@dataclass
class ScaleFigures:
    load: ScaleLoad
    carried: list[Carried] = field(default_factory=list)
    steps: list[Steps] = field(default_factory=list)

    def steps_of(self, backend: str, processes: int, latency: float) -> Steps | None:
        return next(
            (
                s
                for s in self.steps
                if (s.backend, s.processes, s.latency) == (backend, processes, latency)
            ),
            None,
        )

    def scaling(self, backend: str, latency: float) -> float | None:
        one, two = self.steps_of(backend, 1, latency), self.steps_of(backend, 2, latency)
        return ratio(two.per_second, one.per_second) if one and two else None


# -- the worker process --------------------------------------------------------------


@dataclass(frozen=True)
class _Worker:
    """What a worker process is built from (pickled into the spawned process)."""

    settings: Settings
    concurrency: int
    emulated: frozenset[str] = frozenset()
    provider: InstantProvider | None = None
    seconds: float | None = None
    """Stop after this long (None: burst mode, until no job is left)."""


def _child(plan: _Worker, conn: Connection) -> None:
    asyncio.run(_child_async(plan, conn))


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _child_async(plan: _Worker, conn: Connection) -> None:
    rt = await build_runtime(plan.settings, public_url="http://127.0.0.1", emulated=plan.emulated)
    seconds = plan.seconds
    try:
        if plan.provider is not None:
            install(rt, plan.provider, poll_interval_seconds=0.001)
        wk = Worker.from_runtime(
            rt, concurrency=plan.concurrency, lease_seconds=60, idle_poll_seconds=0.5
        )
        freeze_startup_heap()
        lags: list[float] = []
        rss = [_rss_mib()]
        loop = asyncio.get_running_loop()

        async def watch() -> None:
            while True:
                start = loop.time()
                await asyncio.sleep(LAG_TICK)
                lags.append((loop.time() - start - LAG_TICK) * 1000)
                if len(lags) % 5 == 0:
                    rss.append(_rss_mib())

        conn.send("ready")
        await asyncio.to_thread(conn.recv)  # "go": every process starts together
        watcher = asyncio.create_task(watch())
        cpu, start = time.process_time(), time.perf_counter()
        running = asyncio.create_task(wk.run(burst=seconds is None))
        if seconds is not None:
            await asyncio.sleep(seconds)
            wk.stop()
        await running
        elapsed = time.perf_counter() - start
        watcher.cancel()
        rss.append(_rss_mib())
        conn.send(
            {
                "steps": wk.steps_run,
                "seconds": elapsed,
                "cpu": time.process_time() - cpu,
                "rss_max_mib": max(rss),
                "lag_ms": lags,
            }
        )
    finally:
        await rt.aclose()


async def _workers(plan: _Worker, n: int) -> tuple[list[dict[str, Any]], float]:
    """``n`` worker processes started together; their reports and the wall time."""
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for i in range(n):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_child,
            args=(plan, child),
            name=f"bench-worker-{i}",
        )
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    try:
        for parent in pipes:
            if not await asyncio.to_thread(parent.poll, 120) or parent.recv() != "ready":
                raise RuntimeError("a worker process did not start")
        start = time.perf_counter()
        for parent in pipes:
            parent.send("go")
        reports = []
        for parent in pipes:
            if not await asyncio.to_thread(parent.poll, 600):
                raise RuntimeError("a worker process did not finish")
            reports.append(parent.recv())
        return reports, time.perf_counter() - start
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


# -- 10,000 jobs in flight ------------------------------------------------------------------


async def _carried(scratch: Scratch, backend: str, load: ScaleLoad, videos: Path) -> Carried:
    with run_emulator(
        "sora", EmulatorConfig(api_key="emulator-sora", job_seconds=3600, video_dir=videos)
    ) as sora:
        servers = {"sora": sora}
        settings = emulated_settings(
            scratch.settings(await scratch.database(backend), f"scale-{backend}"), servers
        )
        emulated = frozenset(servers)
        rt = await build_runtime(settings, public_url="http://127.0.0.1", emulated=emulated)
        try:
            await ensure_dev_account(rt)
            async with rt.db.begin() as conn:  # sora-2 is on an allow list
                await set_flags(conn, DEV_ACCOUNT_ID, allowed_models=[SLOW_MODEL])
            first = await submit_job(rt, new_job(rt, SLOW_MODEL, "a kite over dunes [render:3600]"))
            stepper = Stepper.from_runtime(rt, "bench-seed")
            [claimed] = await claim_due(rt.db, "bench-seed", limit=1, lease_ms=30_000)
            await stepper.advance(claimed)
            async with rt.db.connect() as conn:
                row = dict(
                    (await conn.execute(sa.select(jobs).where(jobs.c.id == first.id)))
                    .mappings()
                    .one()
                )
            if row["state"] != JobState.RUNNING:
                raise RuntimeError(f"the seed job is {row['state']}, not running")
            rng = random.Random(7)  # noqa: S311 - a reproducible spread, not a secret
            now = now_ms()
            copies = [
                {
                    **row,
                    "id": new_job_id(),
                    "hold_id": None,  # copies must not share the first job's credit hold
                    "next_run_at": now + int(rng.uniform(0, load.spread) * 1000),
                }
                for _ in range(load.in_flight - 1)
            ]
            async with rt.db.begin() as conn:
                for start in range(0, len(copies), 1000):
                    await conn.execute(jobs.insert(), copies[start : start + 1000])
                if conn.dialect.name == "postgresql":
                    await conn.execute(sa.text("ANALYZE jobs"))
        finally:
            await rt.aclose()
        plan = _Worker(
            settings, load.in_flight_concurrency, emulated=emulated, seconds=load.seconds
        )
        [report], _ = await _workers(plan, 1)
    return Carried(
        backend,
        load.in_flight,
        report["steps"],
        report["seconds"],
        report["rss_max_mib"],
        report["lag_ms"],
        report["cpu"],
    )


# -- steps per second, one and two processes --------------------------------------------------


async def _steps(
    scratch: Scratch, backend: str, processes: int, latency: float, clip: bytes, load: ScaleLoad
) -> Steps:
    name = f"steps-{backend}-{processes}-{latency:g}"
    settings = scratch.settings(await scratch.database(backend), name)
    provider = InstantProvider(clip=clip, latency_seconds=latency)
    rt = await build_runtime(settings, public_url="http://127.0.0.1")
    try:
        await ensure_dev_account(rt)
        model = install(rt, provider, poll_interval_seconds=0.001)
        await submit_jobs(rt, model, load.steps_jobs * processes)
    finally:
        await rt.aclose()
    reports, seconds = await _workers(
        _Worker(settings, load.steps_concurrency, provider=provider), processes
    )
    steps = sum(r["steps"] for r in reports)
    if steps < 3 * load.steps_jobs * processes:
        raise RuntimeError(f"{backend}: {steps} steps for {load.steps_jobs * processes} jobs")
    return Steps(backend, processes, latency, steps, seconds)


async def run_scale(scratch: Scratch, backends: Sequence[str], load: ScaleLoad) -> ScaleFigures:
    figures = ScaleFigures(load)
    for backend in backends:
        figures.carried.append(await _carried(scratch, backend, load, scratch.path("videos")))
    clip = tiny_clip(scratch.path("clip"))
    # interleaved: the machine's drift falls on both sides of each ratio
    plan = [(1, 0.0), (2, 0.0), (1, load.latency), (2, load.latency)] * 2
    for processes, latency in plan:
        for backend in backends:
            run = await _steps(scratch, backend, processes, latency, clip, load)
            before = figures.steps_of(backend, processes, latency)
            if before is None:
                figures.steps.append(run)
            else:
                before.steps += run.steps
                before.seconds += run.seconds
    return figures


def scale_section(figures: ScaleFigures) -> Section:
    load = figures.load
    backends = [c.backend for c in figures.carried] or sorted({s.backend for s in figures.steps})
    section = Section(
        "7. Scale: one worker process, many jobs; two processes", ["figure", *backends]
    )

    def row(name: str, values: list[float | None], digits: int = 2) -> None:
        section.row(name, *(fmt(v, digits) for v in values))

    carried = {c.backend: c for c in figures.carried}

    def each(fn: Any) -> list[float | None]:
        return [fn(carried[b]) if b in carried else None for b in backends]

    row(f"jobs in flight ({load.seconds:g} s carried)", each(lambda c: c.jobs), 0)
    row("polls done", each(lambda c: c.polls), 0)
    row("polls / s", each(lambda c: c.polls / c.seconds))
    row("worker RSS max (MiB)", each(lambda c: c.rss_max_mib), 1)
    row("event-loop lag p50 (ms)", each(lambda c: c.lag(0.5)))
    row("event-loop lag p99 (ms)", each(lambda c: c.lag(0.99)))
    row("event-loop lag max (ms)", each(lambda c: max(c.lag_ms, default=float("nan"))))
    row("worker CPU per poll (ms)", each(lambda c: 1000 * c.cpu_seconds / max(1, c.polls)))
    for latency in (0.0, load.latency):
        upstream = "instant upstream" if not latency else f"{latency * 1000:g} ms upstream"
        for processes in (1, 2):
            values = []
            for b in backends:
                s = figures.steps_of(b, processes, latency)
                values.append(s.per_second if s else None)
            label = f"{processes} worker process{'es' if processes > 1 else ''}"
            row(f"steps/s, {label}, {upstream}", values, 1)
        row(f"2 processes / 1, {upstream}", [figures.scaling(b, latency) for b in backends])
    section.notes.append(
        f"in flight: {load.in_flight} running sora-2 jobs on the Sora emulator (an hour's "
        f"render), due at random over {load.spread:g} s, one worker process at concurrency "
        f"{load.in_flight_concurrency}; lag: a {LAG_TICK * 1000:g} ms sleep's overshoot"
    )
    section.notes.append(
        f"steps: {load.steps_jobs} jobs per process against InstantProvider at concurrency "
        f"{load.steps_concurrency}, 3 steps each, runs of 1 and 2 processes interleaved twice; "
        "on 2 cores a CPU-bound worker (instant upstream) leaves a second process at most "
        "~0.7 x to add, so scaling is judged with the upstream's latency"
    )
    return section
