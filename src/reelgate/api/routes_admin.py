"""``/v1/admin``: accounts, keys, credits and account flags (keys with the ``admin`` scope)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from reelgate.accounts import admin
from reelgate.api.auth import require_admin, runtime
from reelgate.api.idempotency import Idempotency, idempotent
from reelgate.runtime import Runtime
from reelgate.store.accounts import ALL_SCOPES, KeyInfo

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: StrictStr = Field(min_length=1, max_length=200)
    credits: StrictStr | int = "0"
    allowed_models: list[StrictStr] = Field(default_factory=list)
    prc_opt_in: StrictBool = False


class FlagsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed_models: list[StrictStr] | None = None
    prc_opt_in: StrictBool | None = None


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: list[StrictStr] = Field(default_factory=lambda: list(ALL_SCOPES))
    name: StrictStr = ""
    expires_in_days: float | None = None


class CreditGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: StrictStr | int = Field(description='Credits, e.g. "12.5" (negative to remove).')
    note: StrictStr = ""


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


@router.post("/accounts", status_code=201)
async def create_account(
    body: AccountCreate,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def work(_idem: Idempotency | None) -> dict[str, Any]:
        flags = {"allowed_models": body.allowed_models, "prc_opt_in": body.prc_opt_in}
        account_id, balance = await admin.create_account_with(
            rt.db, body.name, credits=admin.parse_credits(body.credits), flags=flags
        )
        return {
            "object": "account",
            "id": account_id,
            "name": body.name,
            "flags": flags,
            **balance.to_wire(),
        }

    return await _once(request, rt, key, 201, work)


@router.patch("/accounts/{account_id}")
async def update_account(
    account_id: str,
    body: FlagsUpdate,
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    flags = await admin.update_flags(rt.db, account_id, **changes)
    return {"object": "account", "id": account_id, "flags": flags}


@router.post("/accounts/{account_id}/credits")
async def grant_credits(
    account_id: str,
    body: CreditGrant,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def work(_idem: Idempotency | None) -> dict[str, Any]:
        balance = await admin.grant_credits(
            rt.db, account_id, admin.parse_credits(body.amount), body.note
        )
        return {"object": "balance", "account_id": account_id, **balance.to_wire()}

    return await _once(request, rt, key, 200, work)


@router.post("/accounts/{account_id}/keys", status_code=201)
async def create_key(
    account_id: str,
    body: KeyCreate,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def work(idem: Idempotency | None) -> dict[str, Any]:
        secret, row = await admin.issue_key(
            rt.db,
            account_id,
            scopes=body.scopes,
            name=body.name,
            expires_in_days=body.expires_in_days,
        )
        shown = {**row.to_wire(), "object": "api_key"}
        if idem is not None:
            # A replay must not hand the key out again, and it is never stored in clear.
            async with rt.db.begin() as conn:
                await idem.complete(
                    conn,
                    201,
                    {
                        **shown,
                        "key": None,
                        "note": "The key was shown once, in the first answer to this request.",
                    },
                )
        return {
            **shown,
            "key": secret,
            "note": "This is the only time the key is shown; store it now.",
        }

    return await _once(request, rt, key, 201, work)


@router.get("/accounts/{account_id}/keys")
async def list_keys(
    account_id: str, _key: KeyInfo = Depends(require_admin), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    rows = await admin.list_keys(rt.db, account_id)
    return {"object": "list", "data": [r.to_wire() for r in rows]}


@router.post("/keys/{key_id}/revoke")
async def revoke_key(
    key_id: str,
    request: Request,
    key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def work(_idem: Idempotency | None) -> dict[str, Any]:
        await admin.revoke_key(rt.db, key_id)
        return {"object": "api_key", "id": key_id, "revoked": True}

    return await _once(request, rt, key, 200, work)
