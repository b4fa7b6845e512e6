"""Webhooks on the API: the default secret, a job's deliveries, and (admin) endpoints.

- ``GET /v1/webhooks/default/secret``: the secret that signs deliveries to a request's
  own ``webhook_url``, as Replicate's route of the same path answers (``{"key":
  "whsec_..."}``);
- ``GET /v1/videos/{id}/webhooks`` and ``POST .../webhooks/{delivery}/redeliver``;
- ``/v1/admin/accounts/{id}/webhooks`` (create, list) and
  ``/v1/admin/webhooks/{id}/rotate|disable|enable``: an account's endpoints. A secret is
  shown once, in the answer that makes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.api.auth import require_admin, require_read, require_write, runtime
from reelgate.api.idempotency import Idempotency, idempotent
from reelgate.api.openapi import errors
from reelgate.errors import Conflict, NotFound, ValidationFailed
from reelgate.netsafe import check_url
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo, account_exists
from reelgate.store.db import reading
from reelgate.store.jobs import get_job, now_ms
from reelgate.store.sql import SqlTx
from reelgate.webhooks import store as hooks

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])

HOUR_MS = 3600 * 1000


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[StrictStr, StringConstraints(min_length=1, max_length=2048)]
    events: list[Annotated[StrictStr, StringConstraints(max_length=32)]] = Field(
        default_factory=list,
        max_length=len(hooks.EVENT_TYPES),
        description="Event types to deliver (empty: every one).",
    )
    description: StrictStr = Field(default="", max_length=500)


class Rotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_previous_hours: float = Field(
        default=24,
        ge=0,
        le=168,
        allow_inf_nan=False,
        description="How long the old secret goes on signing beside the new one.",
    )


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(hooks.EVENT_TYPES))
    if unknown:
        raise ValidationFailed(
            f"Unknown event type {unknown[0]!r}.",
            param="events",
            allowed=list(hooks.EVENT_TYPES),
        )
    return list(dict.fromkeys(events))


@router.get("/v1/webhooks/default/secret")
async def default_secret(
    key: KeyInfo = Depends(require_write), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """The secret that signs deliveries to your requests' own ``webhook_url``. A key
    that may submit jobs may read it (a read-only key could forge deliveries with it)."""
    async with rt.db.begin() as conn:
        keys = await hooks.default_secret(conn, key.account_id, now_ms())
    return {"key": keys[0]}


async def _own_job(rt: Runtime, key: KeyInfo, job_id: str) -> None:
    async with reading(rt.db) as conn:
        job = await get_job(conn, job_id, key.account_id, include_deleted=True)
    if job is None:
        raise NotFound(f"No job {job_id!r}.", param="video_id")


@router.get("/v1/videos/{video_id}/webhooks", responses=errors(404))
async def list_job_deliveries(
    video_id: str, key: KeyInfo = Depends(require_read), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """Every delivery of this job's events, with its attempts."""
    await _own_job(rt, key, video_id)
    async with reading(rt.db) as conn:
        rows = await hooks.list_deliveries(conn, video_id)
    return {"object": "list", "data": [r.to_wire() for r in rows]}


Work = Callable[[AsyncConnection], Awaitable[dict[str, Any]]]

SHOWN_ONCE = "The secret was shown once, in the first answer to this request."


def _without_secret(answer: dict[str, Any]) -> dict[str, Any]:
    """What an Idempotency-Key replay answers: never the secret (it is not stored in
    the key's record, which holds answers in clear)."""
    redacted = {k: v for k, v in answer.items() if k not in ("secret", "key")}
    return {**redacted, "secret": None, "note": SHOWN_ONCE}


async def _posted(
    request: Request,
    rt: Runtime,
    key: KeyInfo,
    work: Work,
    *,
    status: int = 200,
    stored: Callable[[dict[str, Any]], dict[str, Any]] = lambda answer: answer,
) -> JSONResponse:
    """A POST's work in one transaction, with its Idempotency-Key's answer stored in it
    (every POST honours the header, ``api.idempotency``)."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        async with rt.store.begin() as tx:
            answer = await work(cast(SqlTx, tx).conn)
            if idem is not None:
                await idem.complete(tx, status, stored(answer))
        return JSONResponse(answer, status_code=status)

    return await idempotent(request, rt, key.account_id, handler)


@router.post("/v1/videos/{video_id}/webhooks/{delivery_id}/redeliver", responses=errors(404, 409))
async def redeliver(
    video_id: str,
    delivery_id: str,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Send a delivery again now, with the same ``webhook-id`` and body."""
    await _own_job(rt, key, video_id)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        found = [d for d in await hooks.list_deliveries(conn, video_id) if d.id == delivery_id]
        if not found:
            raise NotFound(
                f"No delivery {delivery_id!r} for job {video_id!r}.", param="delivery_id"
            )
        endpoint_id = found[0].endpoint_id
        if endpoint_id is not None:
            endpoint = await hooks.get_endpoint(conn, endpoint_id)
            if endpoint is None or endpoint.disabled_at is not None:
                raise Conflict(
                    f"The endpoint {endpoint_id} is disabled; enable it first "
                    f"(POST /v1/admin/webhooks/{endpoint_id}/enable).",
                    code="endpoint_disabled",
                )
        delivery = await hooks.redeliver(conn, video_id, delivery_id, now_ms())
        assert delivery is not None
        return delivery.to_wire()

    return await _posted(request, rt, key, work)


# ── admin: an account's endpoints ──


@router.post("/v1/admin/accounts/{account_id}/webhooks", status_code=201, responses=errors(404))
async def create_endpoint(
    account_id: str,
    body: EndpointCreate,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    check_url(body.url, rt.settings.net_policy(), param="url")
    events = _check_events(body.events)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        await _account(conn, account_id)
        endpoint = await hooks.create_endpoint(
            conn, account_id, body.url, events, body.description, now_ms()
        )
        return {
            **endpoint.to_wire(),
            "secret": endpoint.secret,
            "note": "This is the only time the secret is shown; store it now.",
        }

    return await _posted(request, rt, key, work, status=201, stored=_without_secret)


@router.get("/v1/admin/accounts/{account_id}/webhooks", responses=errors(404))
async def list_endpoints(
    account_id: str, _key: KeyInfo = Depends(require_admin), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    async with reading(rt.db) as conn:
        await _account(conn, account_id)
        rows = await hooks.list_endpoints(conn, account_id)
    return {"object": "list", "data": [r.to_wire() for r in rows]}


async def _account(conn: AsyncConnection, account_id: str) -> None:
    if not await account_exists(conn, account_id):
        raise NotFound(f"No account {account_id!r}.", param="account_id")


def _found(endpoint: hooks.Endpoint | None, endpoint_id: str) -> hooks.Endpoint:
    if endpoint is None:
        raise NotFound(f"No webhook endpoint {endpoint_id!r}.", param="endpoint_id")
    return endpoint


def _keep_ms(body: Rotate | None) -> int:
    return int((body or Rotate()).keep_previous_hours * HOUR_MS)


@router.post("/v1/admin/webhooks/{endpoint_id}/rotate", responses=errors(404))
async def rotate_endpoint(
    endpoint_id: str,
    request: Request,
    body: Rotate | None = None,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def work(conn: AsyncConnection) -> dict[str, Any]:
        found = await hooks.rotate_endpoint(conn, endpoint_id, _keep_ms(body), now_ms())
        endpoint = _found(found, endpoint_id)
        return {
            **endpoint.to_wire(),
            "secret": endpoint.secret,
            "note": "The new secret is shown only now; the previous one signs too until "
            "previous_secret_valid_until.",
        }

    return await _posted(request, rt, key, work, stored=_without_secret)


async def _set_enabled(
    request: Request, rt: Runtime, key: KeyInfo, endpoint_id: str, enabled: bool
) -> JSONResponse:
    async def work(conn: AsyncConnection) -> dict[str, Any]:
        found = await hooks.set_endpoint_enabled(
            conn, endpoint_id, enabled=enabled, reason=None, now=now_ms()
        )
        return _found(found, endpoint_id).to_wire()

    return await _posted(request, rt, key, work)


@router.post("/v1/admin/webhooks/{endpoint_id}/disable", responses=errors(404))
async def disable_endpoint(
    endpoint_id: str,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    return await _set_enabled(request, rt, key, endpoint_id, False)


@router.post("/v1/admin/webhooks/{endpoint_id}/enable", responses=errors(404))
async def enable_endpoint(
    endpoint_id: str,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    return await _set_enabled(request, rt, key, endpoint_id, True)


@router.post(
    "/v1/admin/accounts/{account_id}/webhooks/default-secret/rotate", responses=errors(404)
)
async def rotate_default_secret(
    account_id: str,
    request: Request,
    body: Rotate | None = None,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """A new default secret for the account's per-request webhooks; the old one signs
    beside it for ``keep_previous_hours``."""

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        await _account(conn, account_id)
        fresh = await hooks.rotate_default_secret(conn, account_id, _keep_ms(body), now_ms())
        return {"key": fresh}

    return await _posted(request, rt, key, work, stored=_without_secret)
