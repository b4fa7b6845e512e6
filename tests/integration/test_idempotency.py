"""Idempotency-Key: a retried POST never makes a second job or a second hold."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from reelgate.runtime import Runtime
from reelgate.store.schema import holds, jobs

BODY = {"model": "local", "prompt": "once only", "duration_seconds": 2, "resolution": "360p"}


async def _counts(rt: Runtime) -> tuple[int, int]:
    async with rt.db.connect() as conn:
        n_jobs = (await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar_one()
        n_holds = (await conn.execute(sa.select(sa.func.count()).select_from(holds))).scalar_one()
    return int(n_jobs), int(n_holds)


async def test_same_key_same_body_replays_the_stored_response(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    h = {"Idempotency-Key": "order-42"}
    first = await client.post("/v1/videos", json=BODY, headers=h)
    second = await client.post("/v1/videos", json=BODY, headers=h)
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert await _counts(rt) == (1, 1)
    held = (await client.get("/v1/balance")).json()["millicredits"]["held"]
    assert held == 2_000


async def test_same_key_different_body_is_422(client: httpx.AsyncClient, rt: Runtime) -> None:
    h = {"Idempotency-Key": "order-43"}
    assert (await client.post("/v1/videos", json=BODY, headers=h)).status_code == 202
    other = await client.post("/v1/videos", json={**BODY, "prompt": "another"}, headers=h)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await _counts(rt) == (1, 1)


async def test_concurrent_retries_with_one_key_make_one_job(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    h = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *[client.post("/v1/videos", json=BODY, headers=h) for _ in range(8)]
    )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {202, 409}
    assert codes.count(202) >= 1
    ids = {a.json()["id"] for a in answers if a.status_code == 202}
    assert len(ids) == 1
    assert all(
        a.json()["error"]["code"] == "idempotency_in_progress"
        for a in answers
        if a.status_code == 409
    )
    assert await _counts(rt) == (1, 1)


async def test_keys_are_scoped_per_account(client: httpx.AsyncClient, rt: Runtime) -> None:
    from reelgate.store.accounts import create_account, create_key
    from reelgate.store.ledger import grant

    async with rt.db.begin() as conn:
        other = await create_account(conn, "other")
        other_key = await create_key(conn, other)
        await grant(conn, other, 100_000)
    h = {"Idempotency-Key": "shared-name"}
    a = await client.post("/v1/videos", json=BODY, headers=h)
    b = await client.post(
        "/v1/videos", json=BODY, headers={**h, "Authorization": f"Bearer {other_key}"}
    )
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


async def test_a_refused_request_is_replayed_too(client: httpx.AsyncClient, rt: Runtime) -> None:
    h = {"Idempotency-Key": "bad-one"}
    bad = {**BODY, "duration_seconds": 99}
    first = await client.post("/v1/videos", json=bad, headers=h)
    again = await client.post("/v1/videos", json=bad, headers=h)
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()
    assert await _counts(rt) == (0, 0)


async def test_cancel_with_a_key_is_idempotent(client: httpx.AsyncClient) -> None:
    job = (await client.post("/v1/videos", json=BODY)).json()
    h = {"Idempotency-Key": "cancel-1"}
    first = await client.post(f"/v1/videos/{job['id']}/cancel", headers=h)
    second = await client.post(f"/v1/videos/{job['id']}/cancel", headers=h)
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"


async def test_admin_posts_are_idempotent_and_never_replay_a_secret(
    client: httpx.AsyncClient,
) -> None:
    h = {"Idempotency-Key": "new-customer"}
    first = await client.post(
        "/v1/admin/accounts", json={"name": "acme", "credits": "5"}, headers=h
    )
    again = await client.post(
        "/v1/admin/accounts", json={"name": "acme", "credits": "5"}, headers=h
    )
    assert first.json() == again.json()
    account = first.json()["id"]
    kh = {"Idempotency-Key": "key-for-acme"}
    key1 = await client.post(f"/v1/admin/accounts/{account}/keys", json={}, headers=kh)
    key2 = await client.post(f"/v1/admin/accounts/{account}/keys", json={}, headers=kh)
    assert key1.json()["key"].startswith("rg_")
    assert key2.json()["key"] is None and key2.json()["id"] == key1.json()["id"]
    keys = (await client.get(f"/v1/admin/accounts/{account}/keys")).json()["data"]
    assert len(keys) == 1
    gh = {"Idempotency-Key": "grant-1"}
    for _ in range(2):
        await client.post(f"/v1/admin/accounts/{account}/credits", json={"amount": "1"}, headers=gh)
    bal = await client.post(f"/v1/admin/accounts/{account}/credits", json={"amount": "0"})
    assert bal.json()["balance"] == "6.000"


# -- through failures: leases, takeovers, fences ----------------------------------------


async def _abandon(rt: Runtime, key: str, body: dict[str, object], *, lease_ms: int) -> None:
    """What a crashed API leaves behind: the key claimed, nothing committed with it."""
    from reelgate.api.idempotency import IDEMPOTENCY_TTL_MS
    from reelgate.store.accounts import DEV_ACCOUNT_ID
    from reelgate.store.idempotency import claim_key
    from reelgate.store.jobs import now_ms

    digest = hashlib.sha256(b"POST /v1/videos\n" + json.dumps(body).encode()).hexdigest()
    async with rt.db.begin() as conn:
        taken = await claim_key(
            conn,
            DEV_ACCOUNT_ID,
            key,
            digest,
            owner="crashed-handler",
            now=now_ms(),
            lease_ms=lease_ms,
            ttl_ms=IDEMPOTENCY_TTL_MS,
        )
    assert taken is None


async def test_a_key_left_in_flight_by_a_crash_is_taken_over_after_its_lease(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    await _abandon(rt, "crashed-1", BODY, lease_ms=1500)
    h = {"Idempotency-Key": "crashed-1", "Content-Type": "application/json"}
    content = json.dumps(BODY)
    early = await client.post("/v1/videos", content=content, headers=h)
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "idempotency_in_progress"
    assert 1 <= int(early.headers["retry-after"]) <= 2
    await asyncio.sleep(1.6)
    late = await client.post("/v1/videos", content=content, headers=h)
    assert late.status_code == 202, late.text
    again = await client.post("/v1/videos", content=content, headers=h)
    assert again.json()["id"] == late.json()["id"]
    assert await _counts(rt) == (1, 1)


async def test_a_handler_that_outlived_its_lease_is_fenced_out(rt: Runtime) -> None:
    from reelgate.api.idempotency import Idempotency
    from reelgate.errors import Conflict
    from reelgate.store.accounts import DEV_ACCOUNT_ID

    await _abandon(rt, "slow-1", BODY, lease_ms=0)
    await asyncio.sleep(0.01)
    await _abandon(rt, "slow-1", BODY, lease_ms=60_000)  # a retry took the key over
    stale = Idempotency(DEV_ACCOUNT_ID, "slow-1", owner="crashed-handler-before")
    with pytest.raises(Conflict):
        async with rt.store.begin() as tx:
            await stale.complete(tx, 202, {"id": "video_stale"})


async def test_an_error_after_the_commit_never_invites_a_second_job(
    client: httpx.AsyncClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old bug: the job, its hold and its key committed, then something failed and
    the catch-all deleted the key, so the retry made a second job and a second charge."""
    from reelgate.api import routes_videos

    calls = 0
    to_wire = routes_videos.job_to_wire

    async def explode_after_commit(rt: Runtime, job: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1  # 1: the stored answer, inside the transaction; 2: after the commit
        if calls == 2:
            raise RuntimeError("something broke right after the commit")
        return await to_wire(rt, job)

    monkeypatch.setattr(routes_videos, "job_to_wire", explode_after_commit)
    h = {"Idempotency-Key": "after-commit"}
    first = await client.post("/v1/videos", json=BODY, headers=h)
    assert first.status_code == 500
    assert first.json()["error"]["code"] == "internal_error"
    retry = await client.post("/v1/videos", json=BODY, headers=h)
    assert retry.status_code == 202
    assert retry.headers["idempotent-replayed"] == "true"
    assert await _counts(rt) == (1, 1)


async def test_a_retryable_refusal_is_not_stored(
    client: httpx.AsyncClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """429 (too much in flight) is "try later", not an answer: the same key succeeds
    once the account has room."""
    monkeypatch.setattr(rt.settings, "max_jobs_in_flight", 1)
    assert (await client.post("/v1/videos", json=BODY)).status_code == 202
    h = {"Idempotency-Key": "busy-account"}
    busy = await client.post("/v1/videos", json=BODY, headers=h)
    assert busy.status_code == 429
    monkeypatch.setattr(rt.settings, "max_jobs_in_flight", 2)
    later = await client.post("/v1/videos", json=BODY, headers=h)
    assert later.status_code == 202
