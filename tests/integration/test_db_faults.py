"""The database cut, refused and frozen under the API, by a real TCP proxy.

reelgate talks to PostgreSQL through ``tests.faultproxy.FaultProxy``, which
breaks the connection at a chosen point of a submit: as its one statement goes out,
after it committed but before its answer is read, or after the submit returned.
Whatever happens, an Idempotency-Key ends with exactly one job and one hold, the
client sees 202, 409 or 503 (never a 500), and its retries succeed once the
database is back and the key's lease has run out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import make_url

from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.config import Settings
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.schema import holds, idempotency_keys, jobs
from tests.checks import assert_ledger_exact
from tests.conftest import LOOPBACK_FETCH, TEST_KEY
from tests.faultproxy import FaultProxy
from tests.integration.conftest import api_client

pytestmark = pytest.mark.postgres

BODY = {
    "model": "local",
    "prompt": "through the storm",
    "duration_seconds": 1,
    "resolution": "360p",
}
LEASE_SECONDS = 2.0
DB_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def proxy(pg_url: str) -> Iterator[FaultProxy]:
    url = make_url(pg_url)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as p:
        yield p


def _through(pg_url: str, proxy: FaultProxy) -> str:
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


@pytest.fixture
async def frt(tmp_path: Path, pg_url: str, proxy: FaultProxy) -> AsyncIterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=_through(pg_url, proxy),
        storage_url=(tmp_path / "videos").as_uri(),
        dev_api_key=TEST_KEY,  # type: ignore[arg-type]
        database_timeout_seconds=DB_TIMEOUT_SECONDS,
        idempotency_lease_seconds=LEASE_SECONDS,
        **LOOPBACK_FETCH,  # type: ignore[arg-type]
    )
    rt = await build_runtime(settings, public_url="http://testserver", listen=False)
    await ensure_dev_account(rt)
    yield rt
    await rt.aclose()


@pytest.fixture
async def fclient(frt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(frt) as client:
        yield client


def _break(proxy: FaultProxy, fault: str) -> None:
    """Cause ``fault`` now and heal it a little later, from another thread."""
    if fault == "reset":
        proxy.reset()
        return
    if fault == "down":
        proxy.down()
        heal_after = 1.0
    else:
        proxy.freeze()
        heal_after = DB_TIMEOUT_SECONDS + 1.0
    threading.Timer(heal_after, proxy.restore).start()


def _arm_submit(monkeypatch: pytest.MonkeyPatch, point: str, trigger: Callable[[], None]) -> None:
    """Fire ``trigger`` once, at ``point`` of the submit's one call to PostgreSQL
    (``store.submit.postgres_submit``):

    - ``before_send``: the fault is there when the statement goes out. A reset or a
      refused connection fails it; a frozen one holds it past the statement timeout,
      and it may still reach the server once the proxy thaws, after the client was told
      503 (the Idempotency-Key's fence must then keep it from making a second job);
    - ``answer_lost``: the statement ran and committed, and the connection breaks before
      its answer is read: the client hears of an outage about work that was done;
    - ``after_commit``: the submit returned; the fault hits whatever comes next."""
    from reelgate.store.submit import postgres_submit as original

    state = {"armed": True}

    async def faulty(conn: Any, **kwargs: Any) -> Any:
        if not state["armed"]:
            return await original(conn, **kwargs)
        state["armed"] = False
        if point == "before_send":
            trigger()
            return await original(conn, **kwargs)
        result = await original(conn, **kwargs)
        trigger()
        if point == "answer_lost":
            raise asyncpg.exceptions.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation"
            )
        return result

    monkeypatch.setattr("reelgate.store.sql.postgres_submit", faulty)


async def _retry_until_accepted(
    client: httpx.AsyncClient, key: str, seen: list[int], *, within: float = 20.0
) -> httpx.Response:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        resp = await client.post("/v1/videos", json=BODY, headers={"Idempotency-Key": key})
        seen.append(resp.status_code)
        if resp.status_code == 202:
            return resp
        assert resp.status_code in (409, 503), resp.text
        if resp.status_code == 503:
            assert resp.json()["error"]["code"] == "database_unavailable"
            assert int(resp.headers["retry-after"]) >= 1
        await asyncio.sleep(0.3)
    raise AssertionError(f"key {key} never accepted: {seen}")


async def _one_job_per_key(rt: Runtime, key: str, job_id: str) -> None:
    async with rt.db.connect() as conn:
        n_jobs = (await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar_one()
        n_holds = (await conn.execute(sa.select(sa.func.count()).select_from(holds))).scalar_one()
        stored = (
            await conn.execute(
                sa.select(idempotency_keys.c.state, idempotency_keys.c.response_body).where(
                    idempotency_keys.c.key == key
                )
            )
        ).one()
    assert (n_jobs, n_holds) == (1, 1)
    assert stored.state == "done"
    assert stored.response_body["id"] == job_id


@pytest.mark.parametrize("fault", ["reset", "down", "freeze"])
@pytest.mark.parametrize("point", ["before_send", "answer_lost", "after_commit"])
async def test_a_database_fault_at_each_point_of_a_submit_leaves_one_job_per_key(
    frt: Runtime,
    fclient: httpx.AsyncClient,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    point: str,
) -> None:
    key = f"{point}-{fault}"

    def trigger() -> None:
        _break(proxy, fault)

    _arm_submit(monkeypatch, point, trigger)
    seen: list[int] = []
    first = await fclient.post("/v1/videos", json=BODY, headers={"Idempotency-Key": key})
    seen.append(first.status_code)
    assert first.status_code in (202, 503), first.text
    accepted = (
        first if first.status_code == 202 else await _retry_until_accepted(fclient, key, seen)
    )
    again = await _retry_until_accepted(fclient, key, seen)
    assert again.json()["id"] == accepted.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    proxy.restore()
    print(f"{point}/{fault}: {seen}")
    await _one_job_per_key(frt, key, accepted.json()["id"])


async def test_reads_answer_503_during_an_outage_and_recover(
    frt: Runtime, fclient: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    made = await fclient.post("/v1/videos", json=BODY)
    assert made.status_code == 202
    proxy.down()
    for path in ("/v1/videos", f"/v1/videos/{made.json()['id']}", "/v1/balance", "/v1/models"):
        resp = await fclient.get(path)
        if path == "/v1/models":
            assert resp.status_code in (200, 503)  # the catalog needs no database but auth does
            continue
        assert resp.status_code == 503, (path, resp.text)
        assert resp.json()["error"]["code"] == "database_unavailable"
        assert resp.headers["retry-after"] == "2"
    proxy.restore()
    assert (await fclient.get(f"/v1/videos/{made.json()['id']}")).status_code == 200


async def test_an_error_answer_keeps_the_connection_open(frt: Runtime, proxy: FaultProxy) -> None:
    """uvicorn drops a keep-alive connection after an exception escapes the app; a 503
    (or a 500) from reelgate is a complete answer, so the next request on the same
    connection is served."""
    config = uvicorn.Config(
        create_app(frt), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET /v1/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\r\n"
    ).encode()
    try:
        proxy.down()
        writer.write(request)
        first = await _read_response(reader)
        assert first[0] == 503
        proxy.restore()
        writer.write(request)
        second = await _read_response(reader)
        assert second[0] == 200
    finally:
        writer.close()
        server.should_exit = True
        await serving


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=20)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(h.split(":")[1]) for h in lines if h.lower().startswith("content-length"))
    return status, await reader.readexactly(length)


async def test_a_worker_rides_out_outages_and_finishes_every_job(
    frt: Runtime, fclient: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    from reelgate.engine.worker import Worker

    ids = []
    for i in range(6):
        made = await fclient.post("/v1/videos", json={**BODY, "prompt": f"storm {i}"})
        ids.append(made.json()["id"])
    # concurrency 1: the loop often has no free slot and goes straight to its idle wait
    wk = Worker.from_runtime(frt, concurrency=1, lease_seconds=3, idle_poll_seconds=0.05)
    running = asyncio.create_task(wk.run())
    await asyncio.sleep(0.5)
    # A flapping database: the outage starts and ends at every point of the loop.
    for i in range(40):
        proxy.down() if i % 2 == 0 else proxy.restore()
        await asyncio.sleep(0.02 + (i % 5) * 0.03)
    proxy.restore()
    assert not running.done(), "the worker died in a flapping outage"
    for fault in ("down", "freeze", "reset"):
        if fault == "down":
            proxy.down()
        elif fault == "freeze":
            proxy.freeze()
        else:
            proxy.reset()
        await asyncio.sleep(3.0)
        assert not running.done(), "the worker died in an outage"
        proxy.restore()
        await asyncio.sleep(1.0)
    deadline = time.monotonic() + 60
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        async with frt.db.connect() as conn:
            states = dict((await conn.execute(sa.select(jobs.c.id, jobs.c.state))).all())
        if all(s in ("completed", "failed", "canceled") for s in states.values()):
            break
        await asyncio.sleep(0.5)
    assert not running.done()
    wk.stop()
    await asyncio.wait_for(running, 30)
    assert states == dict.fromkeys(ids, "completed")
    await assert_ledger_exact(frt.db)
