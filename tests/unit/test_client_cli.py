"""``reelgate-client models``, ``model`` and ``generate``'s new options, run in-process
(typer's CliRunner) against a scripted gateway (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from reelgate_client import Client, cli
from tests.unit.test_client_models import SYNCED, Gateway, three_pages, wire_model

runner = CliRunner()


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Gateway:
    """Every ``Client`` the CLI makes talks to this gateway."""
    gw = Gateway(three_pages())

    def client(base_url: str | None = None, api_key: str | None = None) -> Client:
        http = httpx.Client(transport=httpx.MockTransport(gw))
        return Client("http://gateway.test", "rg_k", http_client=http)

    monkeypatch.setattr(cli, "Client", client)
    monkeypatch.setattr(cli.out, "width", 250)  # wide tables: nothing dropped or cut
    return gw


def invoke(*args: str) -> Any:
    return runner.invoke(cli.app, list(args), catch_exceptions=False)


def test_models_sends_the_filters_and_lists_every_page(gateway: Gateway) -> None:
    done = invoke(
        "models",
        "--search",
        "kling",
        "--provider",
        "fal",
        "--capability",
        "audio",
        "-c",
        "image_input",
        "--source",
        "synced",
        "--unpriced",
        "--max-duration-gte",
        "8",
    )
    assert done.exit_code == 0, done.output
    expected = [
        ("modality", "video"),
        ("search", "kling"),
        ("provider", "fal"),
        ("capability", "audio"),
        ("capability", "image_input"),
        ("max_duration_gte", "8"),
        ("source", "synced"),
        ("priced", "false"),
    ]
    assert gateway.queries() == [
        expected,
        [*expected, ("after", "c1")],
        [*expected, ("after", "c2")],
    ]
    lines = [line.strip() for line in done.stdout.splitlines()]
    header = next(line for line in lines if line.startswith("id"))
    assert "source" in header.split()
    row = next(line for line in lines if line.startswith(SYNCED["id"]))
    assert "unpriced" in row
    assert "synced (unmappable)" in row
    assert "builtin" in next(line for line in lines if line.startswith("a "))
    assert f"{SYNCED['id']}: no prompt input" in done.stdout  # why it cannot be used


def test_models_priced_and_json(gateway: Gateway) -> None:
    done = invoke("models", "--priced", "--json")
    assert done.exit_code == 0, done.output
    assert [m["id"] for m in json.loads(done.stdout)] == ["a", "b", "c", "d", SYNCED["id"]]
    assert gateway.queries()[0] == [("modality", "video"), ("priced", "true")]


def test_models_from_an_older_gateway_show_no_source_column(gateway: Gateway) -> None:
    gateway.pages = {None: {"object": "list", "data": [wire_model("local")]}}
    done = invoke("models")
    assert done.exit_code == 0, done.output
    assert gateway.queries() == [[("modality", "video")]]
    assert "local" in done.stdout
    assert "source" not in done.stdout
    assert "0.100" in done.stdout
    assert "unpriced" not in done.stdout


def test_models_says_when_nothing_matches(gateway: Gateway) -> None:
    gateway.pages = {None: {"data": [], "has_more": False, "next_cursor": None, "total": 0}}
    done = invoke("models", "--search", "nothing like it")
    assert done.exit_code == 0
    assert done.stdout == ""
    assert "no models match" in done.stderr


def test_model_shows_a_synced_model_and_its_provider_inputs(gateway: Gateway) -> None:
    done = invoke("model", SYNCED["id"])
    assert done.exit_code == 0, done.output
    assert gateway.requests[0].url.raw_path == b"/v1/models/fal:fal-ai/kling-video/v2.1"
    text = done.stdout
    lines = [line.strip() for line in text.splitlines()]
    for shown in ("unpriced", "synced (unmappable)", "no prompt input", "image required"):
        assert shown in text
    assert "image_input, audio" in text
    assert "prompt → text" in text
    cfg = next(line for line in lines if line.startswith("cfg_scale"))
    assert "number" in cfg
    assert "0..1" in cfg
    assert "0.5" in cfg
    style = next(line for line in lines if line.startswith("style"))
    assert "yes" in style
    assert '"anime" "real"' in style
    as_json = json.loads(invoke("model", SYNCED["id"], "--json").stdout)
    assert as_json["synced"]["upstream_id"] == "fal-ai/kling-video/v2.1"


def _finished(gateway: Gateway) -> Callable[[httpx.Request], httpx.Response]:
    """The gateway, plus a job that is done at once and its video's bytes."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/videos/video_1/events":
            return httpx.Response(404, json={"error": {"code": "not_found"}})
        if path == "/v1/videos/video_1":
            return httpx.Response(
                200, json={"id": "video_1", "status": "completed", "progress": 100}
            )
        if path == "/v1/videos/video_1/content":
            return httpx.Response(200, content=b"mp4 bytes")
        return gateway(request)

    return handle


def test_generate_sends_audio_and_provider_params(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    handler = _finished(gateway)

    def client(base_url: str | None = None, api_key: str | None = None) -> Client:
        http = httpx.Client(transport=httpx.MockTransport(handler))
        return Client("http://gateway.test", "rg_k", http_client=http)

    monkeypatch.setattr(cli, "Client", client)
    out = tmp_path / "v.mp4"
    done = invoke(
        "generate",
        "a fox",
        "--model",
        SYNCED["id"],
        "--no-audio",
        "--param",
        "cfg_scale=0.7",
        "--param",
        "style=anime",
        "-p",
        'tags=["a", "b"]',
        "-p",
        "loop=true",
        "-p",
        "note=a=b",
        "-p",
        "empty=",
        "--out",
        str(out),
    )
    assert done.exit_code == 0, done.output
    assert out.read_bytes() == b"mp4 bytes"
    (post,) = [r for r in gateway.requests if r.method == "POST"]
    body = json.loads(post.content)
    assert body["audio"] is False
    assert body["provider_params"] == {
        "cfg_scale": 0.7,
        "style": "anime",
        "tags": ["a", "b"],
        "loop": True,
        "note": "a=b",
        "empty": "",
    }


def test_generate_without_the_new_options_sends_neither(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    handler = _finished(gateway)
    monkeypatch.setattr(
        cli,
        "Client",
        lambda base_url=None, api_key=None: Client(
            "http://gateway.test", http_client=httpx.Client(transport=httpx.MockTransport(handler))
        ),
    )
    done = invoke("generate", "a fox", "-m", "local", "--audio", "--out", str(tmp_path / "v.mp4"))
    assert done.exit_code == 0, done.output
    (post,) = [r for r in gateway.requests if r.method == "POST"]
    assert json.loads(post.content) == {"model": "local", "prompt": "a fox", "audio": True}
    gateway.requests.clear()
    invoke("generate", "a fox", "-m", "local", "--out", str(tmp_path / "w.mp4"))
    (post,) = [r for r in gateway.requests if r.method == "POST"]
    assert json.loads(post.content) == {"model": "local", "prompt": "a fox"}


def test_a_param_without_equals_is_a_usage_error(gateway: Gateway) -> None:
    done = invoke("generate", "a fox", "-m", "local", "--param", "cfg_scale")
    assert done.exit_code == 2
    assert "KEY=VALUE" in done.output
    assert gateway.requests == []
