"""``/v1/admin``: accounts, keys, credits and account flags (keys with the ``admin`` scope)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from reelgate.accounts import admin
from reelgate.api.auth import require_admin, runtime
from reelgate.api.idempotency import Idempotency, idempotent
from reelgate.api.openapi import errors
from reelgate.runtime import Runtime
from reelgate.store.accounts import ALL_SCOPES, KeyInfo
from reelgate.store.base import Tx
from reelgate.store.ledger import Balance

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


ModelId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=64)]
Credits = (
    Annotated[StrictStr, StringConstraints(pattern=r"^-?[0-9]{1,10}(\.[0-9]{1,3})?$")] | StrictInt
)
"""Credits as a decimal string ("12.5") or an integer; never a boolean or a float."""


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr = Field(min_length=1, max_length=200)
    credits: Credits = "0"
    allowed_models: list[ModelId] = Field(default_factory=list, max_length=100)
    prc_opt_in: StrictBool = False


class FlagsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed_models: list[ModelId] | None = Field(default=None, max_length=100)
    prc_opt_in: StrictBool | None = None


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: list[Annotated[StrictStr, StringConstraints(max_length=32)]] = Field(
        default_factory=lambda: list(ALL_SCOPES), max_length=8
    )
    name: StrictStr = Field(default="", max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650, allow_inf_nan=False)


class CreditGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Credits = Field(description='Credits, e.g. "12.5" (negative to remove).')
    note: StrictStr = Field(default="", max_length=500)


def _completing(
    idem: Idempotency | None, status: int, answer: Callable[[Any], dict[str, Any]]
) -> admin.Then | None:
    """Store the Idempotency-Key answer in the action's own transaction."""
    if idem is None:
        return None

    async def then(tx: Tx, result: Any) -> None:
        await idem.complete(tx, status, answer(result))

    return then


async def _once(
    request: Request,
    rt: Runtime,
    key: KeyInfo,
    status: int,
    work: Callable[[Idempotency | None], Awaitable[dict[str, Any]]],
) -> JSONResponse:
    """Every admin POST honours Idempotency-Key like the rest of the API."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        return JSONResponse(await work(idem), status_code=status)

    return await idempotent(request, rt, key.account_id, handler)


@router.post("/accounts", status_code=201, responses=errors(402))
async def create_account(
    body: AccountCreate,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    flags = {"allowed_models": body.allowed_models, "prc_opt_in": body.prc_opt_in}

    def answer(created: tuple[str, Balance]) -> dict[str, Any]:
        account_id, balance = created
        return {
            "object": "account",
            "id": account_id,
            "name": body.name,
            "flags": flags,
            **balance.to_wire(rt.settings.credit()),
        }

    async def work(idem: Idempotency | None) -> dict[str, Any]:
        created = await admin.create_account_with(
            rt.store,
            body.name,
            credits=admin.parse_credits(body.credits),
            flags=flags,
            then=_completing(idem, 201, answer),
        )
        return answer(created)

    return await _once(request, rt, key, 201, work)


@router.patch("/accounts/{account_id}", responses=errors(404))
async def update_account(
    account_id: str,
    body: FlagsUpdate,
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    flags = await admin.update_flags(rt.store, account_id, **changes)
    rt.flags.forget(account_id)  # other processes see the change within a second
    return {"object": "account", "id": account_id, "flags": flags}


@router.post("/accounts/{account_id}/credits", responses=errors(402, 404))
async def grant_credits(
    account_id: str,
    body: CreditGrant,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    def answer(balance: Balance) -> dict[str, Any]:
        return {
            "object": "balance",
            "account_id": account_id,
            **balance.to_wire(rt.settings.credit()),
        }

    async def work(idem: Idempotency | None) -> dict[str, Any]:
        balance = await admin.grant_credits(
            rt.store,
            account_id,
            admin.parse_credits(body.amount),
            body.note,
            then=_completing(idem, 200, answer),
        )
        return answer(balance)

    return await _once(request, rt, key, 200, work)


@router.post("/accounts/{account_id}/keys", status_code=201, responses=errors(404))
async def create_key(
    account_id: str,
    body: KeyCreate,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    def replayed(row: admin.KeyRow) -> dict[str, Any]:
        # A replay must not hand the key out again, and it is never stored in clear.
        return {
            **row.to_wire(),
            "object": "api_key",
            "key": None,
            "note": "The key was shown once, in the first answer to this request.",
        }

    async def work(idem: Idempotency | None) -> dict[str, Any]:
        secret, row = await admin.issue_key(
            rt.store,
            account_id,
            scopes=body.scopes,
            name=body.name,
            expires_in_days=body.expires_in_days,
            then=_completing(idem, 201, replayed),
        )
        return {
            **row.to_wire(),
            "object": "api_key",
            "key": secret,
            "note": "This is the only time the key is shown; store it now.",
        }

    return await _once(request, rt, key, 201, work)


@router.get("/accounts/{account_id}/keys", responses=errors(404))
async def list_keys(
    account_id: str, _key: KeyInfo = Depends(require_admin), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    rows = await admin.list_keys(rt.store, account_id)
    return {"object": "list", "data": [r.to_wire() for r in rows]}


@router.post("/keys/{key_id}/revoke", responses=errors(404))
async def revoke_key(
    key_id: str,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def work(_idem: Idempotency | None) -> dict[str, Any]:
        await admin.revoke_key(rt.store, key_id)
        rt.keys.forget_all()  # other processes stop accepting it within a second
        return {"object": "api_key", "id": key_id, "revoked": True}

    return await _once(request, rt, key, 200, work)


@router.get("/ambiguous-creates")
async def list_ambiguous_creates(
    include_resolved: bool = False,
    limit: int = Query(100, ge=1, le=1000),
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Upstream creates whose answer was lost and that reelgate could not settle (never
    re-sent): each may be a video the provider bills. Newest first."""
    rows = await admin.ambiguous_creates(rt.store, include_resolved=include_resolved, limit=limit)
    return {"object": "list", "data": [r.to_wire() for r in rows]}


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: StrictStr = Field(
        min_length=1, max_length=500, description="What the operator found or did upstream."
    )


@router.post("/ambiguous-creates/{row_id}/resolve", responses=errors(404))
async def resolve_ambiguous_create(
    row_id: str,
    body: Resolution,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def work(_idem: Idempotency | None) -> dict[str, Any]:
        await admin.resolve_ambiguous_create(rt.store, row_id, body.resolution)
        return {"object": "ambiguous_create", "id": row_id, "resolution": body.resolution}

    return await _once(request, rt, key, 200, work)
