"""Bounded, clean input: what an attacker or a careless client sends gets a clear 4xx,
never a 500, never a stored 200 MB job, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from reelgate.runtime import Runtime
from reelgate.store.schema import jobs

BODY = {"model": "local", "prompt": "a quiet pond", "duration_seconds": 1, "resolution": "360p"}


async def _jobs(rt: Runtime) -> int:
    async with rt.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar_one())


def _code(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["code"])


async def test_a_body_over_the_cap_is_413_whether_announced_or_streamed(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    big = json.dumps({**BODY, "metadata": {"note": "x" * (2 * 1024 * 1024)}}).encode()
    announced = await client.post(
        "/v1/admin/accounts", content=big, headers={"Content-Type": "application/json"}
    )
    assert announced.status_code == 413
    assert _code(announced) == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    streamed = await client.post(
        "/v1/admin/accounts", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await _jobs(rt) == 0


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({"k": "v" * 513}, "metadata.k"),
        ({"k" * 65: "v"}, "metadata"),
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k": 5}, "metadata.k"),
    ],
)
async def test_metadata_has_openais_caps(
    client: httpx.AsyncClient, rt: Runtime, metadata: dict[str, object], param: str
) -> None:
    resp = await client.post("/v1/videos", json={**BODY, "metadata": metadata})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"].startswith(param)
    assert await _jobs(rt) == 0


@pytest.mark.parametrize(
    "field",
    [
        {"prompt": "a pond\u0000"},
        {"prompt": "\u0000"},
        {"prompt": "bell \u0007"},
        {"prompt": "half an emoji \ud83d"},
        {"negative_prompt": "blur\u0000"},
        {"metadata": {"note": "a\u0000b"}},
        {"metadata": {"n\u0000te": "x"}},
    ],
)
async def test_control_characters_and_lone_surrogates_are_400(
    client: httpx.AsyncClient, rt: Runtime, field: dict[str, object]
) -> None:
    content = json.dumps({**BODY, **field})  # \u escapes, as a JSON client sends them
    resp = await client.post(
        "/v1/videos", content=content, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert _code(resp) == "invalid_characters"
    assert await _jobs(rt) == 0


async def test_tabs_newlines_and_emoji_are_fine(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/videos", json={**BODY, "prompt": "line one\n\tline two 🦊"})
    assert resp.status_code == 202, resp.text


async def test_the_service_rejects_a_nul_or_blank_prompt_and_bills_nothing(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    before = (await client.get("/v1/balance")).json()
    for prompt in ("   ", "a\u0000b", ""):
        resp = await client.post("/v1/proxy/media-video-from-text", json={"prompt": prompt})
        assert resp.status_code == 400, (prompt, resp.text)
    assert (await client.get("/v1/balance")).json() == before
    assert await _jobs(rt) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000 + b"]" * 5000,
        json.dumps({**BODY, "metadata": {"a": "b"}}).replace('"b"', "[" * 40 + "]" * 40).encode(),
        b'{"model": "local", "prompt": "x", "seed": NaN}',
        b'{"model": "local", "prompt": "x", "seed": Infinity}',
        b'{"model": "local", "prompt": "x", "seed": ' + b"9" * 5000 + b"}",
        b'{"model": "local", "prompt": ',
    ],
)
async def test_hostile_json_is_400_invalid_json_on_every_route(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    for path in ("/v1/videos", "/v1/proxy/media-video-from-text", "/v1/admin/accounts"):
        resp = await client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (path, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "invalid_json", (path, error)
        assert error["param"] == "body"


@pytest.mark.parametrize("seconds", ["\u00b2", "\uff14", "-4", "4.0", " 4", "99999999999"])
async def test_seconds_take_ascii_digits_only(client: httpx.AsyncClient, seconds: str) -> None:
    resp = await client.post(
        "/v1/videos", json={"model": "local", "prompt": "x", "seconds": seconds}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "seconds"


async def test_multipart_fields_are_checked_too(client: httpx.AsyncClient, rt: Runtime) -> None:
    form = {"model": "local", "prompt": "a pond", "seconds": "1", "size": "640x360"}
    not_json = await client.post(
        "/v1/videos",
        files={**{k: (None, v) for k, v in form.items()}, "metadata": (None, "{not json")},
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"]["param"] == "metadata"
    nul = await client.post(
        "/v1/videos", files={**{k: (None, v) for k, v in form.items()}, "prompt": (None, "a\x00")}
    )
    assert nul.status_code == 400
    assert _code(nul) == "invalid_characters"
    ok = await client.post("/v1/videos", files={k: (None, v) for k, v in form.items()})
    assert ok.status_code == 202, ok.text
    assert await _jobs(rt) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a", "credits": True},
        {"name": "a", "credits": "\uff11\uff10"},  # fullwidth "10"
        {"name": "a", "credits": "1e30"},
        {"name": "a", "credits": 2**63},
        {"name": "a", "credits": "9223372036854775808"},
        {"name": "a", "credits": 1.5},
        {"name": "a\u0000"},
        {"name": "a", "allowed_models": ["m" * 65]},
    ],
)
async def test_admin_values_are_bounded(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    resp = await client.post("/v1/admin/accounts", json=body)
    assert resp.status_code == 400, resp.text


@pytest.mark.parametrize("days", [0, -1, 1e308, 3651])
async def test_key_expiry_is_bounded(client: httpx.AsyncClient, days: float) -> None:
    account = (await client.post("/v1/admin/accounts", json={"name": "bounded"})).json()["id"]
    raw = b'{"expires_in_days": ' + (b"1.8e308" if days == 1e308 else str(days).encode()) + b"}"
    resp = await client.post(
        f"/v1/admin/accounts/{account}/keys",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400, resp.text


async def test_a_grant_cannot_overflow_a_balance(client: httpx.AsyncClient, rt: Runtime) -> None:
    from reelgate.store.ledger import MAX_BALANCE, grant

    account = (await client.post("/v1/admin/accounts", json={"name": "rich"})).json()["id"]
    async with rt.db.begin() as conn:
        await grant(conn, account, MAX_BALANCE - 500)
    resp = await client.post(f"/v1/admin/accounts/{account}/credits", json={"amount": "1"})
    assert resp.status_code == 400
    assert "may not exceed" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "target", ["/v1/videos/video_%00", "/v1/videos?after=%00", "/v1/usage/recent?model=%01"]
)
async def test_control_characters_in_the_url_are_400(
    client: httpx.AsyncClient, target: str
) -> None:
    resp = await client.get(target)
    assert resp.status_code == 400, resp.text


async def test_json_without_a_json_content_type_is_read_as_json(
    client: httpx.AsyncClient,
) -> None:
    raw = json.dumps(BODY).encode()
    for ctype in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {"Content-Type": ctype} if ctype else {}
        resp = await client.post("/v1/videos", content=raw, headers=headers)
        assert resp.status_code == 202, (ctype, resp.text)
    xml = await client.post(
        "/v1/videos", content=b"<video/>", headers={"Content-Type": "application/xml"}
    )
    assert xml.status_code == 415
    assert _code(xml) == "unsupported_media_type"
    assert "application/json" in xml.json()["error"]["message"]
