"""A stand-in for OpenAI's Videos API (Sora 2), and for Azure OpenAI's copy of it.

It speaks openai-python's ``types/video*.py``: the video object (status queued ->
in_progress -> completed | failed, with ``progress``), the ``{"error": {message,
type, param, code}}`` envelope, JSON or multipart create, content download by
``variant``, list and delete; at the root, under ``/v1`` and under ``/openai/v1``
(Azure). An ``api-key`` header is checked the Azure way, a Bearer token the
OpenAI way, each with that provider's 401 body.

Faults (``[fault:NAME]`` in the prompt, see ``emulators.base``):

    refuse          400 moderation_blocked at create (param null: the prompt)
    refuse-image    400 moderation_blocked at create, param "input_reference"
    refuse-output   the video ends ``failed`` with error.code moderation_blocked
    fail            the video ends ``failed`` with error.code internal_error (not a
                    refusal: a generic upstream failure)
    quota           429 rate_limit_exceeded with Retry-After
    5xx             the first two creates answer 503 server_error
    malformed       the first poll answers 200 with an HTML body
    never           the video stays in_progress
    expire          the content answers 404 after the first download
    slow/truncate   the download trickles / stops halfway (``trickle``)
    notvideo        the content is an HTML page
    nohook          no webhook event is sent for this video

Webhooks: once ``point_webhooks`` names an endpoint (as an operator registers one with
an OpenAI project for ``video.completed`` and ``video.failed``), each video that ends
sends ``{"id": "evt_…", "object": "event", "created_at", "type": "video.completed" |
"video.failed", "data": {"id": "video_…"}}`` there (API reference, "Webhook Events"),
signed per Standard Webhooks with the endpoint's ``whsec_`` secret (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of
id.timestamp.body>``: the OpenAI webhooks guide; openai-python ``lib/_webhooks.py``
verifies exactly that), retried on anything but a 2xx.

Models answer as the routes do in late 2026 (tests/fixtures/wire/sora*/ quote the
sources): under ``/v1`` (an OpenAI-compatible Videos upstream) an unknown model is a
404 ``model_not_found``; under ``/openai/v1`` (Azure) sora-2 was retired on 2026-10-15,
so a create answers 410 Gone ("all inference requests return 410 Gone"), and a
deployment that does not exist answers Azure's 404 "The API deployment ... does not
exist". ``EmulatorConfig.still_served`` keeps retired models working. ``seconds`` is
"4", "8" or "12" (openai-python's ``VideoSeconds``; Azure lists no other).

What the sources do not pin down (404/400 wording, the 410 body, the expired-link
answer, deleting a running video) is marked unverified in ``docs/providers/sora.md``.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
import hashlib
import hmac
import io
import itertools
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from reelgate.emulators.base import (
    EmulatorConfig,
    EmulatorServer,
    answer_late,
    elapsed_fraction,
    faults_in,
    trickle,
)

__all__ = [
    "MODEL_SIZES",
    "SECONDS",
    "SoraEmulatorState",
    "create_app",
    "point_webhooks",
    "sign_event",
    "state_of",
]

SECONDS = ("4", "8", "12")
AZURE_RETIRED = frozenset({"sora-2", "sora-2-2025-10-06", "sora-2-2025-12-08"})
"""Azure's retirement schedule: sora-2 2025-10-06 on 2026-07-15, 2025-12-08 on 2026-10-15."""
_STANDARD = ("720x1280", "1280x720")
_PRO = (*_STANDARD, "1024x1792", "1792x1024", "1080x1920", "1920x1080")
MODEL_SIZES: dict[str, tuple[str, ...]] = {
    "sora-2": _STANDARD,
    "sora-2-2025-10-06": _STANDARD,
    "sora-2-2025-12-08": _STANDARD,
    "sora-2-pro": _PRO,
    "sora-2-pro-2025-10-06": _PRO,
}
_QUEUED_FRACTION = 0.1
_NEVER_PROGRESS = 90
_ASSET_SECONDS = 3600
"""Generated files stay downloadable for about an hour after completion."""
_STILLS = {"thumbnail": "WEBP", "spritesheet": "JPEG"}
_BLOCKED = "Your request was blocked by our moderation system."
_INTERNAL = "Video generation failed due to an internal error. Please try again."


@dataclass
class _Video:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    faults: frozenset[str]
    seq: int
    started: float  # time.monotonic(): drives progress
    created_at: float  # time.time(): the timestamps reported
    render_seconds: float = 2.0
    """How long this video takes (``EmulatorConfig.seconds_for`` its prompt)."""
    downloads: int = 0
    polls: int = 0
    final_polls: int = 0
    """Retrieves answered with the video's final status (completed or failed)."""


@dataclass
class SoraEmulatorState:
    config: EmulatorConfig
    videos: dict[str, _Video] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    """Every create as it arrived: its content type, its fields, and what the reference
    image was (name, type, byte count, pixel size)."""
    webhook_url: str | None = None
    """The project's webhook endpoint (None: no events are sent)."""
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    """Every event delivery attempt: url, type, video id, attempt, status, headers, body."""
    _bursts: Counter[str] = field(default_factory=Counter)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def webhook_secret(self) -> str:
        """The endpoint's signing secret (fixed per API key, as a dashboard shows it)."""
        digest = hashlib.sha256(b"sora-emulator-webhook:" + self.config.api_key.encode()).digest()
        return "whsec_" + base64.b64encode(digest[:24]).decode("ascii")


class _Answer(Exception):
    """An error answer in the OpenAI envelope (or Azure's, for its 401)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.response = JSONResponse(body, status_code=status, headers=headers)


def _error(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    *,
    type_: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> _Answer:
    envelope = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return _Answer(status, envelope, headers)


def state_of(app: Any) -> SoraEmulatorState:
    """The emulator's jobs and recorded requests (tests assert on ``received``)."""
    state: SoraEmulatorState = app.state.sora
    return state


def create_app(config: EmulatorConfig) -> Starlette:
    state = SoraEmulatorState(config)
    routes = [
        Route("/videos", _endpoint(state, _create), methods=["POST"]),
        Route("/videos", _endpoint(state, _list), methods=["GET"]),
        Route("/videos/{video_id}", _endpoint(state, _retrieve), methods=["GET"]),
        Route("/videos/{video_id}", _endpoint(state, _delete), methods=["DELETE"]),
        Route("/videos/{video_id}/content", _endpoint(state, _content), methods=["GET"]),
    ]
    app = Starlette(
        routes=[Mount("/openai/v1", routes=routes), Mount("/v1", routes=routes), *routes],
    )
    app.state.sora = state
    app.add_exception_handler(404, _unknown_route)
    app.add_exception_handler(405, _unknown_route)
    return app


async def _unknown_route(request: Request, exc: Exception) -> Response:
    return _error(404, f"Invalid URL ({request.method} {request.url.path})").response


def _endpoint(state: SoraEmulatorState, handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            _authenticate(request, state.config.api_key)
            response: Response = await handler(state, request)
        except _Answer as answer:
            return answer.response
        return response

    return endpoint


def _authenticate(request: Request, api_key: str) -> None:
    azure_key = request.headers.get("api-key")
    if azure_key is not None:
        if not secrets.compare_digest(azure_key.encode(), api_key.encode()):
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource."
            )
            raise _Answer(401, {"error": {"code": "401", "message": message}})
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        message = (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        raise _error(401, message)
    if not secrets.compare_digest(token.encode(), api_key.encode()):
        masked = f"{token[:3]}{'*' * 10}{token[-4:]}" if len(token) > 8 else "*" * len(token)
        message = (
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        raise _error(401, message, None, "invalid_api_key")


async def _create(state: SoraEmulatorState, request: Request) -> Response:
    fields, reference = await _read_create(request)
    azure = request.url.path.startswith("/openai/")
    state.received.append(
        {
            "content_type": request.headers.get("content-type", "").split(";")[0],
            "fields": dict(fields),
            "input_reference": reference,
        }
    )
    _check_model(state, fields.get("model", "sora-2"), azure=azure)
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        message = "Missing required parameter: 'prompt'."
        raise _error(400, message, "prompt", "missing_required_parameter")
    faults = faults_in(prompt, "sora")
    _create_faults(state, prompt, faults, azure=request.url.path.startswith("/openai/"))
    model = _choice(fields, "model", "sora-2", tuple(MODEL_SIZES))
    seconds = _choice(fields, "seconds", "4", SECONDS)
    size = _choice(fields, "size", "720x1280", MODEL_SIZES[model])
    if reference is not None and reference.get("size") not in (None, size):
        message = f"The input_reference image must be {size}; got {reference['size']}."
        raise _error(400, message, "input_reference", "invalid_value")
    video = _Video(
        id=f"video_{secrets.token_hex(16)}",
        model=model,
        prompt=prompt,
        seconds=seconds,
        size=size,
        faults=faults,
        seq=next(state._order),
        started=time.monotonic(),
        created_at=time.time(),
        render_seconds=state.config.seconds_for(prompt),
    )
    state.videos[video.id] = video
    if state.webhook_url and not faults & {"never", "nohook"}:
        task = asyncio.get_running_loop().create_task(_send_event(state, video))
        state._tasks.add(task)
        task.add_done_callback(state._tasks.discard)
    await answer_late(faults, state.config)
    return JSONResponse(_video_object(video, state.config))


_WEBHOOK_ATTEMPTS = 4
_WEBHOOK_BACKOFF = (0.1, 0.3, 0.6)


def sign_event(secret: str, event_id: str, stamp: int, body: bytes) -> str:
    """``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed with the decoded
    ``whsec_`` secret, of ``"{webhook-id}.{webhook-timestamp}.{body}"``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{event_id}.{stamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def _send_event(state: SoraEmulatorState, video: _Video) -> None:
    """When the video ends, tell the project's endpoint (retrying on non-2xx)."""
    while (status := _status(video, state.config)[0]) not in ("completed", "failed"):
        left = video.started + video.render_seconds - time.monotonic()
        await asyncio.sleep(max(0.01, left))  # a sleep may end a hair early: look again
    url = state.webhook_url
    if url is None:
        return
    event_id = f"evt_{secrets.token_hex(12)}"
    kind = f"video.{status}"
    body = (
        b'{"id": "%s", "object": "event", "created_at": %d, "type": "%s", "data": {"id": "%s"}}'
        % (event_id.encode(), int(time.time()), kind.encode(), video.id.encode())
    )
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
        for attempt in range(_WEBHOOK_ATTEMPTS):
            stamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": event_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign_event(state.webhook_secret, event_id, stamp, body),
            }
            record: dict[str, Any] = {
                "url": url,
                "type": kind,
                "video": video.id,
                "attempt": attempt + 1,
                "headers": headers,
                "body": body,
            }
            try:
                answer = await client.post(url, content=body, headers=headers)
                record["status"] = answer.status_code
            except httpx.HTTPError as exc:
                record["status"] = type(exc).__name__
            state.deliveries.append(record)
            if isinstance(record["status"], int) and 200 <= record["status"] < 300:
                return
            if attempt < len(_WEBHOOK_BACKOFF):
                await asyncio.sleep(_WEBHOOK_BACKOFF[attempt])


def point_webhooks(server: EmulatorServer, url: str | None) -> str:
    """Register ``url`` as the project's webhook endpoint (None: remove it); returns its
    signing secret."""
    state = state_of(server.app)
    state.webhook_url = url
    return state.webhook_secret


def _create_faults(
    state: SoraEmulatorState, prompt: str, faults: frozenset[str], *, azure: bool = False
) -> None:
    if "5xx" in faults and state._bursts[prompt] < 2:
        state._bursts[prompt] += 1
        raise _error(503, "The server is overloaded or not ready yet.", type_="server_error")
    if "quota" in faults:
        wait = state.config.retry_after_seconds
        message = (
            "Rate limit reached for sora-2 on requests per min (RPM): Limit 2, Used 2, "
            f"Requested 1. Please try again in {wait}s."
        )
        retry = {"Retry-After": str(wait)}
        if azure:
            # Azure OpenAI: "Follow the retry-after-ms header when present" (its quota and
            # troubleshooting pages); finer than Retry-After's whole seconds
            retry["retry-after-ms"] = str(wait * 1000 + 500)
        raise _error(429, message, None, "rate_limit_exceeded", type_="requests", headers=retry)
    if faults & {"refuse", "refuse-image"}:
        param = "input_reference" if "refuse-image" in faults else None
        raise _error(400, _BLOCKED, param, "moderation_blocked")


async def _read_create(request: Request) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The create's fields, and what the reference image turned out to be."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return _read_multipart(content_type, await request.body())
    try:
        body = await request.json()
    except ValueError as exc:
        raise _error(400, "We could not parse the JSON body of your request.") from exc
    if not isinstance(body, dict):
        raise _error(400, "The request body must be a JSON object.")
    reference = body.pop("input_reference", None)
    if reference is not None and (
        not isinstance(reference, dict) or len(set(reference) & {"image_url", "file_id"}) != 1
    ):
        message = "Provide exactly one of 'image_url' or 'file_id'."
        raise _error(400, message, "input_reference")
    return body, reference  # a referenced image is not fetched, so its size is not checked


def _read_multipart(
    content_type: str, payload: bytes
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Parsed with the standard library (Starlette's form parser needs python-multipart)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + payload)
    if not message.is_multipart():
        raise _error(400, "We could not parse the multipart body of your request.")
    fields: dict[str, Any] = {}
    reference = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(data, bytes):
            continue
        if name == "input_reference":
            reference = {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "bytes": len(data),
                "size": _image_size(data),
            }
        else:
            fields[name] = data.decode()
    return fields, reference


def _image_size(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"{image.width}x{image.height}"
    except (UnidentifiedImageError, OSError) as exc:
        message = "The input_reference file is not a supported image (jpeg, png or webp)."
        raise _error(400, message, "input_reference", "invalid_image") from exc


def _check_model(state: SoraEmulatorState, model: Any, *, azure: bool) -> None:
    """A model that is not served here: Azure's answers for a missing deployment and a
    retired model, or OpenAI's ``model_not_found``."""
    if not isinstance(model, str):
        return  # _choice answers the type error
    if azure and model in AZURE_RETIRED and model not in state.config.still_served:
        body = {"error": {"code": "410", "message": f"The model '{model}' has been retired."}}
        raise _Answer(410, body)
    if model in MODEL_SIZES:
        return
    if azure:
        message = (
            f"The API deployment '{model}' for this resource does not exist. If you created "
            "the deployment within the last 5 minutes, please wait a moment and try again."
        )
        raise _error(404, message, type_="video_generation_user_error")
    message = f"The model `{model}` does not exist or you do not have access to it."
    raise _error(404, message, None, "model_not_found")


def _choice(fields: dict[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = fields.get(name, default)
    if not isinstance(value, str):
        message = f"Invalid type for '{name}': expected a string, got {type(value).__name__}."
        raise _error(400, message, name, "invalid_type")
    if value not in allowed:
        quoted = ", ".join(f"'{v}'" for v in allowed)
        message = f"Invalid value: '{value}'. Supported values are: {quoted}."
        raise _error(400, message, name, "invalid_value")
    return value


def _find(state: SoraEmulatorState, video_id: str) -> _Video:
    video = state.videos.get(video_id)
    if video is None:
        raise _error(404, f"Video with id '{video_id}' not found.", "video_id")
    return video


async def _retrieve(state: SoraEmulatorState, request: Request) -> Response:
    video = _find(state, request.path_params["video_id"])
    video.polls += 1
    if "malformed" in video.faults and video.polls == 1:
        return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
    answer = _video_object(video, state.config)
    if answer["status"] in ("completed", "failed"):
        video.final_polls += 1
        return JSONResponse(answer)
    # openai-python's ``videos.poll`` waits what this header says (``resources/
    # videos.py``); the value OpenAI sends is not documented: here, the time left
    left = video.started + video.render_seconds - time.monotonic()
    after = max(100, int(left * 1000)) if "never" not in video.faults else 1000
    return JSONResponse(answer, headers={"openai-poll-after-ms": str(after)})


async def _list(state: SoraEmulatorState, request: Request) -> Response:
    order = request.query_params.get("order", "desc")
    try:
        limit = max(1, min(100, int(request.query_params.get("limit", "20"))))
    except ValueError as exc:
        raise _error(400, "Invalid value for 'limit'.", "limit") from exc
    videos = sorted(state.videos.values(), key=lambda v: v.seq, reverse=order != "asc")
    after = request.query_params.get("after")
    if after:
        ids = [v.id for v in videos]
        videos = videos[ids.index(after) + 1 :] if after in ids else []
    page = [_video_object(v, state.config) for v in videos[:limit]]
    first, last = (page[0]["id"], page[-1]["id"]) if page else (None, None)
    more = len(videos) > limit
    body = {"object": "list", "data": page, "first_id": first, "last_id": last, "has_more": more}
    return JSONResponse(body)


async def _delete(state: SoraEmulatorState, request: Request) -> Response:
    video = _find(state, request.path_params["video_id"])
    if _status(video, state.config)[0] not in ("completed", "failed"):
        raise _error(400, "Only completed or failed videos can be deleted.", "video_id")
    del state.videos[video.id]
    return JSONResponse({"id": video.id, "object": "video.deleted", "deleted": True})


async def _content(state: SoraEmulatorState, request: Request) -> Response:
    video = _find(state, request.path_params["video_id"])
    variant = _choice(dict(request.query_params), "variant", "video", ("video", *_STILLS))
    status = _status(video, state.config)[0]
    if status != "completed":
        raise _error(400, f"Video is not ready yet, current status: {status}.")
    if "expire" in video.faults and video.downloads >= 1:
        raise _error(404, f"The content for video '{video.id}' has expired.")
    video.downloads += 1
    width, height = _dims(video)
    if variant in _STILLS:
        still = io.BytesIO()
        Image.new("RGB", (width // 8, height // 8)).save(still, format=_STILLS[variant])
        return Response(still.getvalue(), media_type=f"image/{_STILLS[variant].lower()}")
    if "notvideo" in video.faults:
        return Response("<html><body>Not a video</body></html>", media_type="video/mp4")
    path = await state.config.videos().get(width, height, int(video.seconds), video.prompt)
    data = await asyncio.to_thread(path.read_bytes)
    return StreamingResponse(
        trickle(data, video.faults),
        media_type="video/mp4",
        headers={"Content-Length": str(len(data))},
    )


def _dims(video: _Video) -> tuple[int, int]:
    width, height = video.size.split("x")
    return int(width), int(height)


def _status(video: _Video, config: EmulatorConfig) -> tuple[str, int]:
    fraction = elapsed_fraction(video.started, video.render_seconds)
    if fraction < _QUEUED_FRACTION:
        return "queued", 0
    if fraction < 1.0:
        return "in_progress", min(99, int(fraction * 100))
    if "never" in video.faults:
        return "in_progress", _NEVER_PROGRESS
    if video.faults & {"refuse-output", "fail"}:
        return "failed", 100
    return "completed", 100


def _failure(video: _Video) -> dict[str, str]:
    """A failed video's ``error`` (openai-python ``VideoCreateError``: code, message)."""
    if "refuse-output" in video.faults:
        return {"code": "moderation_blocked", "message": _BLOCKED}
    return {"code": "internal_error", "message": _INTERNAL}


def _video_object(video: _Video, config: EmulatorConfig) -> dict[str, Any]:
    status, progress = _status(video, config)
    done = status in ("completed", "failed")
    completed_at = int(video.created_at + video.render_seconds) if done else None
    error = _failure(video) if status == "failed" else None
    return {
        "id": video.id,
        "object": "video",
        "model": video.model,
        "status": status,
        "progress": progress,
        "created_at": int(video.created_at),
        "completed_at": completed_at,
        "expires_at": completed_at + _ASSET_SECONDS if completed_at else None,
        "prompt": video.prompt,
        "seconds": video.seconds,
        "size": video.size,
        "remixed_from_video_id": None,
        "error": error,
    }
