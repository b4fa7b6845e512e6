"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work).

Readiness is what a load balancer or an orchestrator asks before sending traffic:
the database answers, its schema is at this code's migration head, the storage takes
a write, and where this process runs a worker (``reelgate serve``) the worker reached
the database within a lease period (it renews its leases every third of one, busy or
not). Each check has its own time limit and its own entry in the answer, so an
operator sees which part is down; a check's error says what failed, never a URL or a
secret. 200 when every check passes, else 503 with ``error.code`` ``not_ready``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from reelgate import __version__
from reelgate.runtime import Runtime
from reelgate.store.migrate import current_revisions, head_revisions, known_revisions

__all__ = ["CHECK_SECONDS", "router"]

CHECK_SECONDS = 3.0
"""How long one check may take before it counts as failed."""

router = APIRouter(include_in_schema=False)

_heads: frozenset[str] | None = None
_known: frozenset[str] | None = None


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    checks: dict[str, Callable[[Runtime], Awaitable[dict[str, Any]]]] = {
        "database": _database,
        "migrations": _migrations,
        "storage": _storage,
    }
    if rt.worker_heartbeat is not None:
        checks["worker"] = _worker
    results = await asyncio.gather(*(_timed(check, rt) for check in checks.values()))
    answers = dict(zip(checks, results, strict=True))
    failing = [name for name, answer in answers.items() if not answer["ok"]]
    if not failing:
        return JSONResponse({"status": "ready", "version": __version__, "checks": answers})
    body = {
        "status": "not_ready",
        "version": __version__,
        "checks": answers,
        "error": {
            "code": "not_ready",
            "message": f"Not ready: {', '.join(failing)} failed; see checks for why.",
            "failing": failing,
        },
    }
    return JSONResponse(body, status_code=503)


async def _timed(
    check: Callable[[Runtime], Awaitable[dict[str, Any]]], rt: Runtime
) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        answer = await asyncio.wait_for(check(rt), CHECK_SECONDS)
    except TimeoutError:
        answer = {"ok": False, "error": f"no answer within {CHECK_SECONDS:g} s"}
    except Exception as exc:  # a check reports its failure; it never fails the route
        # the kind of failure only: a driver's message may quote a URL or a host
        answer = {"ok": False, "error": type(exc).__name__}
    answer["ms"] = round((time.perf_counter() - start) * 1000, 1)
    return answer


async def _database(rt: Runtime) -> dict[str, Any]:
    async with rt.db.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
    return {"ok": True, "backend": rt.db.dialect.name}


async def _migrations(rt: Runtime) -> dict[str, Any]:
    global _heads, _known
    if _heads is None or _known is None:
        _heads = await asyncio.to_thread(head_revisions)
        _known = await asyncio.to_thread(known_revisions)
    async with rt.db.connect() as conn:
        current = await current_revisions(conn)
    # A revision this code does not know is a newer release's: during a rolling upgrade
    # the database is migrated first, and the old processes go on serving (migrations
    # only add) until their turn to restart (docs/deploy.md).
    ahead = bool(current) and not current & _known
    answer: dict[str, Any] = {"ok": current == _heads or ahead, "current": sorted(current)}
    answer["head"] = sorted(_heads)
    if ahead:
        answer["note"] = "the database is at a newer release's migrations (a rolling upgrade)"
    elif current != _heads:
        answer["error"] = (
            "the database is not at this version's migrations: run reelgate db upgrade"
        )
    return answer


async def _storage(rt: Runtime) -> dict[str, Any]:
    key = f"health/{os.getpid()}-{time.monotonic_ns()}.txt"
    with tempfile.TemporaryDirectory(prefix="reelgate-readyz-") as tmp:
        probe = Path(tmp) / "probe.txt"
        probe.write_bytes(b"ok")
        await rt.storage.put_file(key, probe, "text/plain")
    try:
        if not await rt.storage.exists(key):
            return {"ok": False, "error": "a written probe was not found"}
    finally:
        await rt.storage.delete(key)
    return {"ok": True}


async def _worker(rt: Runtime) -> dict[str, Any]:
    assert rt.worker_heartbeat is not None
    age = rt.worker_heartbeat()
    limit = rt.settings.lease_seconds
    if age is None:
        return {"ok": False, "error": "the worker has not reached the database yet"}
    answer: dict[str, Any] = {"ok": age <= limit, "heartbeat_age_seconds": round(age, 1)}
    if age > limit:
        answer["error"] = f"the worker has not reached the database for {age:.0f} s (> {limit:g} s)"
    return answer
