"""The engine: jobs per second through one in-process Worker, and the claim query.

Throughput: jobs are queued, then one ``Worker`` in burst mode takes them to
``completed`` against ``InstantProvider`` (create and poll answer at once,
the result is a 25 KiB MP4 that is really spooled, probed and stored). What
is left is reelgate's own cost: claims, fenced writes, the loop's wake-up
bookkeeping, and the mirror's file work. Each round gets a fresh database.

Claim: ``claim_due`` (and the worker's two other per-loop queries,
``next_wakeup`` and ``count_active``) on a table with 1k due jobs, against the
same with 10k finished jobs besides, alternating between the two databases.
Finished jobs have ``next_run_at`` NULL and sit outside the partial index
``ix_jobs_due``, so the claim should not notice them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from benchmarks.common import Latencies, Section, fmt, ratio
from benchmarks.provider import InstantProvider, install, tiny_clip
from benchmarks.scratch import Scratch
from benchmarks.seed import seed_table, submit_jobs
from reelgate.accounts.dev import ensure_dev_account
from reelgate.engine.steps import Stepper
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.jobs import Job, claim_due, count_active, next_wakeup, release_leases
from reelgate.store.schema import jobs

__all__ = [
    "EngineFigures",
    "EngineLoad",
    "count_label",
    "engine_section",
    "run_engine",
]

STEP_KINDS = {"queued": "submit", "submitting": "submit", "running": "poll", "mirroring": "mirror"}
CLAIMER = "bench-claimer"


@dataclass(frozen=True)
class EngineLoad:
    rounds: int = 2
    serial_jobs: int = 60
    parallel_jobs: int = 120
    concurrency: int = 8
    due: int = 1_000
    finished: int = 10_000
    claim_rounds: int = 3
    claims_per_round: int = 60


@dataclass
class Throughput:
    jobs: int = 0
    steps: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    step_times: dict[str, Latencies] = field(default_factory=lambda: defaultdict(Latencies))

    def add(self, other: Throughput) -> None:
        self.jobs += other.jobs
        self.steps += other.steps
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds
        for kind, lat in other.step_times.items():
            self.step_times[kind].extend(lat)

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds if self.seconds else float("nan")

    @property
    def ms_per_step(self) -> float:
        return self.seconds / self.steps * 1000 if self.steps else float("nan")

    @property
    def cpu_ms_per_step(self) -> float:
        return self.cpu_seconds / self.steps * 1000 if self.steps else float("nan")

    @property
    def cpu_ms_per_job(self) -> float:
        """Worker CPU for one job's steps (submit, poll, mirror)."""
        return self.cpu_seconds / self.jobs * 1000 if self.jobs else float("nan")

    @property
    def overhead_ms_per_step(self) -> float:
        """Wall time per step that is not mirroring: claim, bookkeeping writes, loop."""
        mirror = self.step_times.get("mirror", Latencies())
        steps = self.steps - len(mirror)
        if steps <= 0:
            return float("nan")
        return (self.seconds - sum(mirror.samples)) / steps * 1000


@dataclass
class ClaimFigures:
    claim_due: Latencies = field(default_factory=Latencies)
    next_wakeup: Latencies = field(default_factory=Latencies)
    count_active: Latencies = field(default_factory=Latencies)

    def p50(self, query: str) -> float:
        lat: Latencies = getattr(self, query)
        return lat.pct_ms(50)


@dataclass
class BackendEngine:
    serial: Throughput = field(default_factory=Throughput)
    parallel: Throughput = field(default_factory=Throughput)
    empty: ClaimFigures = field(default_factory=ClaimFigures)
    backlog: ClaimFigures = field(default_factory=ClaimFigures)

    def flatness(self, query: str) -> float | None:
        """p50 of ``query`` with the finished backlog over p50 without it (1.0 = flat)."""
        return ratio(self.backlog.p50(query), self.empty.p50(query))


@dataclass
class EngineFigures:
    load: EngineLoad
    backends: dict[str, BackendEngine] = field(default_factory=dict)


_STEPPER_PARTS = (
    "store",
    "catalog",
    "providers",
    "storage",
    "settings",
    "hub",
    "worker_id",
    "clock",
    "uniform",
)


class _TimedStepper(Stepper):
    """The real stepper, timing each step by the state it started from."""

    def __init__(self, rt: Runtime, worker_id: str, out: dict[str, Latencies]) -> None:
        base = Stepper.from_runtime(rt, worker_id)
        super().__init__(**{k: getattr(base, k) for k in _STEPPER_PARTS})
        self.out = out

    async def advance(self, job: Job) -> None:
        kind = "final" if job.is_final else STEP_KINDS.get(job.state, job.state)
        start = time.perf_counter()
        try:
            await super().advance(job)
        finally:
            self.out[kind].add(time.perf_counter() - start)


@dataclass(frozen=True)
class _Env:
    scratch: Scratch
    clip: bytes

    async def runtime(self, backend: str, name: str) -> tuple[Runtime, str]:
        """A runtime on a fresh database, with the instant provider and its model."""
        url = await self.scratch.database(backend)
        rt = await build_runtime(self.scratch.settings(url, name), public_url="http://127.0.0.1")
        await ensure_dev_account(rt)
        model = install(rt, InstantProvider(clip=self.clip), poll_interval_seconds=0.001)
        return rt, model


async def _throughput(env: _Env, backend: str, n: int, concurrency: int, name: str) -> Throughput:
    rt, model = await env.runtime(backend, name)
    try:
        await submit_jobs(rt, model, n)
        times: dict[str, Latencies] = defaultdict(Latencies)
        wk = Worker.from_runtime(
            rt, concurrency=concurrency, lease_seconds=30, idle_poll_seconds=0.5
        )
        wk.stepper = _TimedStepper(rt, wk.id, times)
        start, cpu = time.perf_counter(), time.process_time()
        await wk.run(burst=True)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        async with rt.db.connect() as conn:
            done = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(jobs)
                    .where(jobs.c.state == "completed")
                    .where(jobs.c.result["mirror_status"].as_string() == "stored")
                )
            ).scalar_one()
        if done != n:
            raise RuntimeError(f"{backend}: only {done} of {n} jobs completed and mirrored")
        return Throughput(n, wk.steps_run, seconds, cpu, times)
    finally:
        await rt.aclose()


async def _claims(rt: Runtime, n: int, into: ClaimFigures) -> None:
    for _ in range(n):
        start = time.perf_counter()
        claimed = await claim_due(rt.db, CLAIMER, limit=8, lease_ms=30_000)
        into.claim_due.add(time.perf_counter() - start)
        if len(claimed) != 8:
            raise RuntimeError(f"claimed {len(claimed)} jobs, expected 8")
        await release_leases(rt.db, CLAIMER)  # untimed: keeps every round's table the same
        start = time.perf_counter()
        await next_wakeup(rt.db)
        into.next_wakeup.add(time.perf_counter() - start)
        start = time.perf_counter()
        await count_active(rt.db)
        into.count_active.add(time.perf_counter() - start)


async def _claim_bench(env: _Env, backend: str, load: EngineLoad, out: BackendEngine) -> None:
    empty, model = await env.runtime(backend, f"claim-empty-{backend}")
    backlog, _ = await env.runtime(backend, f"claim-backlog-{backend}")
    try:
        await seed_table(empty, model, due=load.due, finished=0)
        await seed_table(backlog, model, due=load.due, finished=load.finished)
        await _claims(empty, 5, ClaimFigures())  # warm both pools and caches
        await _claims(backlog, 5, ClaimFigures())
        for _ in range(load.claim_rounds):
            await _claims(empty, load.claims_per_round, out.empty)
            await _claims(backlog, load.claims_per_round, out.backlog)
    finally:
        await empty.aclose()
        await backlog.aclose()


async def run_engine(scratch: Scratch, backends: Sequence[str], load: EngineLoad) -> EngineFigures:
    figures = EngineFigures(load, {b: BackendEngine() for b in backends})
    env = _Env(scratch, tiny_clip(scratch.path("clip")))
    for r in range(load.rounds):
        for backend in backends:
            out = figures.backends[backend]
            out.serial.add(await _throughput(env, backend, load.serial_jobs, 1, f"c1-{r}"))
        for backend in backends:
            out = figures.backends[backend]
            out.parallel.add(
                await _throughput(env, backend, load.parallel_jobs, load.concurrency, f"cn-{r}")
            )
    for backend in backends:
        await _claim_bench(env, backend, load, figures.backends[backend])
    return figures


def count_label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


_Figure = Callable[[BackendEngine], float | None]


def _step_p50(kind: str) -> _Figure:
    return lambda f: f.serial.step_times[kind].pct_ms(50)


def _query_figures(query: str) -> tuple[_Figure, _Figure, _Figure]:
    return (
        lambda f: f.empty.p50(query),
        lambda f: f.backlog.p50(query),
        lambda f: f.flatness(query),
    )


def engine_section(figures: EngineFigures) -> Section:
    load = figures.load
    section = Section(
        "2. Engine (one in-process Worker, instant upstream, real mirror of a 25 KiB MP4)",
        ["figure", "sqlite", "postgresql", "pg/sqlite"],
    )
    lite = figures.backends.get("sqlite")
    pg = figures.backends.get("postgresql")

    def add(name: str, value: _Figure) -> None:
        a = value(lite) if lite else None
        b = value(pg) if pg else None
        section.row(name, fmt(a), fmt(b), fmt(ratio(b, a)))

    c = load.concurrency
    add("throughput c=1 (jobs/s)", lambda f: f.serial.jobs_per_second)
    add(f"throughput c={c} (jobs/s)", lambda f: f.parallel.jobs_per_second)
    add("wall time per step c=1 (ms)", lambda f: f.serial.ms_per_step)
    add("engine overhead per step c=1 (ms)", lambda f: f.serial.overhead_ms_per_step)
    add("worker CPU per step c=1 (ms)", lambda f: f.serial.cpu_ms_per_step)
    add("worker CPU per job c=1 (ms)", lambda f: f.serial.cpu_ms_per_job)
    for kind in ("submit", "poll", "mirror"):
        add(f"  {kind} step c=1, p50 (ms)", _step_p50(kind))
    add(f"wall time per step c={c} (ms)", lambda f: f.parallel.ms_per_step)
    add(f"worker CPU per step c={c} (ms)", lambda f: f.parallel.cpu_ms_per_step)
    due, done = count_label(load.due), count_label(load.finished)
    for query in ("claim_due", "next_wakeup", "count_active"):
        empty, backlog, flat = _query_figures(query)
        add(f"{query} p50, {due} due (ms)", empty)
        add(f"{query} p50, {due} due + {done} done (ms)", backlog)
        add(f"{query} {done} done / 0 done", flat)
    section.notes.append(
        f"throughput: {load.rounds} rounds of {load.serial_jobs} jobs at c=1 and "
        f"{load.parallel_jobs} at c={c} per backend, 3 steps each (submit, poll, mirror); "
        "overhead per step = wall time minus mirror steps, over the other steps"
    )
    section.notes.append(
        f"claim: limit 8, {load.claim_rounds * load.claims_per_round} claims per table, "
        "alternating between the two tables; leases released (untimed) after each"
    )
    return section
