"""Replicate's wire examples (tests/fixtures/wire/replicate/), held by both sides: the
adapter reads each answer as it is meant; the emulator takes the documented requests and
answers with every key the examples show (same JSON types)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.errors import (
    InvalidRequest,
    ModelGone,
    ProviderError,
    QuotaExceeded,
    Refused,
)
from reelgate.providers.base import GenerationRequest, UpstreamState
from reelgate.providers.http import HttpDeployment
from reelgate.providers.replicate import ReplicateProvider, _signature_matches, sign_webhook
from tests.conftest import LOOPBACK_DOWNLOADS

WIRE = Path(__file__).parents[1] / "fixtures" / "wire" / "replicate"
FIXTURES = sorted(WIRE.glob("*.json"))
KEY = "fixture-replay-key"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WIRE / f"{name}.json").read_text())
    return data


def shape(name: str) -> dict[str, Any]:
    """An example answer without ``input`` (each model has its own input fields)."""
    body: dict[str, Any] = load(name)["body"]
    return {k: v for k, v in body.items() if k != "input"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_example_names_its_source_and_date(path: Path) -> None:
    data = json.loads(path.read_text())
    assert isinstance(data.get("SOURCE"), str) and len(data["SOURCE"]) > 10
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(data.get("date")))
    assert data.get("note")
    assert data.get("direction") in ("request", "response", "doc")
    assert data.get("method") in ("GET", "POST") and data.get("path")
    if data["direction"] == "response":
        assert isinstance(data.get("status"), int)


@dataclass
class Replay:
    server: EmulatorServer
    answer: dict[str, Any] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    box: list[Replay] = []

    async def answer(request: Request) -> Response:
        state = box[0]
        state.seen.append((request.method, request.url.path))
        example = state.answer
        headers = dict(example.get("headers") or {})
        headers.pop("Content-Type", None)
        return JSONResponse(example["body"], status_code=example["status"], headers=headers)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
    server = EmulatorServer(app)
    server.start()
    box.append(Replay(server))
    try:
        yield box[0]
    finally:
        server.stop()


def _request(upstream_model: str = "kwaivgi/kling-v2.5-turbo-pro") -> GenerationRequest:
    return GenerationRequest(
        job_id="job_wire",
        attempt=1,
        model="wire",
        upstream_model=upstream_model,
        prompt="A woman is dancing",
        duration_seconds=5,
        resolution="1080p",
        aspect_ratio="16:9",
        width=1920,
        height=1080,
    )


VERSIONED = "replicate/hello-world:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"

Expect = type[ProviderError] | UpstreamState | str
CASES: list[tuple[str, Expect]] = [
    ("create-response", "created"),
    ("error-401", InvalidRequest),
    ("error-402-credit", QuotaExceeded),
    ("error-404-model", ModelGone),
    ("error-422-invalid-version", ModelGone),
    ("error-422-input", InvalidRequest),
    ("error-429-throttled", QuotaExceeded),
    ("poll-processing", UpstreamState.RUNNING),
    ("poll-succeeded", UpstreamState.SUCCEEDED),
    ("poll-failed-sensitive", Refused),
]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


@pytest.mark.parametrize(("name", "expect"), CASES, ids=[n for n, _ in CASES])
async def test_the_adapter_reads_the_example_as_it_is_meant(
    replay: Replay, name: str, expect: Expect
) -> None:
    example = load(name)
    replay.answer, replay.seen = example, []
    provider = ReplicateProvider(
        HttpDeployment(f"{replay.server.url}/v1", KEY, downloads=LOOPBACK_DOWNLOADS)
    )
    versioned = example["path"] == "/v1/predictions"
    creating = example["method"] == "POST"
    request = _request(VERSIONED if versioned else "kwaivgi/kling-v2.5-turbo-pro")
    try:
        if isinstance(expect, type):
            call = provider.create(request) if creating else provider.status("someid")
            with pytest.raises(expect) as raised:
                await call
            if name == "error-429-throttled":
                assert raised.value.retry_after == 7
            if name.startswith("poll"):
                assert raised.value.terminal
        elif expect == "created":
            assert (await provider.create(request)).upstream_id == example["body"]["id"]
        else:
            status = await provider.status("someid")
            assert status.state is expect
            if expect is UpstreamState.RUNNING:
                assert status.progress == 40
            if expect is UpstreamState.SUCCEEDED:
                assert status.result is not None
                assert status.result.url == example["body"]["output"]
                assert status.result.expires_at is not None
    finally:
        await provider.aclose()
    method, path = replay.seen[-1]
    assert method == example["method"]
    assert _pattern(example["path"]).fullmatch(path), (path, example["path"])


def test_the_documented_secret_verifies_a_signature_made_as_documented() -> None:
    secret = load("webhook-secret")["body"]["key"]
    body = json.dumps(load("poll-succeeded")["body"]).encode()
    stamp = int(time.time())
    signature = sign_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", stamp, body)
    assert signature.startswith("v1,")
    assert _signature_matches(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", str(stamp), body, signature)
    assert not _signature_matches(secret, "msg_other", str(stamp), body, signature)


# -- the emulator answers the documented requests in the documented shapes ----------


def _covers(ours: Any, quoted: Any, where: str = "") -> list[str]:
    if quoted is None or ours is None:
        return []
    if isinstance(quoted, dict):
        if not isinstance(ours, dict):
            return [f"{where or '.'}: an object in the example"]
        missing: list[str] = []
        for key, value in quoted.items():
            if key not in ours:
                missing.append(f"{where}.{key}")
            else:
                missing += _covers(ours[key], value, f"{where}.{key}")
        return missing
    if isinstance(quoted, list):
        if not isinstance(ours, list):
            return [f"{where}: a list in the example"]
        return _covers(ours[0], quoted[0], f"{where}[0]") if ours and quoted else []
    numeric = (int, float)
    same = (isinstance(quoted, bool) == isinstance(ours, bool)) and (
        isinstance(quoted, numeric) == isinstance(ours, numeric)
        and isinstance(quoted, str) == isinstance(ours, str)
    )
    return [] if same else [f"{where}: {type(quoted).__name__} in the example"]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_key=KEY, job_seconds=0.3, video_dir=tmp_path_factory.mktemp("wire-videos")
    )
    with run_emulator("replicate", config) as server:
        yield server


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_the_emulator_takes_both_documented_creates_and_finishes_in_the_documented_shape(
    emulator: EmulatorServer,
) -> None:
    official = load("request-create-official")
    path = official["path"].format(model_owner="kwaivgi", model_name="kling-v2.5-turbo-pro")
    body = dict(official["body"])
    body.pop("webhook")  # nobody listens at example.com
    body.pop("webhook_events_filter")
    created = httpx.post(f"{emulator.url}{path}", json=body, headers=AUTH, timeout=30)
    assert created.status_code == 201, created.text
    assert _covers(created.json(), shape("create-response")) == []
    version = httpx.post(
        f"{emulator.url}/v1/predictions",
        json=load("request-create-version")["body"],
        headers=AUTH,
        timeout=30,
    )
    assert version.status_code == 201, version.text
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(created.json()["urls"]["get"], headers=AUTH).json()
        if answer["status"] == "succeeded":
            break
        assert _covers(answer, shape("poll-processing")) == [] or answer["status"] == "starting"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _covers(answer, shape("poll-succeeded")) == []
    while httpx.get(version.json()["urls"]["get"], headers=AUTH).json()["status"] != "succeeded":
        assert time.monotonic() < deadline  # the list shows both, finished (with metrics)
        time.sleep(0.05)
    listed = httpx.get(f"{emulator.url}/v1/predictions", headers=AUTH).json()
    assert _covers(listed, load("list-response")["body"]) == []
    secret = httpx.get(f"{emulator.url}/v1/webhooks/default/secret", headers=AUTH).json()
    assert secret["key"].startswith("whsec_")


@pytest.mark.parametrize(
    ("name", "prompt", "path"),
    [
        ("error-401", "a", "/v1/predictions"),
        (
            "error-402-credit",
            "[fault:credit] a",
            "/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions",
        ),
        ("error-404-model", "a", "/v1/models/nobody/nothing/predictions"),
        (
            "error-429-throttled",
            "[fault:quota] a",
            "/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions",
        ),
        ("error-422-input", "a", "/v1/models/kwaivgi/kling-v2.5-turbo-pro/predictions"),
    ],
)
def test_the_emulator_answers_errors_in_the_documented_shape(
    emulator: EmulatorServer, name: str, prompt: str, path: str
) -> None:
    example = load(name)
    headers = {} if name == "error-401" else AUTH
    body: dict[str, Any] = {"input": {"prompt": prompt, "duration": 7 if "422" in name else 5}}
    if name == "error-401":
        body = load("request-create-version")["body"]
    answer = httpx.post(f"{emulator.url}{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == example["status"], answer.text
    assert _covers(answer.json(), example["body"]) == []
    if name == "error-429-throttled":
        assert answer.headers["retry-after"]
    if name in ("error-401", "error-422-input"):
        assert answer.headers["content-type"].startswith("application/problem+json")
