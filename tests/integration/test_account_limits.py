"""Per-account caps on work in flight, and per-key request rates, answered 429 + Retry-After."""

from __future__ import annotations

import httpx

from reelgate.limits import RateLimiter
from reelgate.runtime import Runtime

BODY = {"model": "local", "prompt": "capped", "duration_seconds": 3, "resolution": "360p"}


async def test_jobs_in_flight_cap(client: httpx.AsyncClient, rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(update={"max_jobs_in_flight": 2})
    assert (await client.post("/v1/videos", json=BODY)).status_code == 202
    assert (await client.post("/v1/videos", json=BODY)).status_code == 202
    third = await client.post("/v1/videos", json=BODY)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "too_many_jobs_in_flight"
    assert third.headers["retry-after"] == "5"
    held = (await client.get("/v1/balance")).json()["millicredits"]["held"]
    assert held == 2 * 3_000, "a refused submit must not leave a hold behind"
    first = (await client.get("/v1/videos")).json()["data"][0]
    await client.post(f"/v1/videos/{first['id']}/cancel")
    assert (await client.post("/v1/videos", json=BODY)).status_code == 202


async def test_seconds_in_flight_cap(client: httpx.AsyncClient, rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(update={"max_seconds_in_flight": 7})
    assert (await client.post("/v1/videos", json=BODY)).status_code == 202
    assert (await client.post("/v1/videos", json=BODY)).status_code == 202
    over = await client.post("/v1/videos", json=BODY)
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "too_many_seconds_in_flight"
    assert (
        await client.post("/v1/videos", json={**BODY, "duration_seconds": 1})
    ).status_code == 202


async def test_request_rate_limit_per_key(client: httpx.AsyncClient, rt: Runtime) -> None:
    rt.rate_limiter = RateLimiter.from_url(None, "3/minute")
    codes = [(await client.get("/v1/models")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = await client.get("/v1/models")
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
