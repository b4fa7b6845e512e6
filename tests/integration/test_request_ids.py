"""``X-Request-Id``: the client's, when it is a plain token, else a new one; echoed on
every answer, errors included."""

from __future__ import annotations

import httpx


async def test_a_clients_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/models", headers={"X-Request-Id": "trace-42.a"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "trace-42.a"


async def test_without_one_or_with_an_unusable_one_a_new_id_is_given(
    client: httpx.AsyncClient,
) -> None:
    plain = await client.get("/v1/models")
    odd = await client.get("/v1/models", headers={"X-Request-Id": "has spaces; and=more"})
    for answer in (plain, odd):
        rid = answer.headers["x-request-id"]
        assert rid.startswith("req_") and len(rid) == 24
    assert plain.headers["x-request-id"] != odd.headers["x-request-id"]


async def test_error_answers_carry_it_too(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/videos/video_nope", headers={"X-Request-Id": "r-404"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "r-404"
    unauthorized = await client.get(
        "/v1/models", headers={"Authorization": "Bearer rg_wrong", "X-Request-Id": "r-401"}
    )
    assert unauthorized.status_code == 401 and unauthorized.headers["x-request-id"] == "r-401"
