"""A stand-in for Replicate's predictions API, speaking its HTTP wire format.

    POST /v1/models/{owner}/{name}/predictions   official-model route -> 201 prediction
                                                 (a community model: 422, see below)
    POST /v1/predictions {"version", "input"}    version route        -> 201 prediction
                                                 (a community model's version id, a
                                                 ``VERSIONS`` id, or an official model's
                                                 "owner/name")
    GET  /v1/predictions/{id}                    the prediction object
    POST /v1/predictions/{id}/cancel             the prediction, canceled
    GET  /v1/predictions?created_after&cursor    {"next", "previous", "results"}, newest
                                                 first, ``page_size`` a page
    GET  /v1/webhooks/default/secret             {"key": "whsec_..."}
    GET  /xezq/{token}/output.mp4                the output file (replicate.delivery's shape)
    GET  /v1/models/{owner}/{name}               the model, its latest_version.openapi_schema
    GET  /v1/collections/{slug}                  {"name", "slug", "description", "models"}
                                                 (text-to-video, image-to-video)

The models and collections are ``catalog``: models saved from Replicate's API
(``emulators/recorded/replicate``, each with its SOURCE; their ``latest_version.id`` is
made here from the model's name and schema's hash when the source gave none). A test
changes or removes one (``set_record``, ``remove``) to play Replicate changing or
dropping a model. A prediction for a recorded model that is not in ``SCHEMAS`` is
checked against its saved ``components.schemas.Input`` with ``jsonschema``, unknown
inputs ignored, with the same 422 as below, on either route.

Official and community models (``is_official`` on the model object, which the model
page always carries here): an official model runs by name on the models route, or as
``"version": "owner/name"`` on the version route (replicate.com/changelog/2025-08-05);
its version id is not runnable (422 "Invalid version or not permitted"; inferred from
replicate/cog-safe-push#8 "Official models don't have a list of versions" and
cbh123/replicate-elixir#39, an official model that "does not accept the version that it
fetched"; the exact answer is not public). A community model runs only by its version
id on the version route (OpenAPI ``predictions.create``: "For all other models, the
specific version is required"); on the models route it gets the 422 "Invalid version or
not permitted" problem (replicate/replicate-python#320: a community model sent by name
answered "The specified version does not exist (or perhaps you don't have permission to
use it?)", the detail of that problem as #341 shows it with its title and 422). A
recorded model without ``is_official`` (most of them: their source did not save the
field) is official: inferred, as renku, the source, runs every one of them by
``owner/name`` with ``replicate.run`` (providers/src/sdk/replicate/adapter.ts), which
sends a reference without a version to ``/models/{owner}/{name}/predictions``
(replicate/replicate-javascript@2fd6f394 ``index.js`` ``run``, ``lib/predictions.js``),
and prices them by output second, as official models are priced.

Shapes from Replicate's OpenAPI schema and official client (docs/providers/replicate.md).
A missing or wrong token gets Replicate's 401 problem details (replicate-python cassette
``run__invalid-token.yaml``). Inputs are validated against each model's OWN input schema
(``SCHEMAS`` below, written from Replicate's public sources and independent of the
adapter) with Replicate's 422 "Input validation failed" body; unknown inputs are ignored
as Replicate ignores them. The delivered video is what the inputs mean under that schema:
its length from the model's own duration input, its frame from the model's own
resolution/size/aspect inputs (each one's default when absent or misnamed).

A prediction is ``starting``, then ``processing`` (tqdm progress in ``logs``), then
``succeeded`` ``config.job_seconds`` after its create. Its output and input are removed
an hour (of emulated time, ``advance``) after it completed: ``data_removed`` true,
``output`` null, file 404.

Faults (``emulators.base``): refuse (fails with "... flagged as sensitive ... (E005)"),
quota (429 throttled, ``retry_after`` + Retry-After), credit (402 Insufficient credit),
5xx (the first two calls for the prompt answer 503), malformed (the first poll answers
HTML), never (processing forever, 50%), fail (fails "Prediction interrupted; please retry
(code: PA)"), expire (the file works once), slow, truncate, notvideo, slow-create, and
nohook (no webhook is sent).

Webhooks: a create with ``webhook`` gets the prediction POSTed there, signed as Replicate
signs (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>``), for
the events its ``webhook_events_filter`` asks (default: output and completed), in the
background, retried three times on a failure. ``deliveries`` records each attempt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
import hmac
import json
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
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
from reelgate.emulators.recorded import RecordedInput, output_shape, replicate_records

__all__ = [
    "SCHEMAS",
    "VERSIONS",
    "Prop",
    "ReplicateEmulator",
    "Schema",
    "create_app",
    "emulator_of",
    "sign_webhook",
]

PROBLEM = "application/problem+json"
SENSITIVE = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
INTERRUPTED = "Prediction interrupted; please retry (code: PA)"
OUTPUT_LIFETIME = timedelta(hours=1)
NEVER_PROGRESS = 50
WEBHOOK_ATTEMPTS = 4
WEBHOOK_BACKOFF = (0.1, 0.3, 0.6)
MAX_SHORT_SIDE = 360
"""The rendered frame's short side at most (these are test videos)."""
DEFAULT_SECONDS = 4
"""A model without a duration input (replicate/hello-world) delivers this long."""

VERSIONS: dict[str, str] = {
    "18f41bfca7f1997ce37b04b407152c385c9159095681a6f5a4ff47718bc25a57": (
        "kwaivgi/kling-v2.5-turbo-pro"
    ),
    "a5fd550893da3b6f67997812759065652454ddaca10e96b83b59cbae1814cb36": (
        "bytedance/seedance-1-pro"
    ),
    "c43b610efe40d08a28d2c07cb3515dab1cd3324dfc7418f3304a092571071d22": "minimax/hailuo-02",
    "5ddec822499d46d11a93a92ef87e26adefda6608279d9d35c454e50e5e298d92": "lightricks/ltx-video",
    "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa": "replicate/hello-world",
}
"""Version ids from the sources (each model's version API page; hello-world from the
OpenAPI examples) that the version route knows."""


# -- the models' own input schemas -------------------------------------------------
#
# Written from Replicate's public sources, NOT from the adapter: each model's OpenAPI
# ``Input`` schema (the object Cog generates and replicate.com shows on the model's
# ``/api`` and ``versions/<id>/api`` pages). Where a page renders an enum as type "None"
# without its options, the options come from a copy of the same schema named per model.
# Sources (read 2026-12):
#   [K]  kwaivgi/kling-v2.5-turbo-pro: Input JSON quoted verbatim in a public project
#        plan (public code index, file id 1182655215); fields and defaults match
#        replicate.com/kwaivgi/kling-v2.5-turbo-pro/versions/18f41bfc.../api.
#   [S]  bytedance/seedance-1-pro: replicate.com/bytedance/seedance-1-pro/versions/
#        a5fd5508.../api (duration integer, Min 2 Max 12, default 5; resolution default
#        1080p; aspect_ratio default 16:9; fps default 24). The page hides the enum
#        options; they are the ones of the same vendor's bytedance/seedance-1-pro-fast
#        and seedance-1-lite Input JSON (file id 1182655215): resolution 480p/720p/1080p,
#        aspect 16:9/4:3/1:1/3:4/9:16/21:9/9:21, fps [24].
#   [H]  minimax/hailuo-02: replicate.com/minimax/hailuo-02/versions/c43b610e.../api
#        (fields, defaults); options from nodetool-ai/nodetool-replicate@d21aa025
#        src/nodetool/nodes/replicate/video/generate.py ``Hailuo_02`` (generated from
#        Replicate's schema): duration [6, 10], resolution 512p/768p/1080p.
#   [P]  pixverse/pixverse-v5: nodetool-replicate ``Pixverse_V5`` (as above) and a
#        generated reference of the Replicate schema (public code index, file id
#        53472099281): quality 360p/540p/720p/1080p (540p), aspect 16:9/9:16/1:1,
#        duration [5, 8] (5), effect (16 values, "None").
#   [W]  wan-video/wan-2.5-t2v: the replicate.com page of the sibling
#        wan-video/wan-2.5-t2v-fast (versions/6f841a19.../api: size default "1280*720",
#        duration default 5, audio, enable_prompt_expansion, seed); the t2v page itself
#        was not in the corpora. Its ``size`` options are not shown there: the list is
#        Alibaba's Wan 2.5 t2v size list (novita.ai/docs/api-reference/model-apis-wan2.5-t2v).
#        UNVERIFIED against Replicate.
#   [I]  wan-video/wan-2.5-i2v: generated reference of the Replicate schema (public code
#        index, file id 53481297512) and api.core.today/v1/models/wan-video/wan-2.5-i2v/
#        llms.txt: image and prompt required, resolution 480p/720p/1080p (720p),
#        duration [5, 10] (5).
#   [V]  google/veo-3.1 and google/veo-3.1-fast: Input JSON (file id 1182655215) and
#        nodetool-replicate ``Veo_3_1``/``Veo_3_1_Fast``: duration [4, 6, 8] (8),
#        resolution 720p/1080p (1080p), aspect 16:9/9:16.
#   [L]  lightricks/ltx-video: replicate.com/lightricks/ltx-video/versions/5ddec822.../api
#        (prompt and negative_prompt have defaults, so nothing is required; cfg 1-20,
#        steps 1-50, length in frames default 97, target_size default 640, aspect 3:2;
#        output an ARRAY of URIs). Options hidden there; from version 8c47da66 of the
#        same model (nodetool-replicate ``LTX_Video``). 24 FPS per the model description
#        ("produces 24 FPS videos at a 768x512 resolution").
#   [hw] replicate/hello-world: the OpenAPI's own example (``{"text": "Alice"}``).
#
# Unknown inputs are IGNORED, as Replicate does: these Input schemas carry no
# ``additionalProperties: false``, and Cog's ``BaseInput`` (replicate/cog
# python/cog/base_input.py) configures only ``use_enum_values``, so pydantic's default
# ``extra="ignore"`` drops them. A misnamed input therefore silently gets the default.

_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Prop:
    """One input property as the schema states it."""

    type: str
    """JSON Schema type: string, integer, number, boolean or array."""
    default: Any = _NO_DEFAULT
    enum: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    format: str | None = None
    """"uri" for files (an HTTP(S) URL or a data: URL)."""
    nullable: bool = False


@dataclass(frozen=True)
class Schema:
    """A model's input schema, and which of its inputs decide the delivered video."""

    properties: dict[str, Prop]
    required: tuple[str, ...]
    source: str
    duration: str | None = None
    """The input giving the length (seconds, or frames when ``fps`` is set)."""
    fps: int | None = None
    tier: str | None = None
    """An input like "720p" (the frame's short side)."""
    size: str | None = None
    """An input like "1280*720" (width*height)."""
    aspect: str | None = None
    image_sets_aspect: tuple[str, ...] = ()
    """Image inputs whose own aspect ratio replaces ``aspect`` when given."""
    output_list: bool = False


def _s(**kw: Any) -> Prop:
    return Prop("string", **kw)


def _i(**kw: Any) -> Prop:
    return Prop("integer", **kw)


_URI = {"format": "uri", "nullable": True}
_ASPECTS_SEEDANCE = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21")
_PIXVERSE_EFFECTS = (
    "None",
    "Let's YMCA!",
    "Subject 3 Fever",
    "Ghibli Live!",
    "Suit Swagger",
    "Muscle Surge",
    "360° Microwave",
    "Warmth of Jesus",
    "Emergency Beat",
    "Anything, Robot",
    "Kungfu Club",
    "Mint in Box",
    "Retro Anime Pop",
    "Vogue Walk",
    "Mega Dive",
    "Evil Trigger",
)
_WAN_T2V_SIZES = (
    "832*480",
    "480*832",
    "624*624",
    "1280*720",
    "720*1280",
    "960*960",
    "1088*832",
    "832*1088",
    "1920*1080",
    "1080*1920",
    "1440*1440",
    "1632*1248",
    "1248*1632",
)
_VEO = {
    "prompt": _s(),
    "aspect_ratio": _s(enum=("16:9", "9:16"), default="16:9"),
    "duration": _i(enum=(4, 6, 8), default=8),
    "image": _s(**_URI),
    "last_frame": _s(**_URI),
    "negative_prompt": _s(nullable=True),
    "resolution": _s(enum=("720p", "1080p"), default="1080p"),
    "generate_audio": Prop("boolean", default=True),
    "seed": _i(nullable=True),
}

SCHEMAS: dict[str, Schema] = {
    "kwaivgi/kling-v2.5-turbo-pro": Schema(
        properties={
            "prompt": _s(),
            "negative_prompt": _s(default=""),
            "start_image": _s(format="uri"),
            "end_image": _s(format="uri"),
            "aspect_ratio": _s(enum=("16:9", "9:16", "1:1"), default="16:9"),
            "duration": _i(enum=(5, 10), default=5),
            "image": _s(**_URI),  # "Deprecated: Use start_image instead."
        },
        required=("prompt",),
        source="[K]",
        duration="duration",
        aspect="aspect_ratio",
        image_sets_aspect=("start_image", "image"),  # "Ignored if start_image is provided."
    ),
    "bytedance/seedance-1-pro": Schema(
        properties={
            "prompt": _s(),
            "image": _s(**_URI),
            "last_frame_image": _s(**_URI),
            "duration": _i(default=5, minimum=2, maximum=12),
            "resolution": _s(enum=("480p", "720p", "1080p"), default="1080p"),
            "aspect_ratio": _s(enum=_ASPECTS_SEEDANCE, default="16:9"),
            "fps": _i(enum=(24,), default=24),
            "camera_fixed": Prop("boolean", default=False),
            "seed": _i(nullable=True),
        },
        required=("prompt",),
        source="[S]",
        duration="duration",
        tier="resolution",
        aspect="aspect_ratio",
        image_sets_aspect=("image",),  # "Ignored if an image is used."
    ),
    "minimax/hailuo-02": Schema(
        properties={
            "prompt": _s(),
            "first_frame_image": _s(**_URI),
            "last_frame_image": _s(**_URI),
            "duration": _i(enum=(6, 10), default=6),
            "resolution": _s(enum=("512p", "768p", "1080p"), default="1080p"),
            "prompt_optimizer": Prop("boolean", default=True),
        },
        required=("prompt",),
        source="[H]",
        duration="duration",
        tier="resolution",
        image_sets_aspect=("first_frame_image",),  # "same aspect ratio as this image"
    ),
    "pixverse/pixverse-v5": Schema(
        properties={
            "prompt": _s(),
            "image": _s(**_URI),
            "last_frame_image": _s(**_URI),
            "quality": _s(enum=("360p", "540p", "720p", "1080p"), default="540p"),
            "aspect_ratio": _s(enum=("16:9", "9:16", "1:1"), default="16:9"),
            "duration": _i(enum=(5, 8), default=5),
            "negative_prompt": _s(default=""),
            "seed": _i(nullable=True),
            "effect": _s(enum=_PIXVERSE_EFFECTS, default="None"),
        },
        required=("prompt",),
        source="[P]",
        duration="duration",
        tier="quality",
        aspect="aspect_ratio",
    ),
    "wan-video/wan-2.5-t2v": Schema(
        properties={
            "prompt": _s(),
            "negative_prompt": _s(nullable=True),
            "audio": _s(**_URI),
            "size": _s(enum=_WAN_T2V_SIZES, default="1280*720"),
            "duration": _i(enum=(5, 10), default=5),
            "enable_prompt_expansion": Prop("boolean", default=True),
            "seed": _i(nullable=True),
        },
        required=("prompt",),
        source="[W]",
        duration="duration",
        size="size",
    ),
    "wan-video/wan-2.5-i2v": Schema(
        properties={
            "image": _s(format="uri"),
            "prompt": _s(),
            "negative_prompt": _s(default=""),
            "audio": _s(**_URI),
            "resolution": _s(enum=("480p", "720p", "1080p"), default="720p"),
            "duration": _i(enum=(5, 10), default=5),
            "enable_prompt_expansion": Prop("boolean", default=True),
            "seed": _i(nullable=True),
        },
        required=("image", "prompt"),
        source="[I]",
        duration="duration",
        tier="resolution",
        image_sets_aspect=("image",),
    ),
    "google/veo-3.1": Schema(
        properties={
            **_VEO,
            "reference_images": Prop("array", default=[]),
        },
        required=("prompt",),
        source="[V]",
        duration="duration",
        tier="resolution",
        aspect="aspect_ratio",
    ),
    "google/veo-3.1-fast": Schema(
        properties=dict(_VEO),
        required=("prompt",),
        source="[V]",
        duration="duration",
        tier="resolution",
        aspect="aspect_ratio",
    ),
    "lightricks/ltx-video": Schema(
        properties={
            "prompt": _s(default="best quality, 4k, HDR, a tracking shot of a beautiful scene"),
            "negative_prompt": _s(default="low quality, worst quality, deformed, distorted"),
            "image": _s(**_URI),
            "target_size": _i(enum=tuple(range(512, 1025, 64)), default=640),
            "aspect_ratio": _s(
                enum=(
                    "1:1",
                    "1:2",
                    "2:1",
                    "2:3",
                    "3:2",
                    "3:4",
                    "4:3",
                    "4:5",
                    "5:4",
                    "9:16",
                    "16:9",
                    "9:21",
                    "21:9",
                ),
                default="3:2",
            ),
            "cfg": Prop("number", default=3, minimum=1, maximum=20),
            "steps": _i(default=30, minimum=1, maximum=50),
            "length": _i(enum=(97, 129, 161, 193, 225, 257), default=97),
            "seed": _i(nullable=True),
        },
        required=(),
        source="[L]",
        duration="length",
        fps=24,
        aspect="aspect_ratio",
        output_list=True,
    ),
    "replicate/hello-world": Schema(
        properties={"text": _s()},
        required=("text",),
        source="[hw]",
    ),
}
"""Keyed by "owner/name": every model this emulator serves."""


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    prompt: str
    faults: frozenset[str]
    seconds: int
    width: int
    height: int
    webhook: str | None
    events: frozenset[str]
    created: float = field(default_factory=time.monotonic)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    canceled_at: datetime | None = None
    completed_at: datetime | None = None
    polls: int = 0
    downloads: int = 0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


class ReplicateEmulator:
    """In-memory predictions that finish ``config.job_seconds`` after their create."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.videos = config.videos()
        self.predictions: dict[str, Prediction] = {}
        self.received: list[dict[str, Any]] = []
        """Every create body, as sent, with the route under ``"_path"``."""
        self.calls: list[tuple[str, str]] = []
        self.deliveries: list[dict[str, Any]] = []
        """Every webhook attempt: url, event, status code (or error), headers, body."""
        self.page_size = 100
        self.offset = 0.0
        """Emulated seconds added to the clock (``advance``)."""
        digest = hashlib.sha256(b"replicate-emulator:" + config.api_key.encode()).digest()
        self.secret = "whsec_" + base64.b64encode(digest[:24]).decode("ascii")
        self._calls_by_prompt: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.catalog: dict[str, dict[str, Any]] = replicate_records()
        """Recorded models by ``owner/name`` (``set_record``, ``remove``)."""
        self._inputs: dict[str, RecordedInput] = {}
        self._versions: dict[str, str] = {}

    def set_record(self, model: str, record: dict[str, Any]) -> None:
        """Serve ``record`` (the saved shape: category, model) for ``owner/name``; its
        ``model.is_official`` false makes it a community model."""
        self.catalog[model] = record
        self._inputs.pop(model, None)
        self._versions.pop(model, None)

    def remove(self, model: str) -> None:
        """Replicate drops the model: its page and predictions answer 404."""
        self.catalog.pop(model, None)
        self._inputs.pop(model, None)
        self._versions.pop(model, None)

    def is_official(self, model: str) -> bool:
        """A recorded model says so itself (absent: official, see above); a model of
        ``SCHEMAS`` alone is official."""
        record = self.catalog.get(model)
        if record is None:
            return model in SCHEMAS
        return record["model"].get("is_official", True) is not False

    def version_of(self, model: str) -> str:
        """A recorded model's ``latest_version.id``: the record's, else made from the
        model's name and its schema's hash (the sources gave none)."""
        if model not in self._versions:
            version = self.catalog[model]["model"]["latest_version"]
            made = version.get("id")
            if not made:
                text = json.dumps(version["openapi_schema"], sort_keys=True).encode()
                made = hashlib.sha256(model.encode() + b"\0" + text).hexdigest()
            self._versions[model] = str(made)
        return self._versions[model]

    def _recorded_model_of(self, version_id: str) -> str | None:
        return next((m for m in self.catalog if self.version_of(m) == version_id), None)

    def recorded_input(self, model: str) -> RecordedInput | None:
        record = self.catalog.get(model)
        if record is None:
            return None
        if model not in self._inputs:
            schema = record["model"]["latest_version"]["openapi_schema"]
            self._inputs[model] = RecordedInput(schema, "/components/schemas/Input")
        return self._inputs[model]

    def _output_list(self, model: str) -> bool:
        """The model's output is an array of URIs (its schema's ``Output`` says)."""
        if model in SCHEMAS:
            return SCHEMAS[model].output_list
        record = self.catalog.get(model)
        if record is None:
            return False
        schemas = record["model"]["latest_version"]["openapi_schema"]["components"]["schemas"]
        return bool(schemas.get("Output", {}).get("type") == "array")

    def model_json(self, model: str) -> dict[str, Any]:
        out: dict[str, Any] = copy.deepcopy(self.catalog[model]["model"])
        out["is_official"] = self.is_official(model)
        out["latest_version"]["id"] = self.version_of(model)
        return out

    async def get_model(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if model not in self.catalog:
            return _not_found()
        return JSONResponse(self.model_json(model))

    async def collection(self, request: Request) -> Response:
        """A collection with its models in full (Replicate's ``GET /collections/{slug}``
        is not paginated)."""
        self.calls.append((request.method, request.url.path))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        slug = request.path_params["slug"]
        if slug not in ("text-to-video", "image-to-video"):
            return _not_found()
        names = sorted(m for m, r in self.catalog.items() if r["category"] == slug)
        return JSONResponse(
            {
                "name": slug.replace("-", " ").capitalize(),
                "slug": slug,
                "description": f"Models that make videos ({slug}).",
                "models": [self.model_json(m) for m in names],
            }
        )

    def advance(self, seconds: float) -> None:
        """Move the emulated clock on (an output expires an hour after completion)."""
        self.offset += seconds

    def polls_of(self, prediction_id: str) -> int:
        return self.predictions[prediction_id].polls

    def _now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    # -- routes --------------------------------------------------------------------

    async def create_official(self, request: Request) -> Response:
        owner, name = request.path_params["owner"], request.path_params["name"]
        return await self._create(request, f"{owner}/{name}")

    async def create_version(self, request: Request) -> Response:
        return await self._create(request, None)

    async def _create(self, request: Request, model: str | None) -> Response:
        self.calls.append((request.method, request.url.path))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _problem(400, "Bad request", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _problem(400, "Bad request", "The request body must be a JSON object.")
        self.received.append({**body, "_path": request.url.path})
        given = body.get("input")
        prompt = given.get("prompt") if isinstance(given, dict) else None
        faults = faults_in(prompt if isinstance(prompt, str) else "", "replicate")
        if (burst := self._burst(str(prompt), faults)) is not None:
            return burst
        if "quota" in faults:
            wait = self.config.retry_after_seconds
            return JSONResponse(
                {
                    "detail": "Request was throttled. Your rate limit for creating predictions "
                    "is reduced to 6 requests per minute with a burst of 1 requests while you "
                    f"have less than $5.0 in credit. Your rate limit resets in ~{wait}s.",
                    "status": 429,
                    "retry_after": wait,
                },
                status_code=429,
                headers={"retry-after": str(wait)},
                media_type=PROBLEM,
            )
        if "credit" in faults:
            return _problem(
                402,
                "Insufficient credit",
                "You have insufficient credit to run this model. Go to "
                "https://replicate.com/account/billing#billing to purchase credit. Once you "
                "purchase credit, please wait a few minutes before trying again.",
            )
        try:
            prediction = self._prediction_from(body, model, faults)
        except Refusal as invalid:
            return invalid.response
        self.predictions[prediction.id] = prediction
        if prediction.webhook and "nohook" not in faults:
            self._spawn(self._deliver_all(prediction))
        await answer_late(faults, self.config)
        return JSONResponse(self.prediction_json(prediction), status_code=201)

    async def get(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        prediction = self.predictions.get(request.path_params["id"])
        if prediction is None:
            return _not_found()
        if (burst := self._burst(prediction.prompt, prediction.faults)) is not None:
            return burst
        prediction.polls += 1
        if "malformed" in prediction.faults and prediction.polls == 1:
            return Response("<html><body>502 Bad Gateway</body></html>", 200)
        return JSONResponse(self.prediction_json(prediction))

    async def cancel(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        prediction = self.predictions.get(request.path_params["id"])
        if prediction is None:
            return _not_found()
        if self._status(prediction)[0] in ("starting", "processing"):
            prediction.canceled_at = self._now()
        return JSONResponse(self.prediction_json(prediction))

    async def list(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        after = request.query_params.get("created_after")
        floor = _parse(after) if after else None
        if after and floor is None:
            return _problem(400, "Bad request", "created_after must be an ISO 8601 date-time.")
        rows = sorted(self.predictions.values(), key=lambda p: p.created_at, reverse=True)
        if floor is not None:
            rows = [p for p in rows if p.created_at >= floor]
        start = int(request.query_params.get("cursor") or 0)
        page = rows[start : start + self.page_size]
        more = start + self.page_size < len(rows)
        back = max(0, start - self.page_size)
        base = f"{self.config.public_url}/v1/predictions"
        query = {**({"created_after": after} if after else {})}
        return JSONResponse(
            {
                "next": f"{base}?{urlencode({**query, 'cursor': start + self.page_size})}"
                if more
                else None,
                "previous": f"{base}?{urlencode({**query, 'cursor': back})}" if start else None,
                "results": [self.prediction_json(p) for p in page],
            }
        )

    async def secret_key(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        if (denied := self._auth_failure(request)) is not None:
            return denied
        return JSONResponse({"key": self.secret})

    async def file(self, request: Request) -> Response:
        """The output file: public like replicate.delivery's (no token needed)."""
        prediction = next(
            (p for p in self.predictions.values() if p.token == request.path_params["token"]),
            None,
        )
        if (
            prediction is None
            or self._status(prediction)[0] != "succeeded"
            or self._removed(prediction)
            or ("expire" in prediction.faults and prediction.downloads >= 1)
        ):
            return Response("Not Found", 404, media_type="text/plain")
        prediction.downloads += 1
        if "notvideo" in prediction.faults:
            data = b"<!DOCTYPE html><html><body><h1>Bad Gateway</h1></body></html>\n" * 64
        else:
            path = await self.videos.get(
                prediction.width, prediction.height, prediction.seconds, prediction.prompt
            )
            data = await asyncio.to_thread(path.read_bytes)
        return StreamingResponse(
            trickle(data, prediction.faults),
            media_type="video/mp4",
            headers={"content-length": str(len(data))},
        )

    # -- the prediction ------------------------------------------------------------

    def _prediction_from(
        self, body: dict[str, Any], model: str | None, faults: frozenset[str]
    ) -> Prediction:
        version = "hidden"  # what an official model's prediction shows (OpenAPI)
        if model is None:
            ref = body.get("version")
            if not isinstance(ref, str) or not ref:
                raise Refusal(_invalid([("required", "", "version is required")]))
            name, _, version_id = ref.rpartition(":")
            version_id = version_id or ref
            if not name and ref.count("/") == 1:
                # "owner/name": official models only (changelog 2025-08-05)
                if not self.is_official(ref):  # unknown, or a community model
                    raise Refusal(_invalid_version())
                model = ref
            else:
                known = VERSIONS.get(version_id)
                if known is None:
                    of = self._recorded_model_of(version_id)
                    # an official model's own version id is not runnable (see above)
                    if of is not None and not self.is_official(of):
                        known = of
                if known is None or (name and name != known):
                    raise Refusal(_invalid_version())
                model, version = known, version_id
        elif model not in SCHEMAS and model not in self.catalog:
            raise Refusal(_not_found())
        elif not self.is_official(model):
            raise Refusal(_invalid_version())  # a community model: by version only
        extra = sorted(
            set(body) - {"input", "version", "webhook", "webhook_events_filter", "stream"}
        )
        if extra:
            raise Refusal(
                _invalid(
                    [
                        (
                            "additional_property_not_allowed",
                            "",
                            f"Additional property {k} is not allowed",
                        )
                        for k in extra
                    ]
                )
            )
        given = body.get("input")
        if not isinstance(given, dict):
            raise Refusal(_invalid([("required", "", "input is required")]))
        recorded = self.recorded_input(model) if model not in SCHEMAS else None
        if recorded is not None:
            problems = _recorded_problems(given, recorded)
        else:
            schema = SCHEMAS[model]
            problems = _check_input(given, schema)
        if problems:
            raise Refusal(_invalid(problems))
        events = body.get("webhook_events_filter")
        allowed = {"start", "output", "logs", "completed"}
        if events is not None and (
            not isinstance(events, list) or not set(events) <= allowed or not events
        ):
            raise Refusal(
                _invalid(
                    [
                        (
                            "enum",
                            "webhook_events_filter.0",
                            'webhook_events_filter.0 must be one of the following: "start", '
                            '"output", "logs", "completed"',
                        )
                    ]
                )
            )
        webhook = body.get("webhook")
        if webhook is not None and not (isinstance(webhook, str) and webhook.startswith("http")):
            raise Refusal(_invalid([("format", "webhook", "Does not match format 'uri'")]))
        if recorded is not None:
            seconds, width, height = output_shape(recorded, given)
        else:
            seconds = _seconds(given, schema)
            width, height = _frame(given, schema)
        return Prediction(
            id=_prediction_id(),
            model=model,
            version=version,
            input=given,
            prompt=str(given.get("prompt", "")),
            faults=faults,
            seconds=seconds,
            width=width,
            height=height,
            webhook=webhook,
            events=frozenset(events) if events else frozenset({"output", "completed"}),
        )

    def _status(self, prediction: Prediction) -> tuple[str, int]:
        if prediction.canceled_at is not None:
            return "canceled", 0
        fraction = elapsed_fraction(prediction.created, self.config.job_seconds)
        if "never" in prediction.faults:
            fraction = min(fraction, NEVER_PROGRESS / 100)
        elif fraction >= 1.0:
            if prediction.completed_at is None:
                prediction.completed_at = self._now()
            if "refuse" in prediction.faults or "fail" in prediction.faults:
                return "failed", 100
            return "succeeded", 100
        if fraction < 0.2:
            return "starting", 0
        return "processing", int(fraction * 100)

    def _removed(self, prediction: Prediction) -> bool:
        done = prediction.completed_at
        return done is not None and self._now() >= done + OUTPUT_LIFETIME

    def prediction_json(self, prediction: Prediction) -> dict[str, Any]:
        """The prediction object as the API answers it (and a webhook carries it)."""
        status, percent = self._status(prediction)
        api = f"{self.config.public_url}/v1/predictions/{prediction.id}"
        created = prediction.created_at
        started = created + timedelta(seconds=self.config.job_seconds * 0.2)
        logs = ""
        if status != "starting":
            logs = f"Using seed: 42\n{percent:3d}%|{'#' * (percent // 10):<10}| {percent}/100\n"
        output: Any = None
        error: str | None = None
        metrics: dict[str, Any] = {}
        completed = prediction.completed_at or prediction.canceled_at
        if status == "succeeded":
            url = f"{self.config.public_url}/xezq/{prediction.token}/output.mp4"
            output = [url] if self._output_list(prediction.model) else url
        if status == "failed":
            error = SENSITIVE if "refuse" in prediction.faults else INTERRUPTED
        if status in ("succeeded", "failed", "canceled"):
            metrics = {
                "predict_time": round(self.config.job_seconds * 0.8, 6),
                "total_time": round(self.config.job_seconds, 6),
            }
        removed = self._removed(prediction)
        return {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": {} if removed else prediction.input,
            "logs": "" if removed else logs,
            "output": None if removed else output,
            "data_removed": removed,
            "error": error,
            "status": status,
            "source": "api",
            "created_at": _iso(created),
            "started_at": _iso(started) if status != "starting" else None,
            "completed_at": _iso(completed) if completed and status != "processing" else None,
            "urls": {
                "cancel": f"{api}/cancel",
                "get": api,
                "stream": f"{self.config.public_url}/v1/files/stream-{prediction.id}",
                "web": f"https://replicate.com/p/{prediction.id}",
            },
            "metrics": metrics,
            **({"webhook": prediction.webhook} if prediction.webhook else {}),
            **({"webhook_events_filter": sorted(prediction.events)} if prediction.webhook else {}),
        }

    # -- webhooks ------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_all(self, prediction: Prediction) -> None:
        """Send what the filter asks, as the prediction gets there ("start" at once,
        "logs" once it runs, "output"/"completed" at the end)."""
        if "start" in prediction.events:
            await self._deliver(prediction, "start")
        if "logs" in prediction.events:
            await asyncio.sleep(self.config.job_seconds * 0.3)
            await self._deliver(prediction, "logs")
        while self._status(prediction)[0] in ("starting", "processing"):
            if "never" in prediction.faults:
                return
            await asyncio.sleep(max(0.02, self.config.job_seconds / 20))
        if prediction.events & {"completed", "output"}:
            await self._deliver(prediction, "completed")

    async def _deliver(self, prediction: Prediction, event: str) -> None:
        assert prediction.webhook is not None
        body = bytes(JSONResponse(self.prediction_json(prediction)).body)
        delivery = f"msg_{uuid.uuid4().hex[:27]}"
        for attempt in range(WEBHOOK_ATTEMPTS):
            stamp = int(time.time() + self.offset)
            headers = {
                "content-type": "application/json",
                "user-agent": "Replicate-Webhooks/1.0",
                "webhook-id": delivery,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign_webhook(self.secret, delivery, stamp, body),
            }
            record: dict[str, Any] = {
                "url": prediction.webhook,
                "event": event,
                "attempt": attempt + 1,
                "headers": headers,
                "body": body,
            }
            try:
                async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
                    answer = await client.post(prediction.webhook, content=body, headers=headers)
                record["status"] = answer.status_code
            except httpx.HTTPError as exc:
                record["status"] = type(exc).__name__
            self.deliveries.append(record)
            ok = isinstance(record["status"], int) and 200 <= record["status"] < 300
            # Replicate retries only the final webhook (receive-webhook docs)
            if ok or event != "completed" or attempt == WEBHOOK_ATTEMPTS - 1:
                return
            await asyncio.sleep(WEBHOOK_BACKOFF[min(attempt, len(WEBHOOK_BACKOFF) - 1)])

    # -- helpers -------------------------------------------------------------------

    def _auth_failure(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expected = self.config.api_key.encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected):
            return None
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    def _burst(self, prompt: str, faults: frozenset[str]) -> Response | None:
        if "5xx" not in faults:
            return None
        calls = self._calls_by_prompt.get(prompt, 0) + 1
        self._calls_by_prompt[prompt] = calls
        if calls > 2:
            return None
        return JSONResponse({"detail": "Service Unavailable", "status": 503}, status_code=503)


_TYPE_OK: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
}
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _check_input(given: dict[str, Any], schema: Schema) -> list[tuple[str, str, str]]:
    """The schema's complaints about ``given``, worded as Replicate's validator words
    them (gojsonschema's messages, as in the logged 422 answers): a missing required
    input, a wrong type, a value outside the enum or range, a file that is not a URI.
    Inputs the schema does not name are ignored (see the sources above)."""
    problems: list[tuple[str, str, str]] = []
    for name in schema.required:
        if name not in given:
            problems.append(("required", "input", f"{name} is required"))
    for name, value in given.items():
        prop = schema.properties.get(name)
        if prop is None:
            continue  # unknown: ignored, as Cog ignores it
        where = f"input.{name}"
        if value is None and prop.nullable:
            continue
        if not _TYPE_OK[prop.type](value):
            problems.append(
                (
                    "invalid_type",
                    where,
                    f"Invalid type. Expected: {prop.type}, given: {_json_type(value)}",
                )
            )
            continue
        if prop.enum and value not in prop.enum:
            choices = ", ".join(json.dumps(c, ensure_ascii=False) for c in prop.enum)
            problems.append(("enum", where, f"{name} must be one of the following: {choices}"))
        if prop.maximum is not None and value > prop.maximum:
            problems.append(
                ("number_lte", where, f"Must be less than or equal to {prop.maximum:g}")
            )
        if prop.minimum is not None and value < prop.minimum:
            problems.append(
                ("number_gte", where, f"Must be greater than or equal to {prop.minimum:g}")
            )
        if prop.format == "uri" and not _URI_SCHEME.match(value):
            problems.append(("format", where, "Does not match format 'uri'"))
    return problems


def _recorded_problems(
    given: dict[str, Any], recorded: RecordedInput
) -> list[tuple[str, str, str]]:
    """``jsonschema``'s findings in gojsonschema's words, as ``_check_input`` gives them."""
    out: list[tuple[str, str, str]] = []
    for p in recorded.check(given, extra_allowed=True):
        where = f"input.{p.field}" if p.field else "input"
        if p.keyword == "required":
            out.append(("required", "input", f"{p.field} is required"))
        elif p.keyword == "enum":
            choices = ", ".join(json.dumps(c, ensure_ascii=False) for c in p.allowed)
            out.append(("enum", where, f"{p.field} must be one of the following: {choices}"))
        elif p.keyword == "type":
            out.append(
                (
                    "invalid_type",
                    where,
                    f"Invalid type. Expected: {p.message.split()[-1]}, "
                    f"given: {_json_type(p.value)}",
                )
            )
        elif p.keyword in ("minimum", "maximum"):
            kind = "number_gte" if p.keyword == "minimum" else "number_lte"
            out.append((kind, where, p.message))
        else:
            out.append((p.keyword, where, p.message))
    return out


def _value(given: dict[str, Any], schema: Schema, name: str | None) -> Any:
    """What the model runs with for input ``name``: the given value, else the schema's
    default (a misnamed input is not ``name``, so it gets the default)."""
    if name is None:
        return None
    if name in given and given[name] is not None:
        return given[name]
    default = schema.properties[name].default
    return None if default is _NO_DEFAULT else default


def _seconds(given: dict[str, Any], schema: Schema) -> int:
    """The delivered video's length, from the model's own duration input."""
    value = _value(given, schema, schema.duration)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return DEFAULT_SECONDS
    seconds = value / schema.fps if schema.fps else value
    return max(1, round(seconds))


def _frame(given: dict[str, Any], schema: Schema) -> tuple[int, int]:
    """The delivered frame: its shape from the model's own size, aspect or image input
    (defaults when absent), its short side capped at ``MAX_SHORT_SIDE`` (test videos)."""
    size = _value(given, schema, schema.size)
    if isinstance(size, str) and "*" in size:
        width, _, height = size.partition("*")
        if width.isdigit() and height.isdigit() and int(width) and int(height):
            return _scaled(int(width), int(height), MAX_SHORT_SIDE)
    tier = _value(given, schema, schema.tier)
    short = MAX_SHORT_SIDE
    if isinstance(tier, str) and tier.lower().endswith("p") and tier[:-1].isdigit():
        short = min(int(tier[:-1]), MAX_SHORT_SIDE)
    for image_field in schema.image_sets_aspect:
        image = given.get(image_field)
        if image:
            shape = _image_shape(image) or (16, 9)
            return _scaled(shape[0], shape[1], short)
    aspect = _value(given, schema, schema.aspect)
    a, b = 16, 9
    if isinstance(aspect, str):
        left, _, right = aspect.partition(":")
        if left.isdigit() and right.isdigit() and int(left) and int(right):
            a, b = int(left), int(right)
    return _scaled(a, b, short)


def _scaled(width: int, height: int, short: int) -> tuple[int, int]:
    if width >= height:
        return _even(short * width / height), _even(short)
    return _even(short), _even(short * height / width)


def _image_shape(value: Any) -> tuple[int, int] | None:
    """Width and height of an inline PNG (a data: URL); None for anything else (a URL
    the emulator does not fetch, another format)."""
    if not isinstance(value, str) or not value.startswith("data:"):
        return None
    _, _, payload = value.partition(",")
    try:
        head = base64.b64decode(payload[:64] + "=" * (-len(payload[:64]) % 4))
    except (ValueError, binascii.Error):
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return None
    width, height = struct.unpack(">II", head[16:24])
    return (width, height) if width and height else None


def _even(value: float) -> int:
    return round(value / 2) * 2


def sign_webhook(secret: str, delivery_id: str, stamp: int, body: bytes) -> str:
    """The ``webhook-signature`` Replicate sends: ``v1,<base64 HMAC-SHA256>`` over
    ``"{webhook-id}.{webhook-timestamp}.{raw body}"``, keyed with the base64-decoded part
    of the ``whsec_`` secret (Standard Webhooks, as replicate.com/docs/topics/webhooks/
    verify-webhook documents it; replicate/replicate-python ``replicate/webhook.py``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery_id}.{stamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _prediction_id() -> str:
    """Replicate's ids are 26 lower-case base32 characters."""
    raw = base64.b32encode(uuid.uuid4().bytes).decode("ascii").lower().rstrip("=")
    return raw[:26]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "status": status},
        status_code=status,
        media_type=PROBLEM,
    )


def _invalid_version() -> JSONResponse:
    """Replicate's answer to a version it will not run (replicate/replicate-python#341:
    title, status 422 and detail)."""
    return _problem(
        422,
        "Invalid version or not permitted",
        "The specified version does not exist (or perhaps you don't have permission to use it?)",
    )


def _not_found() -> JSONResponse:
    return JSONResponse(
        {"detail": "The requested resource could not be found.", "status": 404},
        status_code=404,
        media_type=PROBLEM,
    )


def _invalid(problems: list[tuple[str, str, str]]) -> JSONResponse:
    detail = "".join(
        f"- {field_name}: {text}\n" if field_name else f"- {text}\n"
        for _kind, field_name, text in problems
    )
    return JSONResponse(
        {
            "detail": detail,
            "status": 422,
            "title": "Input validation failed",
            "invalid_fields": [
                {"type": kind, "field": field_name, "description": text}
                for kind, field_name, text in problems
            ],
        },
        status_code=422,
        media_type=PROBLEM,
    )


def create_app(config: EmulatorConfig) -> Starlette:
    emulator = ReplicateEmulator(config)
    app = Starlette(
        routes=[
            Route(
                "/v1/models/{owner}/{name}/predictions",
                emulator.create_official,
                methods=["POST"],
            ),
            Route("/v1/predictions", emulator.create_version, methods=["POST"]),
            Route("/v1/predictions", emulator.list, methods=["GET"]),
            Route("/v1/predictions/{id}", emulator.get, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", emulator.cancel, methods=["POST"]),
            Route("/v1/webhooks/default/secret", emulator.secret_key, methods=["GET"]),
            Route("/xezq/{token}/output.mp4", emulator.file, methods=["GET"]),
            Route("/v1/models/{owner}/{name}", emulator.get_model, methods=["GET"]),
            Route("/v1/collections/{slug}", emulator.collection, methods=["GET"]),
        ]
    )
    app.state.emulator = emulator
    app.state.received = emulator.received
    return app


def emulator_of(server: EmulatorServer) -> ReplicateEmulator:
    """The emulator behind a server from ``run_emulator("replicate", ...)``."""
    emulator = getattr(getattr(server.app, "state", None), "emulator", None)
    if not isinstance(emulator, ReplicateEmulator):
        raise TypeError("this server does not run the Replicate emulator")
    return emulator
