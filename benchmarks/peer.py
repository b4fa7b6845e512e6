"""``make bench-peer``: reelgate next to a peer gateway, in front of one upstream.

Four servers, each its own process on loopback, in front of the same OpenAI Videos
emulator (``emulators/sora.py``, 1 s renders): a bare Starlette app with one 202
endpoint (the floor of the uvicorn stack), the LiteLLM proxy in its lightest
configuration (a master key, no database; its own venv, ``.venv-peer``, never a
dependency of reelgate), and reelgate's API (``reelgate api``: the submit alone, no
worker) on SQLite, and on PostgreSQL when ``REELGATE_TEST_DATABASE_URL`` (or
``REELGATE_BENCH_DATABASE_URL``) names one.

Rounds are interleaved (every server once per round, in a rotating order), so a
busy machine slows all of them alike; read the ratios. Per server: ``POST
/v1/videos`` at c=1 (p50, p99, requests/s, server CPU per request from
``/proc/<pid>/stat``, the whole process tree) and at c=64, ``GET /v1/videos/{id}``
at c=64, and RSS at the end.

    python -m benchmarks.peer [--rounds 3] [--posts 200] [--burst 640]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.common import Latencies, fmt, ratio, render_table
from benchmarks.scratch import postgres_admin_url
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
PEER_LITELLM = ROOT / ".venv-peer" / "bin" / "litellm"
KEY = "rg_bench_peer_key_0123456789abcdefghij"
UPSTREAM_KEY = "sk-bench-peer-upstream"
PEER_KEY = "sk-bench-peer-litellm-master-0123456789"
TICKS = os.sysconf("SC_CLK_TCK")

BARE_APP = """
import itertools
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
_ids = itertools.count()
async def create(request):
    await request.body()
    return JSONResponse({"id": f"video_{next(_ids)}", "status": "queued"}, status_code=202)
async def get(request):
    return JSONResponse({"id": request.path_params["id"], "status": "queued"})
app = Starlette(routes=[Route("/v1/videos", create, methods=["POST"]),
                        Route("/v1/videos/{id}", get)])
"""


@dataclass
class Figures:
    post_c1: Latencies = field(default_factory=Latencies)
    post_c1_seconds: float = 0.0
    post_c1_cpu: float = 0.0
    post_cn: Latencies = field(default_factory=Latencies)
    post_cn_seconds: float = 0.0
    get_cn: Latencies = field(default_factory=Latencies)
    get_cn_seconds: float = 0.0
    rss_mib: float = 0.0
    errors: int = 0
    wrk_c1: list[WrkRun] = field(default_factory=list)
    wrk_cn: list[WrkRun] = field(default_factory=list)
    wrk_get: list[WrkRun] = field(default_factory=list)

    def from_wrk(self) -> None:
        """Fold the wrk runs into the figures the table prints (percentiles: the median
        of the rounds' own percentiles)."""

        def med(values: list[float]) -> float:
            return sorted(values)[len(values) // 2] if values else float("nan")

        def fold(runs: list[WrkRun], lat: Latencies) -> float:
            lat.samples = [med([r.p50 for r in runs])] * 50 + [med([r.p99 for r in runs])]
            return float(sum(r.seconds for r in runs))

        if self.wrk_c1:
            self.post_c1_seconds = fold(self.wrk_c1, self.post_c1)
            self._c1_requests = sum(r.requests for r in self.wrk_c1)
        if self.wrk_cn:
            self.post_cn_seconds = fold(self.wrk_cn, self.post_cn)
            self._cn_requests = sum(r.requests for r in self.wrk_cn)
        if self.wrk_get:
            self.get_cn_seconds = fold(self.wrk_get, self.get_cn)
            self._get_requests = sum(r.requests for r in self.wrk_get)

    _c1_requests: int | None = None
    _cn_requests: int | None = None
    _get_requests: int | None = None

    @property
    def rps_c1(self) -> float:
        return _per_second(self._c1_requests, self.post_c1, self.post_c1_seconds)

    @property
    def rps_cn(self) -> float:
        return _per_second(self._cn_requests, self.post_cn, self.post_cn_seconds)

    @property
    def get_rps(self) -> float:
        return _per_second(self._get_requests, self.get_cn, self.get_cn_seconds)

    @property
    def cpu_ms_per_post(self) -> float:
        n = self._c1_requests if self._c1_requests is not None else len(self.post_c1)
        return self.post_c1_cpu / n * 1000 if n else float("nan")


def _per_second(counted: int | None, timed: Latencies, seconds: float) -> float:
    """Requests per second: wrk's count when wrk ran the phase, else the timed ones."""
    n = counted if counted is not None else len(timed)
    return n / seconds if seconds else float("nan")


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    body: dict[str, object]
    headers: dict[str, str]
    figures: Figures = field(default_factory=Figures)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _cpu_seconds(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _rss_mib(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


async def _wait_up(url: str, proc: subprocess.Popen[bytes], name: str, path: str) -> None:
    deadline = time.monotonic() + 180
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {_log_tail(proc)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url + path)).status_code < 500:
                    return
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{name} did not start in 180 s")


_LOGS: dict[int, Path] = {}


def _log_tail(proc: subprocess.Popen[bytes]) -> str:
    path = _LOGS.get(proc.pid)
    return path.read_text(errors="replace")[-2000:] if path and path.exists() else ""


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
    )
    _LOGS[proc.pid] = log
    return proc


def _reelgate_env(
    work: Path, name: str, upstream: EmulatorServer, db: str | None
) -> dict[str, str]:
    data = work / name
    env = {
        "REELGATE_DATA_DIR": str(data),
        "REELGATE_DEV_API_KEY": KEY,
        "REELGATE_OPENAI_API_KEY": UPSTREAM_KEY,
        "REELGATE_OPENAI_BASE_URL": f"{upstream.url}/v1",
        "REELGATE_OPENAI_API_STYLE": "compatible",
        "REELGATE_RATE_LIMIT": "",
        "REELGATE_MAX_JOBS_IN_FLIGHT": "1000000",
        "REELGATE_MAX_SECONDS_IN_FLIGHT": "100000000",
        "REELGATE_DEV_CREDITS": "1000000000",
        "REELGATE_FETCH_ALLOW_PRIVATE": '["127.0.0.1/32"]',
        "REELGATE_FETCH_ALLOW_PORTS": f"[{upstream.port}]",
    }
    if db:
        env["REELGATE_DATABASE_URL"] = db
    return env


def _reelgate(work: Path, name: str, upstream: EmulatorServer, db: str | None) -> Server:
    env = _reelgate_env(work, name, upstream, db)
    rg = str(ROOT / ".venv" / "bin" / "reelgate")
    subprocess.run(
        [rg, "db", "upgrade"],
        env={**os.environ, **env},
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    port = _free_port()
    proc = _start([rg, "api", "--port", str(port)], env, work / f"{name}.log")
    return Server(
        name,
        f"http://127.0.0.1:{port}",
        proc,
        {"model": "sora-2", "prompt": "a red fox running through snow", "duration_seconds": 4},
        {"Authorization": f"Bearer {KEY}"},
    )


async def _allow_sora(server: Server, work: Path, upstream: EmulatorServer, db: str | None) -> None:
    """sora-2 is on an allow list: the dev account (made by the API at start) gets it."""
    env = _reelgate_env(work, server.name, upstream, db)
    rg = str(ROOT / ".venv" / "bin" / "reelgate")
    subprocess.run(
        [rg, "accounts", "flags", "acct_dev", "--allow-model", "sora-2"],
        env={**os.environ, **env},
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def _litellm(work: Path, upstream: EmulatorServer) -> Server:
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: sora-2\n"
        "    litellm_params:\n"
        "      model: openai/sora-2\n"
        f"      api_base: {upstream.url}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "general_settings:\n"  # it refuses to start without a key (checked in memory)
        f"  master_key: {PEER_KEY}\n"
    )
    port = _free_port()
    env = {"LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "true", "LITELLM_TELEMETRY": "False"}
    proc = _start(
        [str(PEER_LITELLM), "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
        env,
        work / "litellm.log",
    )
    return Server(
        "LiteLLM",
        f"http://127.0.0.1:{port}",
        proc,
        {"model": "sora-2", "prompt": "a red fox running through snow", "seconds": "4"},
        {"Authorization": f"Bearer {PEER_KEY}"},
    )


def _bare(work: Path) -> Server:
    (work / "bare_app.py").write_text(BARE_APP)
    port = _free_port()
    proc = _start(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--app-dir",
            str(work),
        ],
        {},
        work / "bare.log",
    )
    return Server("bare Starlette", f"http://127.0.0.1:{port}", proc, {"x": 1}, {})


async def _posts(
    server: Server, n: int, concurrency: int, into: Latencies
) -> tuple[float, list[str]]:
    ids: list[str] = []
    queue = list(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=60, limits=limits
    ) as client:

        async def one() -> None:
            while queue:
                queue.pop()
                start = time.perf_counter()
                try:
                    resp = await client.post("/v1/videos", json=server.body)
                except httpx.HTTPError:
                    server.figures.errors += 1  # a dropped connection: counted, not timed
                    continue
                into.add(time.perf_counter() - start)
                if resp.status_code >= 300:
                    server.figures.errors += 1
                else:
                    with contextlib.suppress(ValueError, KeyError):
                        ids.append(resp.json()["id"])

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.perf_counter() - started, ids


async def _gets(server: Server, ids: list[str], n: int, concurrency: int) -> float:
    if not ids:
        return 0.0
    todo = [ids[i % len(ids)] for i in range(n)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=60, limits=limits
    ) as client:

        async def one() -> None:
            while todo:
                video = todo.pop()
                start = time.perf_counter()
                try:
                    resp = await client.get(f"/v1/videos/{video}")
                except httpx.HTTPError:
                    server.figures.errors += 1
                    continue
                server.figures.get_cn.add(time.perf_counter() - start)
                if resp.status_code >= 300:
                    server.figures.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.perf_counter() - started


def _wrk_seconds(text: str) -> float:
    """wrk's "812.00us", "1.23ms", "2.01s", "1.50m" as seconds."""
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("m", 60.0), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


@dataclass
class WrkRun:
    requests: int
    seconds: float
    p50: float
    p99: float
    errors: int


def _wrk(server: Server, path: str, body: str | None, connections: int, seconds: int) -> WrkRun:
    """One wrk run (C, several threads: the load generator is not the bottleneck)."""
    lines = [f'wrk.method = "{"POST" if body is not None else "GET"}"']
    if body is not None:
        lines.append(f"wrk.body = [[{body}]]")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in server.headers.items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    threads = max(1, min(2, connections))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            script.name,
            server.url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    pct: dict[str, float] = {}
    requests, errors = 0, 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            pct[parts[0]] = _wrk_seconds(parts[1])
        elif "requests in" in line:
            requests = int(parts[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            errors += int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            errors += sum(int(x.strip(",")) for x in parts[3::2])
    return WrkRun(
        requests, float(seconds), pct.get("50%", float("nan")), pct.get("99%", float("nan")), errors
    )


async def _round_wrk(server: Server, seconds: int) -> None:
    f = server.figures
    body = json.dumps(server.body)
    cpu = _cpu_seconds(server.proc.pid)
    one = await asyncio.to_thread(_wrk, server, "/v1/videos", body, 1, seconds)
    f.post_c1_cpu += _cpu_seconds(server.proc.pid) - cpu
    f.wrk_c1.append(one)
    many = await asyncio.to_thread(_wrk, server, "/v1/videos", body, 64, seconds)
    f.wrk_cn.append(many)
    _, ids = await _posts(server, 1, 1, Latencies())
    if ids:
        f.wrk_get.append(
            await asyncio.to_thread(_wrk, server, f"/v1/videos/{ids[0]}", None, 64, seconds)
        )
    f.errors += one.errors + many.errors


async def _round(server: Server, posts: int, burst: int) -> None:
    f = server.figures
    cpu = _cpu_seconds(server.proc.pid)
    seconds, ids = await _posts(server, posts, 1, f.post_c1)
    f.post_c1_cpu += _cpu_seconds(server.proc.pid) - cpu
    f.post_c1_seconds += seconds
    seconds, more = await _posts(server, burst, 64, f.post_cn)
    f.post_cn_seconds += seconds
    f.get_cn_seconds += await _gets(server, ids + more, burst, 64)


@contextlib.contextmanager
def _stopping(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
        for s in servers:
            try:
                s.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                s.proc.kill()


def _table(servers: list[Server], peer: Server) -> str:
    headers = ["", *(s.name for s in servers)]
    rows: list[list[str]] = []

    def row(name: str, value: object) -> None:
        rows.append([name, *(value(s.figures) for s in servers)])  # type: ignore[operator]

    row(
        "POST c=1 p50 / p99 ms",
        lambda f: f"{fmt(f.post_c1.pct_ms(50))} / {fmt(f.post_c1.pct_ms(99))}",
    )
    row("POST c=1 req/s", lambda f: fmt(f.rps_c1, 0))
    row("server CPU per POST, c=1 (ms)", lambda f: fmt(f.cpu_ms_per_post))
    row(
        "POST c=64 p50 / p99 ms",
        lambda f: f"{fmt(f.post_cn.pct_ms(50))} / {fmt(f.post_cn.pct_ms(99))}",
    )
    row("POST c=64 req/s", lambda f: fmt(f.rps_cn, 0))
    row("GET c=64 req/s", lambda f: fmt(f.get_rps, 0))
    row("RSS after (MiB)", lambda f: fmt(f.rss_mib, 0))
    row("errors", lambda f: str(f.errors))
    p = peer.figures
    row("POST c=64 req/s / LiteLLM's", lambda f: fmt(ratio(f.rps_cn, p.rps_cn)))
    row(
        "POST c=64 p99 / LiteLLM's",
        lambda f: fmt(ratio(f.post_cn.pct_ms(99), p.post_cn.pct_ms(99))),
    )
    row("CPU per POST / LiteLLM's", lambda f: fmt(ratio(f.cpu_ms_per_post, p.cpu_ms_per_post)))
    return render_table(headers, rows)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=200, help="POSTs at c=1 per round")
    parser.add_argument("--burst", type=int, default=640, help="POSTs (and GETs) at c=64")
    parser.add_argument(
        "--client",
        choices=("wrk", "httpx"),
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator: wrk (C, Debian's package; the default when installed) or httpx",
    )
    parser.add_argument("--seconds", type=int, default=5, help="per wrk phase")
    args = parser.parse_args(argv)
    if not PEER_LITELLM.exists():
        print(f"no LiteLLM at {PEER_LITELLM}: run make bench-peer (it installs it)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="reelgate-peer-"))
    pg = postgres_admin_url()
    servers: list[Server] = []
    config = EmulatorConfig(api_key=UPSTREAM_KEY, job_seconds=1.0, video_dir=work / "videos")
    try:
        with run_emulator("sora", config) as upstream, _stopping(servers):
            servers.append(_bare(work))
            servers.append(_litellm(work, upstream))
            servers.append(_reelgate(work, "reelgate SQLite", upstream, None))
            if pg:
                db = await _pg_database(pg)
                servers.append(_reelgate(work, "reelgate PostgreSQL", upstream, db))
            for s in servers:
                await _wait_up(s.url, s.proc, s.name, "/v1/models" if "reelgate" in s.name else "/")
                if "reelgate" in s.name:
                    await _allow_sora(s, work, upstream, _db_of(s, work, pg))
            # warm-up: every server answers a few of each before anything is measured
            for s in servers:
                await _posts(s, 20, 4, Latencies())
            for s in servers:
                s.figures = Figures()
            load = os.getloadavg()
            for r in range(args.rounds):
                order = servers[r % len(servers) :] + servers[: r % len(servers)]
                for s in order:
                    if args.client == "wrk":
                        await _round_wrk(s, args.seconds)
                    else:
                        await _round(s, args.posts, args.burst)
            for s in servers:
                s.figures.rss_mib = _rss_mib(s.proc.pid)
                s.figures.from_wrk()
            peer = next(s for s in servers if s.name == "LiteLLM")
            print(
                f"reelgate vs LiteLLM 1.108.7 in front of one OpenAI Videos emulator | "
                f"{os.cpu_count()} CPUs | load average at start {load[0]:.2f} {load[1]:.2f}, "
                f"at end {os.getloadavg()[0]:.2f} | {args.rounds} interleaved rounds, "
                + (
                    f"wrk {args.seconds} s per phase"
                    if args.client == "wrk"
                    else f"httpx: {args.posts} POSTs at c=1 and {args.burst} at c=64"
                )
                + " | "
                + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            )
            print()
            print(_table(servers, peer))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if pg:
            await _drop_pg(pg)
    return 0


_PG_NAME = f"rg_bench_peer_{os.getpid()}"


def _db_of(server: Server, work: Path, pg: str | None) -> str | None:
    if "PostgreSQL" in server.name and pg:
        return _pg_url(pg)
    return None


def _pg_url(admin: str) -> str:
    base = admin.rsplit("/", 1)[0]
    return f"{base}/{_PG_NAME}"


async def _pg_database(admin: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{_PG_NAME}"')
    finally:
        await conn.close()
    return _pg_url(admin)


async def _drop_pg(admin: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{_PG_NAME}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(asyncio.run(main(sys.argv[1:])))
