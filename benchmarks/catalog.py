"""The synced catalog at fal's scale: ~1,400 models synced, loaded, listed and checked.

fal lists about 1,400 endpoints (docs/catalog-sync.md). The 50 recorded fal schemas
(``reelgate.emulators.recorded``) are served by the fal emulator together with copies
under new endpoint ids (``bench-owner-<i>/<name>``: the document's path renamed to
``/<new id>``, and a distinct ``description`` on the input's root, so every copy has
its own schema hash and is read, checked and cached as a model of its own) until it
lists ``CatalogLoad.models`` in all. ``run_sync`` fetches them through the real HTTP
path (fal's Platform API, paged by 100, both categories) into a scratch database of
each backend; the emulator runs on a thread of this process, so its JSON encoding is
in the sync's wall time.

Per backend:

- **sync**: the first ``run_sync`` (every model new), a sync that changes nothing, and
  syncs of one category in which one record changed (``-c <category>``);
- **load** (``catalog.synced.store.load_into`` into a fresh ``load_catalog(None)``):
  cold (the process's schema cache emptied: what a new process pays), a fresh catalog
  with the schemas cached (a second catalog in one process), a reload after a sync
  changed one row, and a check with nothing changed;
- **new process**: a spawned process loads the table once: its cold load and its
  resident memory growth (``VmRSS`` before and after, after a ``gc.collect``);
- **API**: ``GET /v1/models`` (three queries) and ``GET /v1/models/{id}`` through the
  ASGI app (``create_app`` + ``httpx.ASGITransport``; httpx's own ~1 ms is in both
  columns), alternating request by request between a runtime on the synced database
  and one on an empty database (the hand-written catalog alone);
- **validation**: ``validate_submission`` (what ``POST /v1/videos`` runs) for a synced
  model, its input checked against the provider's schema, and for ``local``,
  alternating.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import multiprocessing
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
import sqlalchemy as sa

from benchmarks.common import Latencies, Section, fmt, ratio
from benchmarks.scratch import Scratch
from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.catalog.catalog import load_catalog
from reelgate.catalog.synced import store
from reelgate.catalog.synced.schema import fal_input_schema
from reelgate.catalog.synced.store import load_into
from reelgate.catalog.synced.sync import SyncReport, SyncSource, run_sync
from reelgate.catalog.validate import Submission, validate_submission
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.fal import FalEmulator
from reelgate.emulators.fal import emulator_of as fal_of
from reelgate.emulators.recorded import fal_records
from reelgate.emulators.wiring import emulated_settings, settings_for
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.db import create_engine
from reelgate.store.schema import synced_models

__all__ = ["CatalogFigures", "CatalogLoad", "catalog_section", "run_catalog"]

KEY = "rg_bench_key_0123456789abcdefghijklmnopqrstu"
SYNCED_MODEL = "fal:wan/v2.6/text-to-video"
"""A recorded, priced, mapped fal model: the synced side of the validation and by-id rows."""
PROMPT = "a red fox running through snow, cinematic, golden hour"
QUERIES = (
    ("?limit=100", "/v1/models?limit=100", "/v1/models?limit=100"),
    ("?search=kling", "/v1/models?search=kling", "/v1/models?search=kling"),
    (
        "?source=synced&capability=image_input&limit=500",
        "/v1/models?source=synced&capability=image_input&limit=500",
        "/v1/models?source=synced&capability=image_input&limit=500",
    ),
    ("/local", "/v1/models/local", "/v1/models/local"),
    ("/{id}", "/v1/models/local", f"/v1/models/{SYNCED_MODEL}"),
)
"""label, path on the builtin-only catalog, path on the synced one."""


@dataclass(frozen=True)
class CatalogLoad:
    models: int = 1_400
    """Synced fal models in all (the 50 recorded ones and copies)."""
    reloads: int = 2
    """Syncs with one record changed, each followed by a timed reload."""
    cached_loads: int = 3
    checks: int = 20
    """Looks with nothing changed."""
    requests: int = 50
    """Per API query and catalog."""
    validations: int = 400
    """Per model."""


@dataclass
class BackendCatalog:
    backend: str
    synced: int = 0
    distinct_hashes: int = 0
    first_sync: float = 0.0
    unchanged_sync: float = 0.0
    one_changed_sync: list[float] = field(default_factory=list)
    """Syncs of the changed record's category alone (``-c <category>``)."""
    cold_load: list[float] = field(default_factory=list)
    cached_load: list[float] = field(default_factory=list)
    reload_one: list[float] = field(default_factory=list)
    check: list[float] = field(default_factory=list)
    process_load: float | None = None
    """The cold load in a new process (seconds)."""
    rss_growth_mib: float | None = None
    api: dict[str, tuple[Latencies, Latencies]] = field(default_factory=dict)
    """query -> (builtin-only catalog, synced catalog)."""
    validate_local: Latencies = field(default_factory=Latencies)
    validate_synced: Latencies = field(default_factory=Latencies)

    @staticmethod
    def median_ms(samples: list[float]) -> float | None:
        return statistics.median(samples) * 1000 if samples else None

    @property
    def reload_over_cold(self) -> float | None:
        return ratio(self.median_ms(self.reload_one), self.median_ms(self.cold_load))

    def api_ratio(self, query: str, q: float = 50) -> float | None:
        pair = self.api.get(query)
        return ratio(pair[1].pct_ms(q), pair[0].pct_ms(q)) if pair else None

    @property
    def validate_ratio(self) -> float | None:
        return ratio(self.validate_synced.pct_ms(50), self.validate_local.pct_ms(50))


@dataclass
class CatalogFigures:
    load: CatalogLoad
    backends: dict[str, BackendCatalog] = field(default_factory=dict)


# -- the models ------------------------------------------------------------------------


def _node(document: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = document
    for part in pointer.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    assert isinstance(node, dict)
    return node


def copy_record(record: dict[str, Any], old_id: str, new_id: str, mark: str) -> dict[str, Any]:
    """``record`` served as ``new_id``, its input's root described by ``mark`` (a schema
    hash of its own: ``InputSchema.hash`` covers the input's root)."""
    out = copy.deepcopy(record)
    out["endpoint_id"] = new_id
    doc = out["openapi"]
    doc["paths"] = {
        (f"/{new_id}" if path == f"/{old_id}" else path): item
        for path, item in doc["paths"].items()
    }
    root = _node(doc, fal_input_schema(doc, new_id).pointer)
    root["description"] = f"{root.get('description') or ''} [{mark}]".strip()
    return out


def serve_models(fal: FalEmulator, total: int) -> list[str]:
    """Make the emulator list ``total`` models (the recorded ones first); the copies' ids."""
    originals = sorted(fal_records().items())
    copies: list[str] = []
    i = 0
    while len(fal.catalog) < total:
        old_id, record = originals[i % len(originals)]
        new_id = f"bench-owner-{i}/{old_id.removeprefix('fal-ai/')}"
        fal.set_record(new_id, copy_record(record, old_id, new_id, f"bench copy {i}"))
        copies.append(new_id)
        i += 1
    return copies


# -- a new process: cold load and resident memory ---------------------------------------


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _child(database_url: str, conn: Connection) -> None:
    conn.send(asyncio.run(_child_async(database_url)))
    conn.close()


async def _child_async(database_url: str) -> tuple[float, int | None, int]:
    db = create_engine(database_url)
    try:
        catalog = load_catalog(None)
        async with db.connect() as c:  # the connection pool warm, as in a running process
            await c.execute(sa.select(1))
        gc.collect()
        before = _rss_bytes()
        started = time.perf_counter()
        await load_into(catalog, db)
        seconds = time.perf_counter() - started
        gc.collect()
        after = _rss_bytes()
        synced = sum(1 for spec in catalog if spec.synced is not None)
    finally:
        await db.dispose()
    growth = after - before if after is not None and before is not None else None
    return seconds, growth, synced


async def _in_new_process(database_url: str) -> tuple[float, int | None, int]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(database_url, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not await asyncio.to_thread(parent.poll, 120):
            raise RuntimeError("the catalog load process did not answer in 120 s")
        result: tuple[float, int | None, int] = parent.recv()
    finally:
        await asyncio.to_thread(proc.join, 30)
        if proc.is_alive():
            proc.kill()
        parent.close()
    return result


# -- one backend ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _runtime(
    scratch: Scratch, backend: str, server: EmulatorServer
) -> AsyncIterator[Runtime]:
    db_url = await scratch.database(backend)
    base = scratch.settings(db_url, f"catalog-{backend}", dev_api_key=KEY)
    rt = await build_runtime(
        emulated_settings(base, {"fal": server}),
        public_url="http://127.0.0.1",
        listen=False,
        emulated=frozenset({"fal"}),
    )
    try:
        await ensure_dev_account(rt)
        yield rt
    finally:
        await rt.aclose()


def _client(rt: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )


async def _timed_get(client: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    answer = await client.get(path)
    seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    return seconds


async def _api(out: BackendCatalog, builtin: Runtime, synced: Runtime, load: CatalogLoad) -> None:
    out.api = {label: (Latencies(), Latencies()) for label, _, _ in QUERIES}
    async with _client(builtin) as plain, _client(synced) as big:
        for _, plain_path, synced_path in QUERIES:  # warm up (validators, caches)
            for _ in range(3):
                await _timed_get(plain, plain_path)
                await _timed_get(big, synced_path)
        for i in range(load.requests):
            for label, plain_path, synced_path in QUERIES:
                sides = [(0, plain, plain_path), (1, big, synced_path)]
                for side, client, path in sides if i % 2 == 0 else reversed(sides):
                    out.api[label][side].add(await _timed_get(client, path))


def _validations(out: BackendCatalog, rt: Runtime, load: CatalogLoad) -> None:
    spec = rt.catalog.get(SYNCED_MODEL)
    subs = {
        "local": Submission(
            model="local", prompt=PROMPT, duration_seconds=4, resolution="720p", aspect_ratio="16:9"
        ),
        "synced": Submission(
            model=SYNCED_MODEL,
            prompt=PROMPT,
            duration_seconds=spec.default_duration,
            resolution=spec.default_resolution,
            aspect_ratio=spec.default_aspect_ratio,
        ),
    }
    route_of = rt.providers.route_of
    for sub in subs.values():  # warm up (the schema's validator is built on first use)
        for _ in range(5):
            validate_submission(rt.catalog, sub, route_of=route_of)
    for _ in range(load.validations):
        for name, sub in subs.items():
            started = time.perf_counter()
            validate_submission(rt.catalog, sub, route_of=route_of)
            seconds = time.perf_counter() - started
            (out.validate_local if name == "local" else out.validate_synced).add(seconds)


async def _timed_load(catalog: Any, rt: Runtime, *, expect: bool) -> float:
    started = time.perf_counter()
    changed = await load_into(catalog, rt.db)
    seconds = time.perf_counter() - started
    if changed is not expect:
        raise RuntimeError(f"load_into answered {changed}, expected {expect}")
    return seconds


async def _backend(
    scratch: Scratch,
    backend: str,
    server: EmulatorServer,
    source: SyncSource,
    copies: list[str],
    load: CatalogLoad,
) -> BackendCatalog:
    out = BackendCatalog(backend)
    fal = fal_of(server)
    async with (
        _runtime(scratch, backend, server) as rt,
        _runtime(scratch, backend, server) as plain,
    ):
        prices = rt.catalog.synced_settings.prices

        async def sync(**kwargs: Any) -> tuple[float, SyncReport]:
            started = time.perf_counter()
            report = await run_sync(rt.db, source, providers=("fal",), prices=prices, **kwargs)
            return time.perf_counter() - started, report

        out.first_sync, report = await sync()
        if report.errors or len(report.new) != load.models:
            raise RuntimeError(f"first sync: {len(report.new)} new, errors {report.errors}")
        out.unchanged_sync, report = await sync()
        if report.new or report.changed or report.unchanged != load.models:
            raise RuntimeError(f"a sync with nothing changed: {report.lines()[0]}")
        async with rt.db.connect() as conn:
            query = sa.select(sa.func.count(sa.distinct(synced_models.c.schema_hash)))
            out.distinct_hashes = int((await conn.execute(query)).scalar_one())

        store._SCHEMAS.clear()  # what a new process has: no schema read yet
        catalog = load_catalog(None)
        out.cold_load.append(await _timed_load(catalog, rt, expect=True))
        out.synced = sum(1 for spec in catalog if spec.synced is not None)
        for _ in range(load.cached_loads):
            out.cached_load.append(await _timed_load(load_catalog(None), rt, expect=True))

        changing = copies[len(copies) // 2]
        original = fal.catalog[changing]
        for r in range(load.reloads):
            # a description of its own each round: a new schema hash, one row rewritten
            fal.set_record(changing, copy_record(original, changing, changing, f"round {r}"))
            seconds, report = await sync(categories=(original["category"],))
            if len(report.changed) != 1 or report.gone or report.new:
                raise RuntimeError(f"one record changed: {report.lines()[0]}")
            out.one_changed_sync.append(seconds)
            out.reload_one.append(await _timed_load(catalog, rt, expect=True))
        for _ in range(load.checks):
            out.check.append(await _timed_load(catalog, rt, expect=False))

        process_load, growth, synced = await _in_new_process(str(rt.settings.database_url))
        if synced != load.models:
            raise RuntimeError(f"the new process loaded {synced} synced models")
        out.process_load = process_load
        out.rss_growth_mib = growth / 2**20 if growth is not None else None

        await load_into(rt.catalog, rt.db)
        # as `reelgate api` does once its catalog is built (runtime.freeze_startup_heap):
        # a full collection then does not walk the synced models on every request
        gc.collect()
        gc.freeze()
        try:
            await _api(out, plain, rt, load)
            _validations(out, rt, load)
        finally:
            gc.unfreeze()
    return out


async def run_catalog(scratch: Scratch, backends: list[str], load: CatalogLoad) -> CatalogFigures:
    figures = CatalogFigures(load)
    config = EmulatorConfig(
        api_key="emulator-fal", job_seconds=1.0, video_dir=scratch.path("fal-videos")
    )
    with run_emulator("fal", config) as server:
        copies = serve_models(fal_of(server), load.models)
        source = SyncSource(
            fal_platform_url=str(
                settings_for("fal", server.url, "emulator-fal")["fal_platform_url"]
            ),
            fal_api_key=None,  # fal's model list needs no key
            replicate_base_url="http://127.0.0.1:9/v1",  # not asked: providers=("fal",)
            replicate_token=None,
        )
        for backend in backends:
            figures.backends[backend] = await _backend(
                scratch, backend, server, source, copies, load
            )
    return figures


# -- the table --------------------------------------------------------------------------


def catalog_section(figures: CatalogFigures) -> Section:
    names = list(figures.backends)
    load = figures.load
    n = load.models
    section = Section(
        f"Synced catalog: {n:,} fal models (sync, load, GET /v1/models, validation)",
        ["figure", *names],
    )

    def row(label: str, value: Any) -> None:
        section.row(label, *(value(figures.backends[b]) for b in names))

    med = BackendCatalog.median_ms
    row(f"sync: first, {n:,} new (ms)", lambda f: fmt(f.first_sync * 1000, 0))
    row("sync: nothing changed (ms)", lambda f: fmt(f.unchanged_sync * 1000, 0))
    row("sync: one category, 1 changed, median (ms)", lambda f: fmt(med(f.one_changed_sync), 0))
    row("load_into: cold, no schema cached (ms)", lambda f: fmt(med(f.cold_load), 0))
    row("  per model (ms)", lambda f: fmt(ratio(med(f.cold_load), f.synced), 2))
    row("load_into: new catalog, schemas cached (ms)", lambda f: fmt(med(f.cached_load), 1))
    row("load_into: after 1 row changed (ms)", lambda f: fmt(med(f.reload_one), 1))
    row("  / cold", lambda f: fmt(f.reload_over_cold, 3))
    row("load_into: nothing changed (ms)", lambda f: fmt(med(f.check), 2))
    row(
        "new process: cold load_into (ms)",
        lambda f: fmt(f.process_load * 1000 if f.process_load is not None else None, 0),
    )
    row("new process: RSS growth (MiB)", lambda f: fmt(f.rss_growth_mib, 1))
    row(
        "  per model (KiB)",
        lambda f: fmt(f.rss_growth_mib * 1024 / n if f.rss_growth_mib is not None else None, 1),
    )
    for label, _, _ in QUERIES:
        section.row(f"GET /v1/models{label}", *("" for _ in names))
        row("  builtin only, p50 / p95 (ms)", lambda f, q=label: _pair(f, q, 0))
        row(f"  with {n:,} synced, p50 / p95 (ms)", lambda f, q=label: _pair(f, q, 1))
        row("  synced / builtin only, p50", lambda f, q=label: fmt(f.api_ratio(q)))
    row(
        "validate_submission local p50/p95 (ms)",
        lambda f: f"{fmt(f.validate_local.pct_ms(50), 3)} / {fmt(f.validate_local.pct_ms(95), 3)}",
    )
    row(
        "validate_submission synced p50/p95 (ms)",
        lambda f: (
            f"{fmt(f.validate_synced.pct_ms(50), 3)} / {fmt(f.validate_synced.pct_ms(95), 3)}"
        ),
    )
    row("  synced / local, p50", lambda f: fmt(f.validate_ratio))
    hashes = ", ".join(f"{b} {f.distinct_hashes:,}" for b, f in figures.backends.items())
    section.notes.append(
        f"the fal emulator lists {n:,} models (50 recorded + copies; distinct schema hashes "
        f"stored: {hashes}); syncs fetch them over HTTP, pages of 100, both categories"
    )
    section.notes.append(
        f"medians of {load.cached_loads} cached loads, {load.reloads} changes, "
        f"{load.checks} looks; API: {load.requests} requests per query and catalog, "
        f"alternating, through httpx.ASGITransport; /{{id}} is {SYNCED_MODEL} with "
        "synced (builtin only: /local); validation: the same model"
    )
    return section


def _pair(f: BackendCatalog, query: str, side: int) -> str:
    pair = f.api.get(query)
    if pair is None:
        return "-"
    return f"{fmt(pair[side].pct_ms(50))} / {fmt(pair[side].pct_ms(95))}"
