"""A stand-in for fal.ai's queue (``queue.fal.run``), its result files and its webhooks.

The emulator's root plays ``https://queue.fal.run``::

    POST /{app_id...}[?fal_webhook=<url>]          -> {"request_id", "response_url",
                                                       "status_url", "cancel_url"}
    GET  /{owner}/{alias}/requests/{id}/status     -> 202 IN_QUEUE (queue_position)
                                                      202 IN_PROGRESS (logs with ?logs=1)
                                                      200 COMPLETED (error on failure)
    GET  /{owner}/{alias}/requests/{id}            -> the app's output, or its error
    PUT  /{owner}/{alias}/requests/{id}/cancel     -> 202 CANCELLATION_REQUESTED
                                                      400 ALREADY_COMPLETED
    GET  /files/{id}/{name}.mp4                    the public result file (fal.media's shape)
    GET  /.well-known/jwks.json                    its webhook key (rest.alpha.fal.ai's shape)
    GET  /v1/models?category&status&q&endpoint_id&expand=openapi-3.0&limit&cursor
                                                   fal's Platform API model list
                                                   (api.fal.ai's shape), paged by cursor
    GET  /api/openapi/queue/openapi.json?endpoint_id=<id>
                                                   one endpoint's OpenAPI document

The model list and the documents are ``catalog``: the endpoints saved from fal's
Platform API (``emulators/recorded/fal``, each with its SOURCE). A test changes or
removes one (``set_record``, ``remove``) to play fal changing or dropping a model: a
removed endpoint leaves the list and its submits answer 404. A submit to a recorded
endpoint that is not in ``APP_SCHEMAS`` is checked against its saved schema with
``jsonschema`` (unknown inputs refused, as below) and answers the same pydantic-style 422.

Status, result and cancel live under the app's owner/alias only, never its sub-path
(fal's queue docs); a sub-path there answers 404. The apps and their inputs are the
emulator's own table, ``APP_SCHEMAS``, written from fal's published schemas (the fal-js
client's generated ``endpoints.ts`` and fal's model pages, each entry with its source)
and never from the adapter's table, so an adapter mistake shows as fal's answer would: a
missing required input, an unknown input, a wrong JSON type ("5" for 5), a value outside
an app's enum or bounds answers 422 with a pydantic-style ``detail`` list
(``{"loc": ["body", field], "msg", "type", "input"}``), as fal's apps do. The output's
length, resolution and shape come from the app's own inputs (``duration`` "5" or "8s",
``num_frames``...) or the app's defaults; an image sent as a data URI keeps its shape. An
app not in the table answers 404. A missing or wrong ``Authorization: Key`` gets fal's
401 ``{"detail": "No user found for Key ID and Secret"}``.

Webhooks: a request submitted with ``fal_webhook`` is POSTed to that URL when it ends,
``{"request_id", "gateway_request_id", "status": "OK"|"ERROR", "payload", "error"?}``,
signed as fal signs (ED25519 over ``request_id\\nuser_id\\ntimestamp\\nsha256hex(body)``,
hex, in ``X-Fal-Webhook-*`` headers) with a key pair made at start, whose public half
is served at ``/.well-known/jwks.json``; delivery is retried a few times.

Fault keywords (see ``emulators.base``) map to fal's own signals:

    refuse         the request ends in error: result 422 ``content_policy_violation``
                   on ``prompt`` (webhook ERROR "Invalid status code: 422")
    refuse-image   the same on ``image_url``
    quota          429 at submit, ``{"detail": ...}`` + Retry-After
    credits        403 "User is locked. Reason: Exhausted balance..." (an extra)
    5xx            the first two calls for the prompt answer 503
    malformed      the first status poll answers 200 with an HTML page
    never          IN_PROGRESS forever
    queued         IN_QUEUE forever (no runner free: a cancel is accepted)
    fail           the request ends in error: result 500 ``internal_server_error``
    expire         the result file answers 404 after its first download
    slow, truncate, notvideo   applied to the result download
    slow-create    the submit's answer comes late
    nohook         no webhook is sent

Shapes not confirmed from fal's own sources are listed in docs/providers/fal.md. The
emulator never records the Authorization header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reelgate.emulators.base import (
    EmulatorConfig,
    EmulatorServer,
    Refusal,
    answer_late,
    elapsed_fraction,
    faults_in,
    trickle,
)
from reelgate.emulators.recorded import RecordedInput, fal_records, output_shape

__all__ = ["FalEmulator", "create_app", "emulator_of"]

USER_ID = "emulated-fal-user"
QUEUED_FRACTION = 0.3
"""The first part of a job's time it spends IN_QUEUE (positions counting down)."""
START_POSITION = 3
WEBHOOK_ATTEMPTS = 4
WEBHOOK_BACKOFF = (0.2, 0.5, 1.0)
"""fal retries a failed delivery "10 times in the span of 2 hours"; the emulator, a few
times quickly."""
BAD_KEY = "No user found for Key ID and Secret"
BAD_HEADER = "Invalid Key Authorization header format"
EXHAUSTED = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing"
)

_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
_REQUEST_PATH = re.compile(r"/(?P<base>.+?)/requests/(?P<id>[\w-]+)(?P<tail>/status|/cancel)?")
_NOT_A_VIDEO = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>\n" * 64

# -- the apps' inputs, from fal's published schemas ----------------------------------
#
# Written from fal's public sources, NOT from the adapter's table: an adapter mistake (a
# misnamed input, "5" sent as 5, "8" where the app wants "8s", a resolution outside the
# enum) must come back as the 422 fal's app would answer. Each entry names its source:
# the input type the fal-js client generates from the app's OpenAPI schema (the
# generator names a type once and aliases apps with the same schema to it) and, where
# the search corpus held one, the app's fal.ai model page (ranges the types leave out).
#
# Unknown inputs answer 422 ``extra_forbidden``: stricter than fal may be (its apps are
# pydantic models; whether they ignore extras is not stated in these sources), on
# purpose, so a misnamed optional input cannot pass silently as the app's default.

_FALJS = "fal-ai/fal-js@381105e138b85502b528fb8f6c16d909e30e462a libs/client/src/types/endpoints.ts"
_PAGE = "https://fal.ai/models/{}/llms.txt"

FieldType = Literal["string", "integer", "number", "boolean", "enum", "file", "array"]


@dataclass(frozen=True)
class Field:
    """One input of an app: JSON type, enum, default, bounds."""

    type: FieldType
    default: Any = None
    """None: optional with no default (null accepted), or required."""
    values: tuple[str, ...] = ()
    """For ``enum``: the Literal values, as strings."""
    required: bool = False
    ge: float | None = None
    le: float | None = None


@dataclass(frozen=True)
class AppSchema:
    """One fal app's input, and what its output is rendered from."""

    app_id: str
    fields: dict[str, Field]
    source: str
    image: str | None = None
    """The input whose picture decides the output's shape (decoded when a data URI)."""
    native_resolution: str = "720p"
    """The output's resolution when the app has no ``resolution`` input."""
    fps: int = 24
    """Frames per second, for an app whose length is ``num_frames``."""
    output_prompt: bool = False
    """The output repeats ``prompt`` (LTX's ``ExtendVideoOutput``)."""


def _str(default: str | None = None) -> Field:
    return Field("string", default)


def _int(default: int | None = None, *, ge: float | None = None, le: float | None = None) -> Field:
    return Field("integer", default, ge=ge, le=le)


def _num(
    default: float | None = None, *, ge: float | None = None, le: float | None = None
) -> Field:
    return Field("number", default, ge=ge, le=le)


def _bool(default: bool | None = None) -> Field:
    return Field("boolean", default)


def _one_of(*values: str, default: str | None = None) -> Field:
    return Field("enum", default, values=values)


def _file(*, required: bool = False) -> Field:
    """A file input: on the wire a URL or a data URI (fal-js types it ``string | Blob |
    File``; its client uploads a Blob and sends the URL)."""
    return Field("file", required=required)


PROMPT = Field("string", required=True)

# Kling 2.5 Turbo Pro. t2v: KlingVideoV15ProTextToVideoInput (the generated alias of
# KlingVideoV25TurboProTextToVideoInput); i2v: KlingVideoV21ProImageToVideoInput (alias of
# KlingVideoV25TurboProImageToVideoInput) and the i2v model page (cfg_scale 0 to 1). No
# resolution input: the output is taken as 1080p (Kling's marketing, not a schema).
_KLING = {
    "prompt": PROMPT,
    "duration": _one_of("5", "10", default="5"),
    "negative_prompt": _str("blur, distort, and low quality"),
    "cfg_scale": _num(0.5, ge=0, le=1),
}
# Seedance 1.0 Pro. t2v: SeedanceProTextToVideoInput; i2v: SeedanceImageToVideoInput.
_SEEDANCE_RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
_SEEDANCE = {
    "prompt": PROMPT,
    "camera_fixed": _bool(False),
    "duration": _one_of(*(str(s) for s in range(2, 13)), default="5"),
    "enable_safety_checker": _bool(True),
    "num_frames": _int(ge=1),  # "If provided, will override duration."
    "seed": _int(),  # "Use -1 for random."
}
# MiniMax Hailuo 02 Standard. t2v: StandardTextToVideoHailuo02Input (no resolution
# input: 768P taken from its i2v sibling's default); i2v: StandardImageToVideoHailuo02Input.
_HAILUO = {
    "prompt": PROMPT,
    "duration": _one_of("6", "10", default="6"),
    "prompt_optimizer": _bool(True),
}
# Luma Ray 2. t2v: LumaDreamMachineRay2Input; i2v: LumaDreamMachineRay2ImageToVideoInput
# (its image_url is optional: "Can be used together with end_image_url").
_LUMA = {
    "prompt": PROMPT,
    "aspect_ratio": _one_of("16:9", "9:16", "4:3", "3:4", "21:9", "9:21", default="16:9"),
    "duration": _one_of("5s", "9s", default="5s"),
    "loop": _bool(False),
    "resolution": _one_of("540p", "720p", "1080p", default="540p"),
}
# LTX Video 13B 0.9.8 distilled. t2v: Ltxv13b098DistilledInput; i2v:
# DistilledImageToVideoInput (alias of Ltxv13b098DistilledImageToVideoInput). The types
# give no bounds for num_frames; 9 to 1441 is from the sibling app's page,
# fal.ai/models/fal-ai/ltxv-13b-098-distilled/extend/llms.txt (same input names).
_LTX = {
    "prompt": PROMPT,
    "enable_detail_pass": _bool(False),
    "enable_safety_checker": _bool(True),
    "expand_prompt": _bool(False),
    "first_pass_num_inference_steps": _int(8),
    "frame_rate": _int(24),
    "loras": Field("array", []),
    "negative_prompt": _str("worst quality, inconsistent motion, blurry, jittery, distorted"),
    "num_frames": _int(121, ge=9, le=1441),
    "resolution": _one_of("480p", "720p", default="720p"),
    "reverse_video": _bool(False),
    "second_pass_num_inference_steps": _int(8),
    "second_pass_skip_initial_steps": _int(5),
    "seed": _int(),
    "temporal_adain_factor": _num(0.5),
    "tone_map_compression_ratio": _num(0.0),
}
# PixVerse v5. t2v: PixverseV4TextToVideoInput (alias of PixverseV5TextToVideoInput);
# i2v: PixverseV5ImageToVideoInput (no aspect_ratio).
_PIXVERSE = {
    "prompt": PROMPT,
    "duration": _one_of("5", "8", default="5"),
    "negative_prompt": _str(""),
    "resolution": _one_of("360p", "540p", "720p", "1080p", default="720p"),
    "seed": _int(),
    "style": _one_of("anime", "3d_animation", "clay", "comic", "cyberpunk"),
}
# Wan 2.5 preview. t2v: Wan25PreviewTextToVideoInput; i2v: Wan25PreviewImageToVideoInput
# (no aspect_ratio; image_url "publicly accessible or base64 data URI").
_WAN = {
    "prompt": PROMPT,
    "audio_url": _file(),
    "duration": _one_of("5", "10", default="5"),
    "enable_prompt_expansion": _bool(True),
    "enable_safety_checker": _bool(True),
    "negative_prompt": _str(),
    "resolution": _one_of("480p", "720p", "1080p", default="1080p"),
    "seed": _int(),
}
# Veo 3.1 and Veo 3.1 Fast. t2v: Veo31Input (Veo31FastInput is its alias); i2v:
# Veo31ImageToVideoInput (Veo31FastImageToVideoInput is its alias); the model page
# fal.ai/models/fal-ai/veo3.1/llms.txt.
_VEO = {
    "prompt": PROMPT,
    "duration": _one_of("4s", "6s", "8s", default="8s"),
    "generate_audio": _bool(True),
    "negative_prompt": _str(),
    "resolution": _one_of("720p", "1080p", "4k", default="720p"),
    "safety_tolerance": _one_of("1", "2", "3", "4", "5", "6", default="4"),
    "seed": _int(),
}
_VEO_T2V = _VEO | {"aspect_ratio": _one_of("16:9", "9:16", default="16:9"), "auto_fix": _bool(True)}
_VEO_I2V = _VEO | {
    "aspect_ratio": _one_of("auto", "16:9", "9:16", default="auto"),
    "auto_fix": _bool(),
    "image_url": _file(required=True),
}

_SCHEMAS = (
    AppSchema(
        "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
        _KLING | {"aspect_ratio": _one_of("16:9", "9:16", "1:1", default="16:9")},
        source=f"{_FALJS} KlingVideoV15ProTextToVideoInput",
        native_resolution="1080p",
    ),
    AppSchema(
        "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
        _KLING | {"image_url": _file(required=True), "tail_image_url": _file()},
        source=f"{_FALJS} KlingVideoV21ProImageToVideoInput; "
        + _PAGE.format("fal-ai/kling-video/v2.5-turbo/pro/image-to-video"),
        image="image_url",
        native_resolution="1080p",
    ),
    AppSchema(
        "fal-ai/bytedance/seedance/v1/pro/text-to-video",
        _SEEDANCE
        | {
            "aspect_ratio": _one_of(*_SEEDANCE_RATIOS, default="16:9"),
            "resolution": _one_of("480p", "720p", "1080p", default="1080p"),
        },
        source=f"{_FALJS} SeedanceProTextToVideoInput",
    ),
    AppSchema(
        "fal-ai/bytedance/seedance/v1/pro/image-to-video",
        _SEEDANCE
        | {
            "aspect_ratio": _one_of(*_SEEDANCE_RATIOS, "auto", default="auto"),
            "resolution": _one_of("480p", "720p", "1080p", default="720p"),
            "image_url": _file(required=True),
            "end_image_url": _file(),  # deprecated: "accepted ... and ignored"
        },
        source=f"{_FALJS} SeedanceImageToVideoInput",
        image="image_url",
    ),
    AppSchema(
        "fal-ai/minimax/hailuo-02/standard/text-to-video",
        _HAILUO,
        source=f"{_FALJS} StandardTextToVideoHailuo02Input",
        native_resolution="768P",
    ),
    AppSchema(
        "fal-ai/minimax/hailuo-02/standard/image-to-video",
        _HAILUO
        | {
            "image_url": _file(required=True),
            "end_image_url": _file(),
            "resolution": _one_of("512P", "768P", default="768P"),
        },
        source=f"{_FALJS} StandardImageToVideoHailuo02Input",
        image="image_url",
    ),
    AppSchema(
        "fal-ai/luma-dream-machine/ray-2",
        _LUMA,
        source=f"{_FALJS} LumaDreamMachineRay2Input",
    ),
    AppSchema(
        "fal-ai/luma-dream-machine/ray-2/image-to-video",
        _LUMA | {"image_url": _file(), "end_image_url": _file()},
        source=f"{_FALJS} LumaDreamMachineRay2ImageToVideoInput",
        image="image_url",
    ),
    AppSchema(
        "fal-ai/ltxv-13b-098-distilled",
        _LTX | {"aspect_ratio": _one_of("9:16", "1:1", "16:9", default="16:9")},
        source=f"{_FALJS} Ltxv13b098DistilledInput; "
        + _PAGE.format("fal-ai/ltxv-13b-098-distilled/extend"),
        output_prompt=True,
    ),
    AppSchema(
        "fal-ai/ltxv-13b-098-distilled/image-to-video",
        _LTX
        | {
            "aspect_ratio": _one_of("9:16", "1:1", "16:9", "auto", default="auto"),
            "constant_rate_factor": _int(29),
            "image_url": _file(required=True),
        },
        source=f"{_FALJS} DistilledImageToVideoInput; "
        + _PAGE.format("fal-ai/ltxv-13b-098-distilled/extend"),
        image="image_url",
        output_prompt=True,
    ),
    AppSchema(
        "fal-ai/pixverse/v5/text-to-video",
        _PIXVERSE | {"aspect_ratio": _one_of("16:9", "4:3", "1:1", "3:4", "9:16", default="16:9")},
        source=f"{_FALJS} PixverseV4TextToVideoInput",
    ),
    AppSchema(
        "fal-ai/pixverse/v5/image-to-video",
        _PIXVERSE | {"image_url": _file(required=True)},
        source=f"{_FALJS} PixverseV5ImageToVideoInput",
        image="image_url",
    ),
    AppSchema(
        "fal-ai/wan-25-preview/text-to-video",
        _WAN | {"aspect_ratio": _one_of("16:9", "9:16", "1:1", default="16:9")},
        source=f"{_FALJS} Wan25PreviewTextToVideoInput",
    ),
    AppSchema(
        "fal-ai/wan-25-preview/image-to-video",
        _WAN | {"image_url": _file(required=True)},
        source=f"{_FALJS} Wan25PreviewImageToVideoInput",
        image="image_url",
    ),
    AppSchema(
        "fal-ai/veo3.1",
        _VEO_T2V,
        source=f"{_FALJS} Veo31Input; " + _PAGE.format("fal-ai/veo3.1"),
    ),
    AppSchema(
        "fal-ai/veo3.1/image-to-video",
        _VEO_I2V,
        source=f"{_FALJS} Veo31ImageToVideoInput; " + _PAGE.format("fal-ai/veo3.1"),
        image="image_url",
    ),
    AppSchema(
        "fal-ai/veo3.1/fast",
        _VEO_T2V,
        source=f"{_FALJS} Veo31FastInput = Veo31Input",
    ),
    AppSchema(
        "fal-ai/veo3.1/fast/image-to-video",
        _VEO_I2V,
        source=f"{_FALJS} Veo31FastImageToVideoInput = Veo31ImageToVideoInput",
        image="image_url",
    ),
)
APP_SCHEMAS: dict[str, AppSchema] = {s.app_id: s for s in _SCHEMAS}
"""The apps the emulator serves, by app id; any other answers 404."""

APP_NAMESPACES = ("workflows", "comfy")
"""fal_client ``APP_NAMESPACES`` (fal-ai/fal projects/fal_client/src/fal_client/client.py):
ids under these carry one more path part."""


def _app_base(app_id: str) -> str:
    """``{namespace/}{owner}/{alias}``, where an app's requests live (fal_client
    ``AppId.from_endpoint_id``; the queue docs: the sub-path is used "when making the
    request, but not when getting request status or results")."""
    parts = [p for p in app_id.strip("/").split("/") if p]
    keep = 3 if parts and parts[0] in APP_NAMESPACES and len(parts) >= 3 else 2
    return "/".join(parts[:keep])


@dataclass
class _Job:
    id: str
    app_id: str
    prompt: str
    seconds: int
    width: int
    height: int
    faults: frozenset[str]
    webhook: str | None
    seed: int
    created: float = field(default_factory=time.monotonic)
    render_seconds: float = 2.0
    """How long this request takes (``EmulatorConfig.seconds_for`` its prompt)."""
    canceled: bool = False
    polls: int = 0
    result_reads: int = 0
    downloads: int = 0
    echo_prompt: bool = False

    @property
    def base(self) -> str:
        return _app_base(self.app_id)


@dataclass
class Delivery:
    """One webhook attempt, as the emulator made it."""

    request_id: str
    url: str
    attempt: int
    status_code: int | None
    body: bytes


class FalEmulator:
    """In-memory requests that finish ``config.job_seconds`` after their submit (or as
    ``[render:SECONDS]`` in the prompt says)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.videos = config.videos()
        self.jobs: dict[str, _Job] = {}
        self.received: list[dict[str, Any]] = []
        """Every submit, ``{"app_id", "input", "fal_webhook"}`` (tests assert on names)."""
        self.calls: list[tuple[str, str, str | None]] = []
        """(method, path, request id) of every queue call, in order."""
        self.deliveries: list[Delivery] = []
        self.signing_key = Ed25519PrivateKey.generate()
        self.key_id = uuid.uuid4().hex[:16]
        self._calls_by_prompt: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.catalog: dict[str, dict[str, Any]] = fal_records()
        """The endpoints fal's Platform API lists, by endpoint id (``set_record``)."""
        self._inputs: dict[str, RecordedInput] = {}

    def set_record(self, endpoint_id: str, record: dict[str, Any]) -> None:
        """Serve ``record`` (the saved shape: endpoint_id, category, display_name,
        openapi) for ``endpoint_id``: a new or changed model at fal."""
        self.catalog[endpoint_id] = record
        self._inputs.pop(endpoint_id, None)

    def remove(self, endpoint_id: str) -> None:
        """fal drops the endpoint: gone from the list, its submits answer 404."""
        self.catalog.pop(endpoint_id, None)
        self._inputs.pop(endpoint_id, None)

    def recorded_input(self, endpoint_id: str) -> RecordedInput | None:
        record = self.catalog.get(endpoint_id)
        if record is None:
            return None
        if endpoint_id not in self._inputs:
            doc = record["openapi"]
            post = doc["paths"][f"/{endpoint_id}"]["post"]
            ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            self._inputs[endpoint_id] = RecordedInput(doc, ref.removeprefix("#"))
        return self._inputs[endpoint_id]

    # -- the Platform API -------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models`` as fal's Platform API answers it: ``{"models", "next_cursor",
        "has_more"}``; each model ``{"endpoint_id", "metadata", "openapi"?}``."""
        q = request.query_params
        self.calls.append(("GET", request.url.path, None))
        wanted = set(q.getlist("endpoint_id"))
        category = q.get("category")
        status = q.get("status")
        text = (q.get("q") or "").lower()
        found = [
            r
            for eid, r in sorted(self.catalog.items())
            if (not wanted or eid in wanted)
            and (category is None or r["category"] == category)
            and (status is None or status == "active")
            and (not text or text in eid.lower() or text in r["display_name"].lower())
        ]
        try:
            limit = max(1, min(int(q.get("limit") or 50), 100))
            start = int(base64.b64decode(q["cursor"]).decode()) if q.get("cursor") else 0
        except (ValueError, binascii.Error):
            return _detail(400, "Invalid cursor or limit")
        page = found[start : start + limit]
        expand = "openapi-3.0" in q.getlist("expand")
        more = start + limit < len(found)
        return JSONResponse(
            {
                "models": [
                    {
                        "endpoint_id": r["endpoint_id"],
                        "metadata": {
                            "display_name": r["display_name"],
                            "category": r["category"],
                            "description": r.get("description", ""),
                            "status": "active",
                        },
                        **({"openapi": r["openapi"]} if expand else {}),
                    }
                    for r in page
                ],
                "next_cursor": base64.b64encode(str(start + limit).encode()).decode()
                if more
                else None,
                "has_more": more,
            }
        )

    async def openapi_document(self, request: Request) -> Response:
        """``GET /api/openapi/queue/openapi.json?endpoint_id=<id>`` (no key needed)."""
        endpoint_id = request.query_params.get("endpoint_id", "")
        self.calls.append(("GET", request.url.path, None))
        record = self.catalog.get(endpoint_id)
        if record is None:
            return _detail(404, f"Endpoint '{endpoint_id}' not found")
        return JSONResponse(record["openapi"])

    def polls(self, request_id: str) -> int:
        """Status GETs answered for a request."""
        return sum(
            1 for m, p, r in self.calls if r == request_id and m == "GET" and p.endswith("/status")
        )

    # -- queue ------------------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        if (denied := self._auth_failure(request)) is not None:
            return denied
        app_id = request.path_params["app_id"].strip("/")
        self.calls.append(("POST", request.url.path, None))
        schema = APP_SCHEMAS.get(app_id)
        recorded = self.recorded_input(app_id) if schema is None else None
        if schema is None and recorded is None:
            return _detail(404, f"Application '{app_id}' not found")
        try:
            body = await request.json()
        except ValueError:
            return _validation([_err(("body",), "JSON decode error", "json_invalid", None)])
        if not isinstance(body, dict):
            return _validation(
                [_err(("body",), "Input should be a valid dictionary", "dict_type", body)]
            )
        webhook = request.query_params.get("fal_webhook")
        self.received.append({"app_id": app_id, "input": body, "fal_webhook": webhook})
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
        faults = faults_in(str(prompt), "fal")
        if (burst := self._burst(str(prompt), faults)) is not None:
            return burst
        if "quota" in faults:
            return _detail(
                429,
                "Too many concurrent requests for this user. Please wait for some of them "
                "to finish before submitting more.",
                headers={"retry-after": str(self.config.retry_after_seconds)},
            )
        if "credits" in faults:
            return _detail(403, EXHAUSTED)
        try:
            if schema is not None:
                job = self._job_from(app_id, schema, body, str(prompt), faults, webhook)
            else:
                assert recorded is not None
                job = self._recorded_job(app_id, recorded, body, str(prompt), faults, webhook)
        except Refusal as invalid:
            return invalid.response
        self.jobs[job.id] = job
        if webhook and "nohook" not in faults:
            task = asyncio.get_running_loop().create_task(self._deliver(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await answer_late(faults, self.config)
        return JSONResponse(self._urls(job))

    async def request_route(self, request: Request) -> Response:
        """GET .../status, GET ... (result), PUT .../cancel."""
        if (denied := self._auth_failure(request)) is not None:
            return denied
        match = _REQUEST_PATH.fullmatch(request.url.path)
        job = self.jobs.get(match.group("id")) if match else None
        self.calls.append((request.method, request.url.path, job.id if job else None))
        if match is None or job is None or match.group("base") != job.base:
            return _detail(404, "Request not found")
        tail = match.group("tail")
        if (burst := self._burst(job.prompt, job.faults)) is not None:
            return burst
        if request.method == "PUT" and tail == "/cancel":
            return self._cancel(job)
        if request.method == "GET" and tail == "/status":
            return self._status(job, logs=request.query_params.get("logs") in ("1", "true"))
        if request.method == "GET" and tail is None:
            return await self._result(job)
        return Response(status_code=405)

    def _state(self, job: _Job) -> tuple[str, float]:
        fraction = elapsed_fraction(job.created, job.render_seconds)
        if job.canceled:
            return "COMPLETED", 1.0
        if "queued" in job.faults:
            return "IN_QUEUE", 0.0
        if "never" in job.faults:
            return ("IN_QUEUE" if fraction < QUEUED_FRACTION else "IN_PROGRESS"), fraction
        if fraction < QUEUED_FRACTION:
            return "IN_QUEUE", fraction
        if fraction < 1.0:
            return "IN_PROGRESS", fraction
        return "COMPLETED", fraction

    def _status(self, job: _Job, *, logs: bool) -> Response:
        job.polls += 1
        if "malformed" in job.faults and job.polls == 1:
            return Response("<html><body>upstream connect error</body></html>", 200)
        state, fraction = self._state(job)
        answer: dict[str, Any] = {"status": state, **self._urls(job)}
        if state == "IN_QUEUE":
            left = 1.0 - fraction / QUEUED_FRACTION
            answer["queue_position"] = max(0, round(START_POSITION * left))
            return JSONResponse(answer, status_code=202)
        lines = self._logs(job, fraction)
        answer["logs"] = lines if logs else None
        if state == "IN_PROGRESS":
            answer["metrics"] = {}
            return JSONResponse(answer, status_code=202)
        answer["metrics"] = {"inference_time": round(job.render_seconds * 0.7, 3)}
        if job.canceled:
            answer["error"] = "Request was cancelled"
        elif "fail" in job.faults:
            answer["error"] = "Internal server error"
        elif job.faults & {"refuse", "refuse-image"}:
            answer["error"] = "Invalid status code: 422"
        return JSONResponse(answer)

    async def _result(self, job: _Job) -> Response:
        state, _ = self._state(job)
        if state != "COMPLETED":
            return _detail(400, "Request is still in progress")
        job.result_reads += 1
        status, output = self._outcome(job)
        return JSONResponse(output, status_code=status, headers=_retryable(status))

    def _outcome(self, job: _Job) -> tuple[int, dict[str, Any]]:
        """The finished request's answer: its output, or its error answer."""
        if job.canceled:
            return 400, {"detail": "Request was cancelled", "error_type": "request_cancelled"}
        if "refuse" in job.faults or "refuse-image" in job.faults:
            where = "image_url" if "refuse-image" in job.faults else "prompt"
            error = _err(
                ("body", where),
                "The content was flagged by a content checker.",
                "content_policy_violation",
                None,
            )
            error["url"] = "https://docs.fal.ai/errors#content_policy_violation"
            error["categories"] = ["violence"]
            return 422, {"detail": [error]}
        if "fail" in job.faults:
            error = _err(("body",), "Internal server error", "internal_server_error", None)
            return 500, {"detail": [error]}
        name = f"{uuid.uuid5(uuid.NAMESPACE_URL, job.id).hex[:21]}_output.mp4"
        url = f"{self.config.public_url}/files/{job.id}/{name}"
        output: dict[str, Any] = {
            "video": {
                "url": url,
                "content_type": "video/mp4",
                "file_name": name,
                "file_size": None,
            },
            # fal-js types ``seed`` only in Seedance's, LTX's and Wan's outputs (the
            # others are ``I2VOutput``: video only); kept on every app, as the wire
            # fixture tests expect it
            "seed": job.seed,
        }
        if job.echo_prompt:
            output["prompt"] = job.prompt
        path = self.videos.path_for(job.width, job.height, job.seconds, job.prompt)
        output["video"]["file_size"] = path.stat().st_size
        return 200, output

    def _cancel(self, job: _Job) -> Response:
        state, _ = self._state(job)
        if state == "IN_QUEUE":
            job.canceled = True
            return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)

    # -- files and keys ---------------------------------------------------------------

    async def file(self, request: Request) -> Response:
        """The public result file: no credentials, like fal.media's."""
        job = self.jobs.get(request.path_params["job_id"])
        if job is None or ("expire" in job.faults and job.downloads >= 1):
            return Response("Not Found", 404, media_type="text/plain")
        job.downloads += 1
        if "notvideo" in job.faults:
            data = _NOT_A_VIDEO
        else:
            path = await self.videos.get(job.width, job.height, job.seconds, job.prompt)
            data = await asyncio.to_thread(path.read_bytes)
        return StreamingResponse(
            trickle(data, job.faults),
            media_type="video/mp4",
            headers={"content-length": str(len(data))},
        )

    def jwks(self) -> dict[str, Any]:
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": base64.urlsafe_b64encode(raw).decode("ascii"),
                    "kid": self.key_id,
                    "use": "sig",
                    "alg": "EdDSA",
                }
            ]
        }

    async def jwks_route(self, request: Request) -> Response:
        return JSONResponse(self.jwks())

    # -- webhooks ---------------------------------------------------------------------

    def webhook_body(self, job: _Job) -> bytes:
        status, output = self._outcome(job)
        body: dict[str, Any] = {"request_id": job.id, "gateway_request_id": job.id}
        if status == 200:
            body |= {"status": "OK", "payload": output}
        else:
            body |= {
                "status": "ERROR",
                "error": f"Invalid status code: {status}",
                "payload": output,
            }
        return json.dumps(body).encode("utf-8")

    def signed_headers(self, request_id: str, body: bytes, at: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if at is None else at)
        digest = hashlib.sha256(body).hexdigest()
        message = "\n".join((request_id, USER_ID, stamp, digest)).encode("utf-8")
        return {
            "content-type": "application/json",
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": USER_ID,
            "x-fal-webhook-timestamp": stamp,
            "x-fal-webhook-signature": self.signing_key.sign(message).hex(),
        }

    async def _deliver(self, job: _Job) -> None:
        assert job.webhook is not None
        while True:
            state, _ = self._state(job)
            if state == "COMPLETED":
                break
            await asyncio.sleep(0.05)
        body = await asyncio.to_thread(self.webhook_body, job)
        async with httpx.AsyncClient(timeout=10) as client:
            for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
                code: int | None = None
                try:
                    answer = await client.post(
                        job.webhook, content=body, headers=self.signed_headers(job.id, body)
                    )
                    code = answer.status_code
                except httpx.HTTPError:
                    code = None
                self.deliveries.append(Delivery(job.id, job.webhook, attempt, code, body))
                if code is not None and 200 <= code < 300:
                    return
                if attempt <= len(WEBHOOK_BACKOFF):
                    await asyncio.sleep(WEBHOOK_BACKOFF[attempt - 1])

    # -- helpers ----------------------------------------------------------------------

    def _urls(self, job: _Job) -> dict[str, str]:
        base = f"{self.config.public_url}/{job.base}/requests/{job.id}"
        return {
            "request_id": job.id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _logs(self, job: _Job, fraction: float) -> list[dict[str, str]]:
        steps = max(1, min(int(fraction * 10), 10))
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        return [
            {
                "message": f"Generating video: step {i}/10",
                "level": "INFO",
                "source": "user",
                "timestamp": now,
            }
            for i in range(1, steps + 1)
        ]

    def _auth_failure(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "key" or not token.strip():
            return _detail(401, BAD_HEADER if header else BAD_KEY)
        if hmac.compare_digest(token.strip().encode(), self.config.api_key.encode()):
            return None
        return _detail(401, BAD_KEY)

    def _burst(self, prompt: str, faults: frozenset[str]) -> Response | None:
        if "5xx" not in faults:
            return None
        calls = self._calls_by_prompt.get(prompt, 0) + 1
        self._calls_by_prompt[prompt] = calls
        if calls > 2:
            return None
        return JSONResponse(
            {
                "detail": "No runner could be allocated to handle the request.",
                "error_type": "runner_scheduling_failure",
            },
            status_code=503,
            headers={"x-fal-error-type": "runner_scheduling_failure"},
        )

    def _job_from(
        self,
        app_id: str,
        schema: AppSchema,
        body: dict[str, Any],
        prompt: str,
        faults: frozenset[str],
        webhook: str | None,
    ) -> _Job:
        errors = _validate(schema, body)
        ratio: float | None = None
        if schema.image is not None and isinstance(body.get(schema.image), str):
            ratio = _image_ratio(schema.image, body[schema.image], errors)
        if errors:
            raise Refusal(_validation(errors))
        seconds = _seconds(schema, body)
        resolution = _value(schema, body, "resolution")
        short = min(
            MAX_SHORT_SIDE,
            _short_side(resolution if isinstance(resolution, str) else schema.native_resolution),
        )
        if ratio is None:
            aspect = _value(schema, body, "aspect_ratio")
            ratio = _ratio(aspect if isinstance(aspect, str) and aspect != "auto" else "16:9")
        width, height = _frame(short, ratio)
        return self._new_job(
            app_id, body, prompt, (seconds, width, height), faults, webhook, schema.output_prompt
        )

    def _new_job(
        self,
        app_id: str,
        body: dict[str, Any],
        prompt: str,
        shape: tuple[int, int, int],
        faults: frozenset[str],
        webhook: str | None,
        echo_prompt: bool = False,
    ) -> _Job:
        seconds, width, height = shape
        seed = body.get("seed")
        return _Job(
            id=str(uuid.uuid4()),
            app_id=app_id,
            prompt=prompt,
            seconds=seconds,
            width=width,
            height=height,
            faults=faults,
            webhook=webhook,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 42,
            echo_prompt=echo_prompt,
            render_seconds=self.config.seconds_for(prompt),
        )

    def _recorded_job(
        self,
        app_id: str,
        recorded: RecordedInput,
        body: dict[str, Any],
        prompt: str,
        faults: frozenset[str],
        webhook: str | None,
    ) -> _Job:
        """A request to a recorded endpoint, checked against its saved schema."""
        problems = recorded.check(body, extra_allowed=False)
        errors = []
        for p in problems:
            loc = ("body", *(x for x in p.field.split(".") if x))
            kind = {"enum": "literal_error", "required": "missing"}.get(p.keyword, p.keyword)
            error = _err(loc, p.message, kind, p.value)
            if p.keyword == "additionalProperties":
                error["type"] = "extra_forbidden"
            if p.allowed:
                expected = _literal(tuple(str(v) for v in p.allowed))
                error["msg"] = f"Input should be {expected}"
                error["ctx"] = {"expected": expected}
            errors.append(error)
        if errors:
            raise Refusal(_validation(errors))
        return self._new_job(app_id, body, prompt, output_shape(recorded, body), faults, webhook)


def create_app(config: EmulatorConfig) -> Starlette:
    emulator = FalEmulator(config)
    app = Starlette(
        routes=[
            Route("/.well-known/jwks.json", emulator.jwks_route, methods=["GET"]),
            Route("/v1/models", emulator.list_models, methods=["GET"]),
            Route("/api/openapi/queue/openapi.json", emulator.openapi_document, methods=["GET"]),
            Route("/files/{job_id}/{name}", emulator.file, methods=["GET"]),
            Route(
                "/{base:path}/requests/{rest:path}",
                emulator.request_route,
                methods=["GET", "PUT"],
            ),
            Route("/{app_id:path}", emulator.submit, methods=["POST"]),
        ]
    )
    app.state.emulator = emulator
    app.state.received = emulator.received
    return app


def emulator_of(server: EmulatorServer) -> FalEmulator:
    """The emulator behind a server from ``run_emulator("fal", ...)``."""
    emulator = getattr(getattr(server.app, "state", None), "emulator", None)
    if not isinstance(emulator, FalEmulator):
        raise TypeError("this server does not run the fal emulator")
    return emulator


# -- validation, pydantic-style as fal's apps answer -------------------------------------


def _err(loc: tuple[str, ...], msg: str, kind: str, value: Any) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind, "input": value}


def _validation(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": errors}, status_code=422, headers={"x-fal-retryable": "false"})


def _detail(status: int, text: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": text}, status_code=status, headers=headers)


def _retryable(status: int) -> dict[str, str]:
    return {} if status == 200 else {"x-fal-retryable": "false"}


def _literal(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


_TYPE_CHECKS: dict[str, tuple[Any, str, str]] = {
    # JSON type: (accepts, pydantic's error type, its message); strict, so "5" is no integer
    "string": (lambda v: isinstance(v, str), "string_type", "Input should be a valid string"),
    "file": (lambda v: isinstance(v, str), "string_type", "Input should be a valid string"),
    "integer": (
        lambda v: isinstance(v, int) and not isinstance(v, bool),
        "int_type",
        "Input should be a valid integer",
    ),
    "number": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "float_type",
        "Input should be a valid number",
    ),
    "boolean": (lambda v: isinstance(v, bool), "bool_type", "Input should be a valid boolean"),
    "array": (lambda v: isinstance(v, list), "list_type", "Input should be a valid list"),
}


def _validate(schema: AppSchema, body: dict[str, Any]) -> list[dict[str, Any]]:
    """pydantic's complaints about ``body`` against the app's input model: a missing
    required input, an unknown one, a wrong JSON type, a value outside the enum or the
    bounds, a file that is neither a URL nor a data URI."""
    errors: list[dict[str, Any]] = []
    for name, spec in schema.fields.items():
        if spec.required and name not in body:
            errors.append(_err(("body", name), "Field required", "missing", body))
    for name, value in body.items():
        given = schema.fields.get(name)
        where = ("body", name)
        if given is None:
            errors.append(_err(where, "Extra inputs are not permitted", "extra_forbidden", value))
            continue
        if value is None and not given.required and given.default is None:
            continue  # Optional[...] = None
        if given.type == "enum":
            if value not in given.values:
                expected = _literal(given.values)
                errors.append(
                    {
                        **_err(where, f"Input should be {expected}", "literal_error", value),
                        "ctx": {"expected": expected},
                    }
                )
            continue
        accepts, kind, msg = _TYPE_CHECKS[given.type]
        if not accepts(value):
            errors.append(_err(where, msg, kind, value))
            continue
        if given.ge is not None and value < given.ge:
            errors.append(
                {
                    **_err(
                        where,
                        f"Input should be greater than or equal to {given.ge:g}",
                        "greater_than_equal",
                        value,
                    ),
                    "ctx": {"ge": given.ge},
                }
            )
        if given.le is not None and value > given.le:
            errors.append(
                {
                    **_err(
                        where,
                        f"Input should be less than or equal to {given.le:g}",
                        "less_than_equal",
                        value,
                    ),
                    "ctx": {"le": given.le},
                }
            )
        if given.type == "file" and name != schema.image:
            _check_url(name, value, errors)
    return errors


def _value(schema: AppSchema, body: dict[str, Any], name: str) -> Any:
    """What the app runs with: the request's value, else the app's default (None when
    the app has no such input)."""
    spec = schema.fields.get(name)
    if spec is None:
        return None
    value = body.get(name)
    return spec.default if value is None else value


def _seconds(schema: AppSchema, body: dict[str, Any]) -> int:
    """The output's length from the app's own input: ``num_frames`` at the app's frame
    rate when given (or when the app has no ``duration``), else ``duration`` ("5",
    "8s"), else its default."""
    frames = _value(schema, body, "num_frames")
    if isinstance(frames, int) and ("num_frames" in body or "duration" not in schema.fields):
        fps = _value(schema, body, "frame_rate")
        rate = fps if isinstance(fps, int) and fps > 0 else schema.fps
        return max(1, round((frames - 1) / rate))
    duration = _value(schema, body, "duration")
    if isinstance(duration, str) and duration.removesuffix("s").isdigit():
        return max(1, int(duration.removesuffix("s")))
    return 5


MAX_SHORT_SIDE = 480
"""The rendered video's short side at most: these are test videos (a 1080p render would
cost seconds of CPU per job and delay the call), in the asked shape."""


def _short_side(resolution: str) -> int:
    word = resolution.lower()
    if word == "4k":
        return 2160
    digits = word.rstrip("p")
    return int(digits) if digits.isdigit() else 720


def _ratio(aspect: str) -> float:
    width, _, height = aspect.partition(":")
    try:
        return int(width) / int(height)
    except (ValueError, ZeroDivisionError):
        return 16 / 9


def _frame(short: int, ratio: float) -> tuple[int, int]:
    """Even dimensions with ``short`` as the short side."""
    long = max(short, round(short * max(ratio, 1 / ratio) / 2) * 2)
    return (long, short) if ratio >= 1 else (short, long)


def _check_url(name: str, value: str, errors: list[dict[str, Any]]) -> re.Match[str] | None:
    """A file input must be an HTTP(S) URL or a data URI; the data URI's match."""
    if value.startswith(("https://", "http://")):
        return None
    match = _DATA_URI.fullmatch(value)
    if match is None:
        errors.append(
            _err(("body", name), "Input should be a valid URL", "url_parsing", value[:64])
        )
    return match


def _image_ratio(name: str, value: str, errors: list[dict[str, Any]]) -> float | None:
    """A data URI is decoded (the output keeps the image's shape); a URL is not fetched."""
    match = _check_url(name, value, errors)
    if match is None:
        return None
    try:
        raw = base64.b64decode(match.group("data"), validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            width, height = img.size
    except (binascii.Error, UnidentifiedImageError, OSError):
        errors.append(
            _err(("body", name), "Could not decode the image", "image_load_error", value[:64])
        )
        return None
    return width / height
