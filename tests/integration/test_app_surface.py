"""The API's public surface: OpenAPI docs, health, the error shape for unknown routes."""

from __future__ import annotations

import httpx

import reelgate


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
    assert reelgate.__all__ == ["AsyncClient", "Client", "__version__"]
    for name in reelgate.__all__:
        assert hasattr(reelgate, name)
