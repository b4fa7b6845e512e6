"""fal's wire examples (tests/fixtures/wire/fal/), held by the adapter and the emulator.

As in test_wire_fixtures.py: the adapter, answered by a replay of an example, calls the
documented path and reads the answer as the example means it; the emulator takes the
documented submits and answers in the documented shapes (every key an example shows, with
the same JSON type); the documented webhook bodies are what the emulator sends.
"""

from __future__ import annotations

import json
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
from reelgate.emulators.fal import emulator_of
from reelgate.errors import InvalidRequest, ProviderError, QuotaExceeded, Refused, TransientError
from reelgate.providers.base import GenerationRequest, UpstreamState
from reelgate.providers.fal import FalProvider
from reelgate.providers.http import HttpDeployment
from tests.conftest import LOOPBACK_DOWNLOADS
from tests.integration.test_wire_fixtures import _covers, _path_pattern

WIRE = Path(__file__).parents[1] / "fixtures" / "wire" / "fal"
KEY = "fixture-replay-key"
UPSTREAM_ID = "fal-ai/bytedance/requests/80e732af-660e-45cd-bd63-580e4f2a94cc"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WIRE / f"{name}.json").read_text())
    return data


def test_every_fal_example_names_its_source() -> None:
    names = sorted(p.stem for p in WIRE.glob("*.json"))
    assert len(names) >= 15
    for name in names:
        data = load(name)
        assert "SOURCE" in data and len(data["SOURCE"]) > 10 and data.get("note")
        assert not name.startswith("create-request")  # the shared test keys those by kind


@dataclass
class Replay:
    server: EmulatorServer
    answers: list[dict[str, Any]] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    box: list[Replay] = []

    async def answer(request: Request) -> Response:
        state = box[0]
        state.seen.append((request.method, request.url.path))
        example = state.answers.pop(0) if len(state.answers) > 1 else state.answers[0]
        headers = dict(example.get("headers") or {})
        return JSONResponse(example["body"], status_code=example["status"], headers=headers)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST", "PUT"])])
    server = EmulatorServer(app)
    server.start()
    box.append(Replay(server))
    try:
        yield box[0]
    finally:
        server.stop()


def _request(app: str) -> GenerationRequest:
    return GenerationRequest(
        job_id="job_wire",
        attempt=1,
        model="wire",
        upstream_model=app,
        prompt="a paper boat on a river",
        duration_seconds=5,
        resolution="720p",
        aspect_ratio="16:9",
        width=1280,
        height=720,
    )


def _provider(url: str) -> FalProvider:
    return FalProvider(HttpDeployment(url, KEY, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS))


async def test_the_submit_answer_is_a_request_under_the_apps_owner_and_alias(
    replay: Replay,
) -> None:
    replay.answers, replay.seen = [load("submit-response")], []
    provider = _provider(replay.server.url)
    try:
        submitted = await provider.create(
            _request("fal-ai/kling-video/v2.5-turbo/pro/text-to-video")
        )
    finally:
        await provider.aclose()
    assert submitted.upstream_id == (
        "fal-ai/kling-video/requests/80e732af-660e-45cd-bd63-580e4f2a94cc"
    )
    assert replay.seen == [("POST", "/fal-ai/kling-video/v2.5-turbo/pro/text-to-video")]


@pytest.mark.parametrize(
    ("answers", "expect"),
    [
        (["status-in-queue"], UpstreamState.PENDING),
        (["status-in-progress"], UpstreamState.RUNNING),
        (["status-completed", "result-video"], UpstreamState.SUCCEEDED),
        (["status-completed", "error-422-content-policy"], Refused),
        (["status-completed", "error-504-request-timeout"], TransientError),
    ],
)
async def test_the_adapter_reads_status_and_result_as_they_are_meant(
    replay: Replay, answers: list[str], expect: UpstreamState | type[ProviderError]
) -> None:
    replay.answers, replay.seen = [load(a) for a in answers], []
    provider = _provider(replay.server.url)
    try:
        if isinstance(expect, type):
            with pytest.raises(expect) as raised:
                await provider.status(UPSTREAM_ID)
            if expect is Refused:
                assert raised.value.terminal
                assert raised.value.details["flagged"] == "prompt"
        else:
            status = await provider.status(UPSTREAM_ID)
            assert status.state is expect
            if expect is UpstreamState.SUCCEEDED:
                assert status.result is not None
                assert status.result.url == "https://v3.fal.media/files/panda/example_output.mp4"
                assert status.extra["seed"] == 42
            if expect is UpstreamState.PENDING:
                assert status.extra["queue_position"] == 0
    finally:
        await provider.aclose()
    assert replay.seen[0] == ("GET", f"/{UPSTREAM_ID}/status")
    if len(answers) > 1:
        assert replay.seen[1] == ("GET", f"/{UPSTREAM_ID}")


@pytest.mark.parametrize(
    ("name", "expect", "code"),
    [
        ("error-401-bad-key", InvalidRequest, "upstream_auth"),
        ("error-403-exhausted-balance", QuotaExceeded, "upstream_credits"),
    ],
)
async def test_the_adapter_classifies_the_submit_errors(
    replay: Replay, name: str, expect: type[ProviderError], code: str
) -> None:
    replay.answers, replay.seen = [load(name)], []
    provider = _provider(replay.server.url)
    try:
        with pytest.raises(expect) as raised:
            await provider.create(_request("fal-ai/veo3.1"))
    finally:
        await provider.aclose()
    assert raised.value.code == code
    method, path = replay.seen[-1]
    assert method == "POST" and path == "/fal-ai/veo3.1"


@pytest.mark.parametrize("name", ["cancel-accepted", "cancel-already-completed"])
async def test_cancel_takes_both_documented_answers(replay: Replay, name: str) -> None:
    replay.answers, replay.seen = [load(name)], []
    provider = _provider(replay.server.url)
    try:
        await provider.cancel(UPSTREAM_ID)
    finally:
        await provider.aclose()
    assert replay.seen == [("PUT", f"/{UPSTREAM_ID}/cancel")]


# -- the emulator -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        api_key=KEY, job_seconds=0.3, video_dir=tmp_path_factory.mktemp("fal-wire")
    )
    with run_emulator("fal", config) as server:
        yield server


@pytest.mark.parametrize("name", ["submit-request-kling-t2v", "submit-request-veo31-i2v"])
def test_the_emulator_takes_the_documented_submit_and_finishes_in_the_documented_shapes(
    emulator: EmulatorServer, name: str
) -> None:
    example = load(name)
    auth = {"Authorization": f"Key {KEY}"}
    answer = httpx.post(f"{emulator.url}{example['path']}", json=example["body"], headers=auth)
    assert answer.status_code == 200, answer.text
    created = answer.json()
    assert _covers(created, load("submit-response")["body"]) == []
    status_url = created["status_url"]
    owner_alias = "/".join(example["path"].strip("/").split("/")[:2])
    assert _path_pattern(f"/{owner_alias}/requests/{{request_id}}/status").fullmatch(
        httpx.URL(status_url).path
    )
    first = httpx.get(status_url, params={"logs": "1"}, headers=auth)
    assert first.status_code == 202
    if first.json()["status"] == "IN_QUEUE":  # a busy machine may poll after the queue
        assert _covers(first.json(), load("status-in-queue")["body"]) == []
    # and one held in the queue ([fault:queued]) has the documented shape, however late
    held = {**example["body"], "prompt": f"{example['body']['prompt']} [fault:queued]"}
    waiting = httpx.post(f"{emulator.url}{example['path']}", json=held, headers=auth).json()
    in_queue = httpx.get(waiting["status_url"], params={"logs": "1"}, headers=auth)
    assert in_queue.status_code == 202
    assert _covers(in_queue.json(), load("status-in-queue")["body"]) == []
    deadline = time.monotonic() + 20
    while True:
        polled = httpx.get(status_url, params={"logs": "1"}, headers=auth)
        body = polled.json()
        if body["status"] == "IN_PROGRESS":
            assert polled.status_code == 202
            assert _covers(body, load("status-in-progress")["body"]) == [
                ".logs[0].labels"
            ]  # the emulator's log lines carry level/source, not labels
        if body["status"] == "COMPLETED":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert polled.status_code == 200
    assert _covers(body, load("status-completed")["body"]) == [".logs[0].labels"]
    result = httpx.get(created["response_url"], headers=auth)
    assert result.status_code == 200
    assert _covers(result.json(), load("result-video")["body"]) == []


def test_the_emulators_errors_have_fals_shapes(emulator: EmulatorServer) -> None:
    wrong = httpx.post(
        f"{emulator.url}/fal-ai/veo3.1",
        json={"prompt": "x"},
        headers={"Authorization": "Key wrong:key"},
    )
    assert (wrong.status_code, wrong.json()) == (401, load("error-401-bad-key")["body"])
    auth = {"Authorization": f"Key {KEY}"}
    locked = httpx.post(
        f"{emulator.url}/fal-ai/veo3.1", json={"prompt": "[fault:credits] x"}, headers=auth
    )
    assert (locked.status_code, locked.json()) == (
        403,
        load("error-403-exhausted-balance")["body"],
    )
    created = httpx.post(
        f"{emulator.url}/fal-ai/veo3.1", json={"prompt": "[fault:queued] x"}, headers=auth
    ).json()
    canceled = httpx.put(created["cancel_url"], headers=auth)  # still queued: accepted
    assert (canceled.status_code, canceled.json()) == (202, load("cancel-accepted")["body"])
    again = httpx.put(created["cancel_url"], headers=auth)
    assert (again.status_code, again.json()) == (400, load("cancel-already-completed")["body"])


def test_the_emulators_webhook_bodies_have_the_documented_keys(emulator: EmulatorServer) -> None:
    fal = emulator_of(emulator)
    auth = {"Authorization": f"Key {KEY}"}
    for prompt, example in (("ok", "webhook-ok"), ("[fault:refuse] no", "webhook-error")):
        created = httpx.post(
            f"{emulator.url}/fal-ai/veo3.1", json={"prompt": prompt}, headers=auth
        ).json()
        time.sleep(0.4)
        body = json.loads(fal.webhook_body(fal.jobs[created["request_id"]]))
        documented = load(example)["body"]
        assert set(documented) <= set(body)
        assert body["status"] == documented["status"]
        if example == "webhook-error":
            assert body["error"] == documented["error"]
