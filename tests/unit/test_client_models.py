"""The SDK's model listing against a scripted gateway (httpx.MockTransport): filters as
query parameters, cursor pages followed, one model by id, synced models parsed, and
``audio`` / ``provider_params`` on submit. Every listing test runs with both clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reelgate_client import AsyncClient, Client, Model, Page

URL = "http://gateway.test"


def wire_model(model_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "display_name": model_id.title(),
        "provider": "fal",
        "price": {"credits_per_second": "0.100", "millicredits_per_second": 100},
        "allowedParams": {"resolution": ["720p"], "duration_seconds": [5, 10]},
        "usable": True,
        **extra,
    }


SYNCED = wire_model(
    "fal:fal-ai/kling-video/v2.1",
    source="synced",
    priced=False,
    capabilities=["image_input", "audio"],
    synced={
        "provider": "fal",
        "upstream_id": "fal-ai/kling-video/v2.1",
        "category": "image-to-video",
        "schema_hash": "abc123",
        "fetched_at": 1_764_000_000,
        "status": "active",
        "mapping": {
            "status": "unmappable",
            "problems": ["no prompt input"],
            "fields": {"prompt": "text", "duration_seconds": "duration"},
            "image_required": True,
            "override_source": None,
        },
        "priced": False,
        "price_source": None,
        "provider_params": {
            "cfg_scale": {
                "type": ["number"],
                "required": False,
                "minimum": 0,
                "maximum": 1,
                "default": 0.5,
                "description": "How closely to follow the prompt.",
            },
            "style": {"type": ["string"], "required": True, "enum": ["anime", "real"]},
        },
    },
)


class Gateway:
    """Answers ``GET /v1/models`` from ``pages`` (cursor -> body) and records requests."""

    def __init__(self, pages: dict[str | None, dict[str, Any]] | None = None) -> None:
        self.pages = pages or {}
        self.requests: list[httpx.Request] = []
        self.model_body: dict[str, Any] = SYNCED

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json=self.pages[request.url.params.get("after")])
        if path.startswith("/v1/models/"):
            return httpx.Response(200, json=self.model_body)
        if path == "/v1/videos" and request.method == "POST":
            body = json.loads(request.content)
            return httpx.Response(200, json={"id": "video_1", "status": "queued", **body})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})

    def queries(self) -> list[list[tuple[str, str]]]:
        return [r.url.params.multi_items() for r in self.requests]


def three_pages() -> dict[str | None, dict[str, Any]]:
    return {
        None: {
            "object": "list",
            "data": [wire_model("a"), wire_model("b")],
            "has_more": True,
            "next_cursor": "c1",
            "total": 5,
        },
        "c1": {
            "object": "list",
            "data": [wire_model("c"), wire_model("d")],
            "has_more": True,
            "next_cursor": "c2",
            "total": 5,
        },
        "c2": {
            "object": "list",
            "data": [SYNCED],
            "has_more": False,
            "next_cursor": None,
            "total": 5,
        },
    }


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Callable[[Gateway, str, dict[str, Any]], Any]:
    """Run one client method against a gateway, with ``Client`` or ``AsyncClient``."""

    def run(gateway: Gateway, method: str, kwargs: dict[str, Any]) -> Any:
        transport = httpx.MockTransport(gateway)
        if request.param == "sync":
            with Client(URL, "rg_k", http_client=httpx.Client(transport=transport)) as client:
                return getattr(client, method)(**kwargs)

        async def go() -> Any:
            http = httpx.AsyncClient(transport=transport)
            async with AsyncClient(URL, "rg_k", http_client=http) as client:
                result = await getattr(client, method)(**kwargs)
            await http.aclose()
            return result

        return asyncio.run(go())

    return run


def test_models_follows_next_cursor_until_the_last_page(call: Any) -> None:
    gateway = Gateway(three_pages())
    found = call(gateway, "models", {"search": "kling", "limit": 2})
    assert [m.id for m in found] == ["a", "b", "c", "d", SYNCED["id"]]
    assert gateway.queries() == [
        [("modality", "video"), ("search", "kling"), ("limit", "2")],
        [("modality", "video"), ("search", "kling"), ("limit", "2"), ("after", "c1")],
        [("modality", "video"), ("search", "kling"), ("limit", "2"), ("after", "c2")],
    ]


def test_models_sends_every_filter_as_a_query_parameter(call: Any) -> None:
    gateway = Gateway({None: {"data": [], "has_more": False, "next_cursor": None, "total": 0}})
    call(
        gateway,
        "models",
        {
            "modality": None,
            "search": "veo fast",
            "provider": "fal",
            "capability": ["audio", "seed"],
            "max_duration_gte": 8,
            "max_duration_lte": 20,
            "price_gte": 50,
            "price_lte": 400,
            "source": "synced",
            "priced": False,
            "limit": 500,
        },
    )
    assert gateway.queries() == [
        [
            ("search", "veo fast"),
            ("provider", "fal"),
            ("capability", "audio"),
            ("capability", "seed"),
            ("max_duration_gte", "8"),
            ("max_duration_lte", "20"),
            ("price_gte", "50"),
            ("price_lte", "400"),
            ("source", "synced"),
            ("priced", "false"),
            ("limit", "500"),
        ]
    ]


def test_one_capability_as_a_string_and_priced_true(call: Any) -> None:
    gateway = Gateway({None: {"data": []}})
    call(gateway, "models", {"capability": "image_input", "priced": True})
    assert gateway.queries() == [
        [("modality", "video"), ("capability", "image_input"), ("priced", "true")]
    ]


def test_models_page_returns_the_cursor_and_the_total(call: Any) -> None:
    gateway = Gateway(three_pages())
    page = call(gateway, "models_page", {"after": "c1", "provider": "fal"})
    assert isinstance(page, Page)
    assert [m.id for m in page] == ["c", "d"]
    assert page.has_more is True
    assert page.next_cursor == "c2"
    assert page.total == 5
    assert page.last_id is None
    assert gateway.queries() == [[("modality", "video"), ("provider", "fal"), ("after", "c1")]]


def test_an_older_gateway_answers_one_page_with_no_new_fields(call: Any) -> None:
    old = {"object": "list", "data": [wire_model("local", emulated=True)]}
    gateway = Gateway({None: old})
    (local,) = call(gateway, "models", {})
    assert len(gateway.requests) == 1
    assert gateway.queries() == [[("modality", "video")]]
    assert local.source == "builtin"
    assert not local.is_synced
    assert local.priced is True
    assert local.capabilities == ()
    assert local.synced is None
    page = call(Gateway({None: old}), "models_page", {})
    assert page.has_more is False
    assert page.next_cursor is None
    assert page.total is None


def test_a_repeated_cursor_ends_the_listing(call: Any) -> None:
    loop = {"data": [wire_model("a")], "has_more": True, "next_cursor": "same", "total": 9}
    gateway = Gateway({None: loop, "same": loop})
    assert [m.id for m in call(gateway, "models", {})] == ["a", "a"]
    assert len(gateway.requests) == 2


def test_model_by_id_keeps_slashes_and_colons_and_encodes_the_rest(call: Any) -> None:
    gateway = Gateway()
    got = call(gateway, "model", {"model_id": "fal:fal-ai/veo3.1"})
    assert got.id == SYNCED["id"]
    call(gateway, "model", {"model_id": "odd id?#%/x"})
    assert [r.url.raw_path for r in gateway.requests] == [
        b"/v1/models/fal:fal-ai/veo3.1",
        b"/v1/models/odd%20id%3F%23%25/x",
    ]
    assert all(r.method == "GET" for r in gateway.requests)


def test_model_needs_an_id() -> None:
    with Client(URL, http_client=httpx.Client(transport=httpx.MockTransport(Gateway()))) as c:
        with pytest.raises(ValueError, match="model id"):
            c.model("")
        with pytest.raises(ValueError, match="limit"):
            c.models(limit=501)


def test_a_synced_model_is_parsed_whole() -> None:
    m = Model.from_wire(SYNCED)
    assert m.is_synced
    assert m.priced is False
    assert m.capabilities == ("image_input", "audio")
    s = m.synced
    assert s is not None
    assert (s.provider, s.upstream_id, s.category) == (
        "fal",
        "fal-ai/kling-video/v2.1",
        "image-to-video",
    )
    assert s.fetched_at is not None
    assert int(s.fetched_at.timestamp()) == 1_764_000_000
    assert s.status == "active"
    assert s.priced is False
    assert s.price_source is None
    assert s.mapping.status == "unmappable"
    assert s.mapping.problems == ("no prompt input",)
    assert s.mapping.fields == {"prompt": "text", "duration_seconds": "duration"}
    assert s.mapping.image_required is True
    assert s.mapping.override_source is None
    cfg = s.provider_params["cfg_scale"]
    assert cfg.type == ("number",)
    assert cfg.required is False
    assert (cfg.minimum, cfg.maximum, cfg.default) == (0.0, 1.0, 0.5)
    assert cfg.description == "How closely to follow the prompt."
    style = s.provider_params["style"]
    assert style.required is True
    assert style.enum == ("anime", "real")
    assert style.default is None


def test_submit_sends_audio_and_provider_params_only_when_given(call: Any) -> None:
    gateway = Gateway()
    params = {"cfg_scale": 0.7, "style": "anime"}
    call(
        gateway,
        "submit",
        {"model": "m", "prompt": "p", "audio": False, "provider_params": params},
    )
    call(gateway, "submit", {"model": "m", "prompt": "p"})
    call(gateway, "submit", {"model": "m", "prompt": "p", "provider_params": {}})
    bodies = [json.loads(r.content) for r in gateway.requests]
    assert bodies[0] == {"model": "m", "prompt": "p", "audio": False, "provider_params": params}
    assert bodies[1] == {"model": "m", "prompt": "p"}
    assert bodies[2] == {"model": "m", "prompt": "p", "provider_params": {}}
