"""Bearer-key authentication and scope checks, as FastAPI dependencies."""

from __future__ import annotations

from fastapi import Request

from reelgate.errors import Forbidden, Unauthorized
from reelgate.limits import enforce
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.jobs import now_ms

__all__ = ["require_admin", "require_read", "require_write", "runtime"]


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def runtime(request: Request) -> Runtime:
    """The process's runtime, as a dependency (async: FastAPI runs a plain ``def``
    dependency in its thread pool, a thread hop on every request)."""
    return _runtime(request)


async def _authenticate(request: Request) -> KeyInfo:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Missing API key: send 'Authorization: Bearer <your rg_ key>'.",
            code="missing_api_key",
        )
    rt = _runtime(request)

    async def read(key: str, now: int) -> KeyInfo | None:
        async with rt.store.reading() as tx:
            return await tx.lookup_key(key, now)

    info = await rt.keys.lookup(token.strip(), now_ms(), read)
    if info is None:
        raise Unauthorized(
            "This API key is not valid (unknown, revoked or expired).", code="invalid_api_key"
        )
    return info


def _require(info: KeyInfo, scope: str) -> KeyInfo:
    if scope not in info.scopes and "admin" not in info.scopes:
        raise Forbidden(
            f"This API key lacks the {scope!r} scope.", code="insufficient_scope", scope=scope
        )
    return info


async def _limited(request: Request, info: KeyInfo) -> KeyInfo:
    limiter = _runtime(request).rate_limiter
    if limiter is not None:
        await enforce(limiter, info.key_id)
    return info


async def require_read(request: Request) -> KeyInfo:
    return await _limited(request, _require(await _authenticate(request), "jobs:read"))


async def require_admin(request: Request) -> KeyInfo:
    return await _limited(request, _require(await _authenticate(request), "admin"))


async def require_write(request: Request) -> KeyInfo:
    return await _limited(request, _require(await _authenticate(request), "jobs:write"))
