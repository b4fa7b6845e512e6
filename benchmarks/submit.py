"""The submit path: POST /v1/videos and GET /v1/videos/{id} through a real server.

Each backend gets its own uvicorn server in a child process (the API alone,
as ``reelgate api`` runs it: no worker, so jobs stay queued), listening on a
loopback port. The load generator is ``LeanClient`` (``benchmarks/loadgen.py``) in this
process, so server and client do not share a GIL, and cheap enough that 16 clients
do not queue in it. Backends are measured in alternating rounds,
which is what makes the PostgreSQL / SQLite ratios fair on a noisy machine.
Latency is what the client sees, its own (small) overhead included.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.common import Latencies, Section, fmt, ratio
from benchmarks.loadgen import LeanClient
from benchmarks.scratch import Scratch
from benchmarks.seed import drain, seed_table
from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.config import Settings
from reelgate.runtime import build_runtime, freeze_startup_heap
from reelgate.store.db import create_engine

__all__ = ["SubmitFigures", "run_submit"]

BODY = {
    "model": "local",
    "prompt": "a red fox running through snow, cinematic, golden hour",
    "duration_seconds": 4,
    "resolution": "720p",
    "aspect_ratio": "16:9",
}
KEY = "rg_bench_key_0123456789abcdefghijklmnopqrstu"


@dataclass(frozen=True)
class Load:
    rounds: int = 3
    serial_posts: int = 60
    """POSTs per round at concurrency 1."""
    parallel_posts: int = 160
    """POSTs per round at concurrency 16."""
    gets: int = 60
    """GETs per round at concurrency 1, and again at ``concurrency``."""
    concurrency: int = 16
    warmup: int = 30
    history: int = 10_000
    """Finished jobs in the account on the second server of each backend."""


@dataclass
class BackendFigures:
    post_c1: Latencies = field(default_factory=Latencies)
    post_c1_history: Latencies = field(default_factory=Latencies)
    """POSTs at c=1 to an account with ``Load.history`` finished jobs."""
    post_cn: Latencies = field(default_factory=Latencies)
    get_c1: Latencies = field(default_factory=Latencies)
    get_cn: Latencies = field(default_factory=Latencies)
    c1_seconds: float = 0.0
    cn_seconds: float = 0.0
    cpu_c1: float | None = 0.0
    """CPU seconds the server process spent on the c=1 POSTs (None: not measurable)."""
    cpu_cn: float | None = 0.0
    cpu_get: float | None = 0.0

    def cpu_ms_per(self, attr: str) -> float | None:
        cpu: float | None = getattr(self, f"cpu_{attr}")
        n = len(getattr(self, {"c1": "post_c1", "cn": "post_cn", "get": "get_c1"}[attr]))
        return cpu / n * 1000 if cpu is not None and n else None

    @property
    def tail_ratio(self) -> float | None:
        """p95 over p50 of the concurrent POSTs: how unevenly 16 clients are served."""
        return ratio(self.post_cn.pct_ms(95), self.post_cn.pct_ms(50))

    @property
    def history_ratio(self) -> float | None:
        """POST p50 with the account's history over POST p50 without (1.0 = flat)."""
        return ratio(self.post_c1_history.pct_ms(50), self.post_c1.pct_ms(50))

    @property
    def c1_rps(self) -> float:
        return len(self.post_c1) / self.c1_seconds if self.c1_seconds else float("nan")

    @property
    def cn_rps(self) -> float:
        return len(self.post_cn) / self.cn_seconds if self.cn_seconds else float("nan")


@dataclass
class SubmitFigures:
    load: Load
    backends: dict[str, BackendFigures] = field(default_factory=dict)

    def get(self, backend: str) -> BackendFigures | None:
        return self.backends.get(backend)


# -- the server, in a child process ----------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (it re-raises SIGTERM after shutdown,
    which would kill the child before the runtime is closed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _serve(settings: Settings, ready: Connection) -> None:
    asyncio.run(_serve_async(settings, ready))


async def _serve_async(settings: Settings, ready: Connection) -> None:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
    # the listening socket says it is TCP, and without it Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    rt = await build_runtime(settings, public_url=f"http://127.0.0.1:{port}", listen=False)
    try:
        await ensure_dev_account(rt)
        config = uvicorn.Config(
            create_app(rt), log_level="warning", access_log=False, lifespan="off"
        )
        server = _Server(config)
        freeze_startup_heap()  # as `reelgate api` does

        def stop() -> None:
            server.should_exit = True

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop)
        loop.add_signal_handler(signal.SIGINT, stop)
        ready.send(port)
        await server.serve(sockets=[sock])
    finally:
        await rt.aclose()
        sock.close()


@dataclass
class _Running:
    backend: str
    process: BaseProcess
    url: str
    db: AsyncEngine
    """The server's database, for the untimed drain between batches."""
    client: LeanClient | None = None

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process so far (Linux /proc), else None."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def posts(self, n: int, concurrency: int) -> tuple[Latencies, float]:
        assert self.client is not None
        measured = await _posts(self.client, n, concurrency)
        await drain(self.db)
        return measured

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        await asyncio.to_thread(_stop, self.process)
        await self.db.dispose()


def _add_cpu(total: float | None, before: float | None, after: float | None) -> float | None:
    if total is None or before is None or after is None:
        return None
    return total + after - before


async def _start(scratch: Scratch, backend: str, history: int, load: Load) -> _Running:
    db_url = await scratch.database(backend)
    settings = scratch.settings(db_url, f"api-{backend}", dev_api_key=KEY)
    if history:
        rt = await build_runtime(settings, public_url="http://127.0.0.1", listen=False)
        try:
            await ensure_dev_account(rt)
            await seed_table(rt, "local", due=1, finished=history)
        finally:
            await rt.aclose()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_serve, args=(settings, child), name=f"bench-api-{backend}")
    process.start()
    child.close()
    ready = await asyncio.to_thread(parent.poll, 60)
    try:
        if not ready:
            raise RuntimeError(f"the {backend} API server did not start within 60 s")
        port = parent.recv()
    except (EOFError, RuntimeError) as exc:
        _stop(process)
        raise RuntimeError(f"the {backend} API server failed to start") from exc
    srv = _Running(backend, process, f"http://127.0.0.1:{port}", create_engine(db_url, pool_size=1))
    srv.client = LeanClient(srv.url, {"Authorization": f"Bearer {KEY}"})
    await _wait_healthy(srv.client)
    await srv.posts(load.warmup, load.concurrency)
    return srv


def _stop(process: BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
        process.join(15)
    if process.is_alive():
        process.kill()
        process.join(5)


# -- the load ---------------------------------------------------------------------------


async def _posts(client: LeanClient, n: int, concurrency: int) -> tuple[Latencies, float]:
    """``n`` POSTs from ``concurrency`` clients; returns latencies and wall seconds."""
    lat = Latencies()
    left = n
    post = client.prepare("POST", "/v1/videos", BODY)

    async def one_client() -> None:
        nonlocal left
        async with client.connection() as conn:
            while left > 0:
                left -= 1
                start = time.perf_counter()
                resp = await conn.send(post)
                lat.add(time.perf_counter() - start)
                if resp.status != 202:
                    raise RuntimeError(f"POST /v1/videos answered {resp.status}: {resp.body!r}")

    start = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return lat, time.perf_counter() - start


async def _gets(client: LeanClient, ids: list[str], n: int, concurrency: int) -> Latencies:
    lat = Latencies()
    left = n
    gets = [client.prepare("GET", f"/v1/videos/{i}") for i in ids]

    async def one_client() -> None:
        nonlocal left
        async with client.connection() as conn:
            while left > 0:
                left -= 1
                start = time.perf_counter()
                resp = await conn.send(gets[left % len(gets)])
                lat.add(time.perf_counter() - start)
                if resp.status != 200:
                    raise RuntimeError(f"GET /v1/videos/{{id}} answered {resp.status}")

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return lat


async def _wait_healthy(client: LeanClient) -> None:
    for _ in range(200):
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            if (await client.request("GET", "/healthz")).status == 200:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("the API server never answered /healthz")


async def _round(
    plain: dict[str, _Running], aged: dict[str, _Running], figures: SubmitFigures
) -> None:
    """One round: every batch once per backend, backends alternating."""
    load = figures.load
    for backend, srv in plain.items():
        f = figures.backends[backend]
        cpu = srv.cpu_seconds()
        lat, secs = await srv.posts(load.serial_posts, 1)
        f.cpu_c1 = _add_cpu(f.cpu_c1, cpu, srv.cpu_seconds())
        f.post_c1.extend(lat)
        f.c1_seconds += secs
        lat, _ = await aged[backend].posts(load.serial_posts, 1)
        f.post_c1_history.extend(lat)
    for backend, srv in plain.items():
        f = figures.backends[backend]
        cpu = srv.cpu_seconds()
        lat, secs = await srv.posts(load.parallel_posts, load.concurrency)
        f.cpu_cn = _add_cpu(f.cpu_cn, cpu, srv.cpu_seconds())
        f.post_cn.extend(lat)
        f.cn_seconds += secs
    for backend, srv in plain.items():
        f, client = figures.backends[backend], srv.client
        assert client is not None
        listing = await client.request("GET", "/v1/videos?limit=100")
        ids = [j["id"] for j in listing.json()["data"]]
        cpu = srv.cpu_seconds()
        f.get_c1.extend(await _gets(client, ids, load.gets, 1))
        f.cpu_get = _add_cpu(f.cpu_get, cpu, srv.cpu_seconds())
        f.get_cn.extend(await _gets(client, ids, load.gets, load.concurrency))


async def run_submit(scratch: Scratch, backends: list[str], load: Load) -> SubmitFigures:
    figures = SubmitFigures(load, {b: BackendFigures() for b in backends})
    plain: dict[str, _Running] = {}
    aged: dict[str, _Running] = {}
    try:
        for backend in backends:
            plain[backend] = await _start(scratch, backend, 0, load)
            aged[backend] = await _start(scratch, backend, load.history, load)
        for _ in range(load.rounds):
            await _round(plain, aged, figures)
    finally:
        for srv in [*plain.values(), *aged.values()]:
            await srv.close()
    return figures


_Figure = Callable[[BackendFigures], float | None]


def _percentile(attr: str, q: float) -> _Figure:
    def figure(f: BackendFigures) -> float:
        lat: Latencies = getattr(f, attr)
        return lat.pct_ms(q)

    return figure


def submit_section(figures: SubmitFigures) -> Section:
    load = figures.load
    c = load.concurrency
    section = Section(
        "1. Submit path (uvicorn on loopback, lean HTTP/1.1 client, API only)",
        ["figure", "sqlite", "postgresql", "pg/sqlite"],
    )
    lite, pg = figures.get("sqlite"), figures.get("postgresql")

    def add(name: str, value: _Figure) -> None:
        a = value(lite) if lite else None
        b = value(pg) if pg else None
        section.row(name, fmt(a), fmt(b), fmt(ratio(b, a)))

    for label, attr in (
        ("POST c=1", "post_c1"),
        (f"POST c={c}", "post_cn"),
        ("GET c=1", "get_c1"),
        (f"GET c={c}", "get_cn"),
    ):
        for q in (50, 95, 99):
            add(f"{label} p{q} (ms)", _percentile(attr, q))
    add(f"POST c={c} p95 / p50", lambda f: f.tail_ratio)
    done = f"{load.history // 1000}k" if load.history >= 1000 else str(load.history)
    add(f"POST c=1 p50, {done} done in account (ms)", _percentile("post_c1_history", 50))
    add(f"POST c=1 p50, {done} done / 0 done", lambda f: f.history_ratio)
    add("POST c=1 throughput (req/s)", lambda f: f.c1_rps)
    add(f"POST c={c} throughput (req/s)", lambda f: f.cn_rps)
    add("server CPU per POST c=1 (ms)", lambda f: f.cpu_ms_per("c1"))
    add(f"server CPU per POST c={c} (ms)", lambda f: f.cpu_ms_per("cn"))
    add("server CPU per GET c=1 (ms)", lambda f: f.cpu_ms_per("get"))
    n1 = load.rounds * load.serial_posts
    nn = load.rounds * load.parallel_posts
    ng = load.rounds * load.gets
    section.notes.append(
        "server CPU: the API process only (uvicorn, FastAPI, SQLAlchemy, and SQLite itself; "
        "not the PostgreSQL server's own processes)"
    )
    section.notes.append(
        f"{n1} POSTs at c=1, {nn} at c={c}, {ng} GETs at each concurrency per backend, "
        f"in {load.rounds} rounds alternating between backends; body: model local, 4 s 720p"
    )
    return section
