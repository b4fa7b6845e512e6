"""Who may do what: scopes, revocation, expiry, admin routes, and object-level
authorization swept over every route that takes a job id."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from reelgate.config import Settings
from reelgate.runtime import Runtime
from reelgate.store.accounts import create_key, revoke
from reelgate.store.jobs import now_ms


async def _admin_account(client: httpx.AsyncClient, credits: str = "50") -> str:
    resp = await client.post("/v1/admin/accounts", json={"name": "acme", "credits": credits})
    assert resp.status_code == 201, resp.text
    assert resp.json()["balance"] == f"{credits}.000"
    return str(resp.json()["id"])


async def _key(client: httpx.AsyncClient, account: str, scopes: list[str]) -> tuple[str, str]:
    resp = await client.post(f"/v1/admin/accounts/{account}/keys", json={"scopes": scopes})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["key"].startswith("rg_") and body["prefix"] == body["key"][:10]
    return body["key"], body["id"]


async def test_read_only_key_cannot_submit_and_revoked_key_gets_401(
    client: httpx.AsyncClient,
) -> None:
    account = await _admin_account(client)
    key, key_id = await _key(client, account, ["jobs:read"])
    h = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/videos", headers=h)).status_code == 200
    denied = await client.post("/v1/videos", headers=h, json={"model": "local", "prompt": "x"})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "insufficient_scope"
    listed = (await client.get(f"/v1/admin/accounts/{account}/keys")).json()["data"]
    assert [k["id"] for k in listed] == [key_id]
    assert "key" not in listed[0] and "key_hash" not in listed[0]
    assert (await client.post(f"/v1/admin/keys/{key_id}/revoke")).status_code == 200
    gone = await client.get("/v1/videos", headers=h)
    assert gone.status_code == 401
    assert gone.json()["error"]["code"] == "invalid_api_key"


async def test_expired_key_gets_401(client: httpx.AsyncClient, rt: Runtime) -> None:
    account = await _admin_account(client)
    async with rt.db.begin() as conn:
        key = await create_key(conn, account, expires_at=now_ms() - 1)
    resp = await client.get("/v1/videos", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 401


async def test_a_key_revoked_by_another_process_is_refused_within_a_second(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    """Valid keys are remembered a second per process (``accounts.keycache``): a
    revocation written elsewhere (the CLI, another API process) is honoured by then."""
    account = await _admin_account(client)
    key, key_id = await _key(client, account, ["jobs:read"])
    h = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/videos", headers=h)).status_code == 200
    async with rt.db.begin() as conn:  # as `reelgate keys revoke` would, not through us
        assert await revoke(conn, key_id, None, now_ms())
    deadline = asyncio.get_running_loop().time() + rt.keys.ttl + 0.5
    while (await client.get("/v1/videos", headers=h)).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, "still accepted after a second"
        await asyncio.sleep(0.05)
    assert (await client.get("/v1/videos", headers=h)).status_code == 401


async def test_admin_routes_need_the_admin_scope(client: httpx.AsyncClient) -> None:
    account = await _admin_account(client)
    key, _ = await _key(client, account, ["jobs:read", "jobs:write"])
    resp = await client.post(
        "/v1/admin/accounts", json={"name": "x"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 403


async def test_credit_grants_are_exact_and_flags_unlock_models(
    client: httpx.AsyncClient,
) -> None:
    account = await _admin_account(client, credits="0")
    granted = await client.post(
        f"/v1/admin/accounts/{account}/credits", json={"amount": "12.345", "note": "top-up"}
    )
    assert granted.json()["millicredits"]["balance"] == 12_345
    bad = await client.post(f"/v1/admin/accounts/{account}/credits", json={"amount": "0.0001"})
    assert bad.status_code == 400
    flags = await client.patch(
        f"/v1/admin/accounts/{account}", json={"allowed_models": ["sora-2"], "prc_opt_in": True}
    )
    assert flags.json()["flags"] == {"allowed_models": ["sora-2"], "prc_opt_in": True}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/videos/{id}"),
        ("POST", "/v1/videos/{id}/cancel"),
        ("POST", "/v1/videos/{id}/mirror"),
        ("GET", "/v1/videos/{id}/content"),
        ("GET", "/v1/videos/{id}/events"),
        ("GET", "/v1/videos/{id}/webhooks"),
        ("POST", "/v1/videos/{id}/pin"),
        ("POST", "/v1/videos/{id}/unpin"),
        ("POST", "/v1/videos/{id}/webhooks/msg_0/redeliver"),
        ("POST", "/v1/videos/{id}/extend"),
        ("POST", "/v1/videos/{id}/remix"),
    ],
)
async def test_another_accounts_job_is_indistinguishable_from_a_missing_one(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    mine = (await client.post("/v1/videos", json={"model": "local", "prompt": "mine"})).json()
    other_account = await _admin_account(client)
    other_key, _ = await _key(client, other_account, ["jobs:read", "jobs:write"])
    h = {"Authorization": f"Bearer {other_key}"}
    body = {"prompt": "theirs"} if path.endswith(("/extend", "/remix")) else None
    theirs = await client.request(method, path.format(id=mine["id"]), headers=h, json=body)
    missing = await client.request(
        method, path.format(id="video_00000000000000000000000000000000"), headers=h, json=body
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    listed = (await client.get("/v1/videos", headers=h)).json()["data"]
    assert listed == []
    usage = (await client.get("/v1/usage/recent", headers=h)).json()["data"]
    assert usage == []


def test_every_route_with_an_id_is_in_the_sweep() -> None:
    """If a new route takes a job id, the sweep above must cover it."""
    from reelgate.api.app import create_app

    swept = {
        "/v1/videos/{video_id}",
        "/v1/videos/{video_id}/cancel",
        "/v1/videos/{video_id}/mirror",
        "/v1/videos/{video_id}/content",
        "/v1/videos/{video_id}/events",
        "/v1/videos/{video_id}/webhooks",
        "/v1/videos/{video_id}/webhooks/{delivery_id}/redeliver",
        "/v1/videos/{video_id}/pin",
        "/v1/videos/{video_id}/unpin",
        "/v1/videos/{video_id}/extend",
        "/v1/videos/{video_id}/remix",
        # no API key: a signed link bound to the job id (test_unmirrored_delivery proves a
        # link for one job opens no other)
        "/v1/videos/{video_id}/stream",
    }

    class _Rt:
        storage = None
        signing_secret = b""
        settings = Settings()

    app = create_app(_Rt())  # type: ignore[arg-type]
    with_ids = {p for p in app.openapi()["paths"] if "{video_id}" in p}
    assert with_ids == swept
