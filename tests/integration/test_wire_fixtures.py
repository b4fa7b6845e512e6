"""Wire examples quoted from public sources, held by both sides.

tests/fixtures/wire/<provider>/*.json hold requests and answers copied (or, where
their notes say so, assembled from field definitions) from each provider's public
docs and official SDK source, each with its SOURCE and date. Here:

- every example names its source;
- each adapter, answered by a replay of an example, requests the documented path
  and classifies the answer as the example means it (a retired model is gone, a
  throttle is quota, a finished task is a video...);
- each emulator accepts the documented requests and answers in the documented
  shapes: every key an example shows is in the emulator's answer, with the same
  JSON type (an emulator that drifts from the sources fails here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
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
from reelgate.emulators.veo import GEMINI_RETIRED
from reelgate.errors import (
    InvalidRequest,
    ModelGone,
    ProviderError,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.providers.base import GenerationRequest, Provider, UpstreamState
from reelgate.providers.grok import GrokProvider
from reelgate.providers.http import HttpDeployment
from reelgate.providers.sora import SoraProvider
from reelgate.providers.veo import VeoProvider, VertexVeoProvider
from reelgate.providers.wan import WanProvider
from tests.conftest import LOOPBACK_DOWNLOADS

WIRE = Path(__file__).parents[1] / "fixtures" / "wire"
FIXTURES = sorted(WIRE.glob("*/*.json"))
KEY = "fixture-replay-key"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WIRE / name).read_text())
    return data


# -- provenance -----------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_names_its_source_and_date(path: Path) -> None:
    data = json.loads(path.read_text())
    assert isinstance(data.get("SOURCE"), str) and len(data["SOURCE"]) > 10
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(data.get("date")))
    assert data.get("note"), "say what is verbatim and what is assembled"
    assert data.get("direction") in ("request", "response", "doc")
    if data["direction"] != "doc":
        assert data.get("method") in ("GET", "POST", "DELETE") and data.get("path")
    if data["direction"] == "response":
        assert isinstance(data.get("status"), int)


def test_there_are_examples_for_every_cloud_provider() -> None:
    assert {p.parent.name for p in FIXTURES} >= {
        "veo",
        "vertex_veo",
        "sora",
        "azure_sora",
        "wan",
        "grok",
    }


# -- adapters against replayed examples ---------------------------------------------


@dataclass
class Replay:
    """Answers every request with the example queued last, and records the requests."""

    server: EmulatorServer
    answer: dict[str, Any] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    box: list[Replay] = []

    async def answer(request: Request) -> Response:
        state = box[0]
        state.seen.append((request.method, request.url.path))
        example = state.answer
        headers = {k: v for k, v in (example.get("headers") or {}).items()}
        body = example.get("body")
        if body is None:
            return Response(status_code=example["status"], headers=headers)
        return JSONResponse(body, status_code=example["status"], headers=headers)

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST", "DELETE"])])
    server = EmulatorServer(app)
    server.start()
    box.append(Replay(server))
    try:
        yield box[0]
    finally:
        server.stop()


def _deployment(base: str) -> HttpDeployment:
    return HttpDeployment(base, KEY, timeout_seconds=10, downloads=LOOPBACK_DOWNLOADS)


def _veo(url: str) -> Provider:
    return VeoProvider(_deployment(f"{url}/v1beta"))


def _vertex(url: str) -> Provider:
    return VertexVeoProvider(
        _deployment(f"{url}/v1"), project="example-project", location="us-central1"
    )


ADAPTERS: dict[str, Callable[[str], Provider]] = {
    "veo": _veo,
    "vertex_veo": _vertex,
    "sora": lambda url: SoraProvider(_deployment(f"{url}/v1"), api_style="compatible"),
    "azure_sora": lambda url: SoraProvider(_deployment(f"{url}/openai/v1"), api_style="azure"),
    "wan": lambda url: WanProvider(_deployment(f"{url}/api/v1")),
    "grok": lambda url: GrokProvider(_deployment(f"{url}/v1")),
}

MODELS = {
    "veo": "veo-3.1-generate-preview",
    "vertex_veo": "veo-3.1-generate-001",
    "sora": "sora-2",
    "azure_sora": "sora-2",
    "wan": "wan2.1-t2v-turbo",
    "grok": "grok-imagine-video",
}

# A poll needs an upstream id of the shape the adapter checks: the create examples'.
UPSTREAM_IDS = {
    "veo": "models/veo-3.0-fast-generate-001/operations/321kvdcepmcg",
    "vertex_veo": "projects/example-project/locations/us-central1/publishers/google/models/"
    "veo-3.1-generate-001/operations/a1b07c8e-7b5a-4aba-bb34-3e1ccb8afcc8",
    "sora": "video_123",
    "azure_sora": "video_123",
    "wan": "0385dc79-5ff8-4d82-bcb6-xxxxxx",
    "grok": "d97415a1-5796-b7ec-379f-4e6819e08fdf",
}

Expect = type[ProviderError] | UpstreamState | str
"""An error class; an upstream state; or "created" (an id came back)."""

CASES: list[tuple[str, str, Expect]] = [
    ("veo", "create-response", "created"),
    ("veo", "error-429", QuotaExceeded),
    ("veo", "error-model-retired-404", ModelGone),
    ("veo", "poll-running", UpstreamState.RUNNING),
    ("veo", "poll-done", UpstreamState.SUCCEEDED),
    ("veo", "poll-refused", Refused),
    ("vertex_veo", "create-response", "created"),
    ("vertex_veo", "error-429", QuotaExceeded),
    ("vertex_veo", "error-model-not-found-404", ModelGone),
    ("vertex_veo", "poll-running", UpstreamState.RUNNING),
    ("vertex_veo", "poll-done-gcs", UpstreamState.SUCCEEDED),
    ("vertex_veo", "poll-done-inline", UpstreamState.SUCCEEDED),
    ("vertex_veo", "poll-refused", Refused),
    ("sora", "create-response", "created"),
    ("sora", "error-429", QuotaExceeded),
    ("sora", "error-model-not-found", ModelGone),
    ("sora", "error-400-invalid-seconds", InvalidRequest),
    ("sora", "poll-in-progress", UpstreamState.RUNNING),
    ("sora", "poll-completed", UpstreamState.SUCCEEDED),
    ("sora", "poll-failed-moderation", Refused),
    ("azure_sora", "create-response", "created"),
    ("azure_sora", "error-410-retired", ModelGone),
    ("azure_sora", "error-deployment-not-found", ModelGone),
    ("azure_sora", "error-429", QuotaExceeded),
    ("azure_sora", "poll-in-progress", UpstreamState.RUNNING),
    ("azure_sora", "poll-completed", UpstreamState.SUCCEEDED),
    ("wan", "create-response", "created"),
    ("wan", "error-model-not-exist-400", ModelGone),
    ("wan", "error-model-not-exist-404", ModelGone),
    ("wan", "error-throttling-429", QuotaExceeded),
    ("wan", "error-throttling-ratequota-429", QuotaExceeded),
    ("wan", "error-data-inspection-400", Refused),
    ("wan", "error-invalid-api-key-401", InvalidRequest),
    ("wan", "task-pending", UpstreamState.PENDING),
    ("wan", "task-running", UpstreamState.RUNNING),
    ("wan", "task-succeeded", UpstreamState.SUCCEEDED),
    ("wan", "task-succeeded-wan26", UpstreamState.SUCCEEDED),
    ("wan", "task-failed", ProviderError),
    ("wan", "task-failed-data-inspection", Refused),
    ("wan", "task-unknown", InvalidRequest),
    ("grok", "create-response", "created"),
    ("grok", "error-429-credits", QuotaExceeded),
    ("grok", "error-invalid-api-key-400", InvalidRequest),
    ("grok", "error-model-not-found-404", ModelGone),
    ("grok", "poll-pending", UpstreamState.RUNNING),
    ("grok", "poll-pending-empty", UpstreamState.PENDING),
    ("grok", "poll-done", UpstreamState.SUCCEEDED),
    ("grok", "poll-done-with-usage", UpstreamState.SUCCEEDED),
    ("grok", "poll-done-moderated", Refused),
    ("grok", "poll-failed", ProviderError),
    ("grok", "poll-expired", TransientError),
]


def _path_pattern(template: str) -> re.Pattern[str]:
    """A documented path template (``/v1/videos/{video_id}``) as a regex; the query
    string and the host part of a base are not compared."""
    path = template.split("?")[0]
    parts = re.split(r"(\{[^}]+\})", path)
    regex = "".join(
        (".+" if p == "{operationName}" else "[^/]+") if p.startswith("{") else re.escape(p)
        for p in parts
    )
    return re.compile(regex)


def _request(kind: str) -> GenerationRequest:
    return GenerationRequest(
        job_id="job_wire",
        attempt=1,
        model="wire",
        upstream_model=MODELS[kind],
        prompt="a paper boat on a river",
        duration_seconds=4 if kind in ("sora", "azure_sora", "veo", "vertex_veo") else 5,
        resolution="720p",
        aspect_ratio="16:9",
        width=1280,
        height=720,
    )


@pytest.mark.parametrize(("kind", "name", "expect"), CASES, ids=[f"{k}/{n}" for k, n, _ in CASES])
async def test_the_adapter_reads_the_example_as_it_is_meant(
    replay: Replay, kind: str, name: str, expect: Expect
) -> None:
    example = load(f"{kind}/{name}.json")
    replay.answer, replay.seen = example, []
    provider = ADAPTERS[kind](replay.url)
    creating = example["method"] == "POST" and not name.startswith(("poll", "task"))
    try:
        if isinstance(expect, type):
            call = (
                provider.create(_request(kind)) if creating else provider.status(UPSTREAM_IDS[kind])
            )
            with pytest.raises(expect) as raised:
                await call
            if expect is ProviderError or (name.startswith(("poll", "task")) and kind != "sora"):
                # a finished failure is final: it is never polled again
                assert raised.value.terminal or raised.value.error_class.value == "refused"
        elif expect == "created":
            submitted = await provider.create(_request(kind))
            assert submitted.upstream_id
        else:
            status = await provider.status(UPSTREAM_IDS[kind])
            assert status.state is expect
            if expect is UpstreamState.SUCCEEDED:
                assert status.result is not None and status.result.url
    finally:
        await provider.aclose()
    method, path = replay.seen[-1]
    assert method == example["method"]
    assert _path_pattern(example["path"]).fullmatch(path), (path, example["path"])


# -- emulators answer the documented requests in the documented shapes ---------------


def _covers(ours: Any, quoted: Any, where: str = "") -> list[str]:
    """What of ``quoted`` (an example) ``ours`` (an emulator answer) lacks: every key,
    at every depth, with the same JSON type (null matches anything)."""
    if quoted is None or ours is None:
        return []
    if isinstance(quoted, dict):
        if not isinstance(ours, dict):
            return [f"{where or '.'}: an object in the example"]
        missing = []
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
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EmulatorServer]]:
    videos = tmp_path_factory.mktemp("wire-videos")
    servers: dict[str, EmulatorServer] = {}
    with (
        run_emulator(
            "veo",
            EmulatorConfig(
                api_key=KEY, job_seconds=0.2, video_dir=videos, still_served=GEMINI_RETIRED
            ),
        ) as servers["veo"],
        run_emulator(
            "sora",
            EmulatorConfig(
                api_key=KEY, job_seconds=0.2, video_dir=videos, still_served=frozenset({"sora-2"})
            ),
        ) as servers["sora"],
        run_emulator(
            "wan", EmulatorConfig(api_key=KEY, job_seconds=0.2, video_dir=videos)
        ) as servers["wan"],
        run_emulator(
            "grok", EmulatorConfig(api_key=KEY, job_seconds=0.2, video_dir=videos)
        ) as servers["grok"],
    ):
        yield servers


def _auth(kind: str) -> dict[str, str]:
    if kind == "veo":
        return {"x-goog-api-key": KEY}
    if kind == "azure_sora":
        return {"api-key": KEY}
    return {"Authorization": f"Bearer {KEY}"}


def _send(server: EmulatorServer, kind: str, example: dict[str, Any], model: str) -> httpx.Response:
    path = example["path"].replace("{model}", model).replace("{project}", "example-project")
    path = path.replace("{location}", "us-central1")
    headers = {k: v for k, v in (example.get("headers") or {}).items() if "$" not in v}
    headers.pop("Content-Type", None)
    headers |= _auth(kind)
    body = example["body"]
    if "multipart" in str((example.get("headers") or {}).get("Content-Type")):
        fields = {k: (None, str(v)) for k, v in body.items()}
        return httpx.post(f"{server.url}{path}", files=fields, headers=headers, timeout=30)
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)


SERVER_OF = {
    "veo": "veo",
    "vertex_veo": "veo",
    "sora": "sora",
    "azure_sora": "sora",
    "wan": "wan",
    "grok": "grok",
}

CREATE_REQUESTS = sorted(
    (p.parent.name, p.stem)
    for p in FIXTURES
    if p.stem.startswith("create-request") and load(f"{p.parent.name}/{p.name}")["body"]
)


@pytest.mark.parametrize(
    ("kind", "name"), CREATE_REQUESTS, ids=[f"{k}/{n}" for k, n in CREATE_REQUESTS]
)
def test_the_emulator_takes_the_documented_create_and_answers_its_shape(
    emulators: dict[str, EmulatorServer], kind: str, name: str
) -> None:
    example = load(f"{kind}/{name}.json")
    answer = _send(emulators[SERVER_OF[kind]], kind, example, MODELS[kind])
    assert answer.is_success, (answer.status_code, answer.text)
    documented = load(f"{kind}/create-response.json")["body"]
    assert _covers(answer.json(), documented) == []


DONE = {
    "veo": ("create-request", "poll-done", "GET"),
    "vertex_veo": ("create-request", "poll-done-gcs", "POST"),
    "sora": ("create-request", "poll-completed", "GET"),
    "wan": ("create-request-t2v", "task-succeeded", "GET"),
    "grok": ("create-request-t2v", "poll-done-with-usage", "GET"),
}


@pytest.mark.parametrize("kind", sorted(DONE))
def test_the_emulator_finishes_in_the_documented_shape(
    emulators: dict[str, EmulatorServer], kind: str
) -> None:
    import time

    create, done, method = DONE[kind]
    server = emulators[SERVER_OF[kind]]
    created = _send(server, kind, load(f"{kind}/{create}.json"), MODELS[kind]).json()
    upstream_id = {
        "veo": lambda c: c["name"],
        "vertex_veo": lambda c: c["name"],
        "sora": lambda c: c["id"],
        "wan": lambda c: c["output"]["task_id"],
        "grok": lambda c: c["request_id"],
    }[kind](created)
    example = load(f"{kind}/{done}.json")
    deadline = time.monotonic() + 30
    while True:
        if kind == "vertex_veo":
            resource = upstream_id.rpartition("/operations/")[0]
            answer = httpx.post(
                f"{server.url}/v1/{resource}:fetchPredictOperation",
                json={"operationName": upstream_id},
                headers=_auth(kind),
            )
        else:
            path = {
                "veo": f"/v1beta/{upstream_id}",
                "sora": f"/v1/videos/{upstream_id}",
                "wan": f"/api/v1/tasks/{upstream_id}",
                "grok": f"/v1/videos/{upstream_id}",
            }[kind]
            answer = httpx.get(f"{server.url}{path}", headers=_auth(kind))
        body = answer.json() if answer.content else {}
        finished = (
            body.get("done")
            or body.get("status") in ("completed", "done")
            or body.get("output", {}).get("task_status") == "SUCCEEDED"
        )
        if finished:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert answer.status_code == example["status"] and method == example["method"]
    assert _covers(body, example["body"]) == []
