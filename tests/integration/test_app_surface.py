"""The API's public surface: OpenAPI docs, health, the error shape for unknown routes."""

from __future__ import annotations

import httpx
import pytest

import reelgate
from reelgate.runtime import Runtime


async def test_openapi_documents_every_native_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/v1/models",
        "/v1/videos",
        "/v1/videos/{video_id}",
        "/v1/videos/{video_id}/cancel",
        "/v1/videos/{video_id}/content",
        "/v1/videos/{video_id}/mirror",
    } <= paths
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_unknown_route_answers_in_the_error_shape(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz", headers={"Authorization": ""})
    assert resp.json() == {"status": "ok", "version": reelgate.__version__}


def test_public_surface_is_explicit() -> None:
    # The SDK is its own distribution (reelgate-client): the server package no longer
    # re-exports it.
    assert reelgate.__all__ == ["__version__"]
    for name in reelgate.__all__:
        assert hasattr(reelgate, name)


async def test_a_500_is_a_whole_answer_and_the_connection_stays_usable(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug answers 500 with a reference, and the client's keep-alive connection
    serves the next request (uvicorn drops it when an exception escapes the app)."""
    import asyncio

    import uvicorn

    from reelgate.api.app import create_app
    from reelgate.store.sql import SqlTx
    from tests.conftest import TEST_KEY

    calls = 0
    real = SqlTx.get_balance

    async def broken_once(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlTx, "get_balance", broken_once)
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=0, log_level="critical")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /v1/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_KEY}\r\n\r\n"
    answers = []
    try:
        for _ in range(2):
            writer.write(request.encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            answers.append((int(head.split()[1]), body))
    finally:
        writer.close()
        server.should_exit = True
        await serving
    assert [status for status, _ in answers] == [500, 200]
    assert b'"internal_error"' in answers[0][1] and b"Reference" in answers[0][1]
