"""``python -m benchmarks.run``: every section, its table, then the targets.

    python -m benchmarks.run                  # everything (make bench), ~3-4 minutes
    python -m benchmarks.run --only engine    # one or more of the sections in SECTIONS
    python -m benchmarks.run --quick          # smaller loads, for checking the harness

PostgreSQL rows need REELGATE_BENCH_DATABASE_URL or REELGATE_TEST_DATABASE_URL
(an admin URL: scratch databases are created and dropped through it); without
either they are skipped with a note. Exits 1 when a target fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field

from benchmarks.catalog import CatalogLoad, catalog_section, run_catalog
from benchmarks.common import Section
from benchmarks.engine import EngineLoad, engine_section, run_engine
from benchmarks.mirror import mirror_section, run_mirror
from benchmarks.render import render_section, run_render
from benchmarks.scale import ScaleLoad, run_scale, scale_section
from benchmarks.scratch import Scratch, postgres_admin_url, postgres_problem, redacted
from benchmarks.submit import Load, run_submit, submit_section
from benchmarks.targets import Results, targets
from benchmarks.webhooks import (
    HookLoad,
    SpreadLoad,
    run_spread,
    run_webhooks,
    spread_section,
    webhooks_section,
)
from reelgate import __version__

SECTIONS = ("submit", "engine", "mirror", "render", "webhooks", "polling", "scale", "catalog")


@dataclass(frozen=True)
class Plan:
    submit: Load = field(default_factory=Load)
    engine: EngineLoad = field(default_factory=EngineLoad)
    mirror_sizes_mib: tuple[int, int] = (128, 512)
    render_seconds: int = 4
    webhooks: HookLoad = field(default_factory=HookLoad)
    polling: SpreadLoad = field(default_factory=SpreadLoad)
    scale: ScaleLoad = field(default_factory=ScaleLoad)
    catalog: CatalogLoad = field(default_factory=CatalogLoad)


QUICK = Plan(
    submit=Load(rounds=1, serial_posts=40, parallel_posts=96, gets=40, warmup=10, history=2_000),
    engine=EngineLoad(
        rounds=1, serial_jobs=30, parallel_jobs=60, due=200, finished=2_000, claims_per_round=20
    ),
    mirror_sizes_mib=(64, 256),
    render_seconds=1,
    webhooks=HookLoad(jobs=3, upstream_seconds=1.0),
    polling=SpreadLoad(jobs=4, learn=4, median_seconds=2.0),
    scale=ScaleLoad(in_flight=1_000, spread=10.0, seconds=5.0, steps_jobs=100),
    catalog=CatalogLoad(models=300, reloads=1, cached_loads=2, requests=20, validations=200),
)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _emit(section: Section, started: float) -> None:
    section.notes.append(f"section took {time.perf_counter() - started:.0f} s")
    print()
    print(section.render(), flush=True)


async def _run(only: set[str], plan: Plan, backends: list[str], scratch: Scratch) -> Results:
    res = Results()
    if "submit" in only:
        started = time.perf_counter()
        res.submit = await run_submit(scratch, backends, plan.submit)
        _emit(submit_section(res.submit), started)
    if "engine" in only:
        started = time.perf_counter()
        res.engine = await run_engine(scratch, backends, plan.engine)
        _emit(engine_section(res.engine), started)
    if "mirror" in only:
        started = time.perf_counter()
        res.mirror = await run_mirror(scratch.path("mirror"), plan.mirror_sizes_mib)
        _emit(mirror_section(res.mirror), started)
    if "render" in only:
        started = time.perf_counter()
        res.render = await run_render(scratch.path("render"), plan.render_seconds)
        _emit(render_section(res.render), started)
    if "webhooks" in only:
        started = time.perf_counter()
        res.webhooks = await run_webhooks(scratch, plan.webhooks)
        _emit(webhooks_section(res.webhooks, plan.webhooks), started)
    if "polling" in only:
        started = time.perf_counter()
        res.polling = await run_spread(scratch, plan.polling)
        _emit(spread_section(res.polling, plan.polling), started)
    if "scale" in only:
        started = time.perf_counter()
        res.scale = await run_scale(scratch, backends, plan.scale)
        _emit(scale_section(res.scale), started)
    if "catalog" in only:
        started = time.perf_counter()
        res.catalog = await run_catalog(scratch, backends, plan.catalog)
        _emit(catalog_section(res.catalog), started)
    return res


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--quick", action="store_true", help="small loads (harness check)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


async def main(argv: list[str]) -> int:
    args = _parse(argv)
    only = set(args.only.split(","))
    plan = QUICK if args.quick else Plan()
    pg_url = postgres_admin_url()
    backends = ["sqlite", "postgresql"] if pg_url else ["sqlite"]
    started = time.perf_counter()
    print(
        f"reelgate {__version__} benchmarks | Python {platform.python_version()} | "
        f"{os.cpu_count()} CPUs | load average {_load()} | "
        f"{'quick' if args.quick else 'full'} run"
    )
    if pg_url is None:
        print(
            "note: PostgreSQL rows skipped: set REELGATE_BENCH_DATABASE_URL or "
            "REELGATE_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres)"
        )
    if pg_url is not None:
        problem = await postgres_problem(pg_url)
        if problem:
            print(f"error: cannot use the PostgreSQL at {redacted(pg_url)}: {problem}")
            return 2
    scratch = Scratch(pg_url)
    try:
        res = await _run(only, plan, backends, scratch)
    finally:
        await scratch.close()
    checks = targets(res)
    print()
    print("Targets (why each limit: docs/benchmarks.md)")
    print("=============================================")
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.verdict == "FAIL"]
    passed = sum(c.verdict == "PASS" for c in checks)
    skipped = sum(c.verdict == "SKIP" for c in checks)
    print(
        f"\n{passed} passed, {len(failed)} failed, {skipped} skipped in "
        f"{time.perf_counter() - started:.0f} s (load average now {_load()})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so the finally blocks drop the scratch databases.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(asyncio.run(main(sys.argv[1:])))
