"""Veo stand-ins: Vertex AI (:func:`create_vertex_app`) with Google's OAuth token
endpoint, and the Gemini API (:func:`create_gemini_app`); :func:`create_app` serves both
on one port (``serve --emulators``: reelgate's default Veo route is Vertex AI).

Models answer as Google's do in late 2026 (tests/fixtures/wire/veo*/ quote the
sources): on the Gemini API every Veo id is retired ("This model models/{m} is no
longer available", 404 NOT_FOUND, from 2026-10-22); Vertex serves
``veo-3.1-{generate,fast-generate,lite-generate}-001`` and answers any other id with
its 404 "Publisher Model ... was not found or your project does not have access to
it". ``EmulatorConfig.still_served`` makes retired ids work, as for an account the
retirement has not reached.

Gemini API (base ``{public_url}/v1beta``), key in ``x-goog-api-key`` (or ``?key=``)::

    POST /v1beta/models/{model}:predictLongRunning    -> {"name": "models/{model}/operations/{id}"}
    GET  /v1beta/models/{model}/operations/{id}       -> {"name"} until done, then "done": true
    GET  /v1beta/files/{id}:download?alt=media        the video (needs the key)

Vertex AI (base ``{public_url}/v1``), ``Authorization: Bearer <token>`` where the
token is ``config.api_key`` or one ``POST /token`` issued (a service account's JWT
grant, checked against the keys in ``state.service_accounts``)::

    POST /token  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>

    POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning
    POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:fetchPredictOperation
    GET  /storage/v1/b/{bucket}/o/{object}?alt=media  (results written under parameters.storageUri)

Without ``storageUri`` Vertex returns the video inline (``bytesBase64Encoded``).
Errors use Google's envelope ``{"error": {"code", "message", "status", "details"}}``.
Faults (see ``emulators.base``): ``quota`` is a 429 RESOURCE_EXHAUSTED whose
RetryInfo carries the delay (Google sends no Retry-After header for it);
``refuse``/``refuse-image`` finish the operation with ``raiMediaFilteredCount``
and a reason naming the prompt or the input image; ``fail`` finishes it with
``"error": {"code": 13, "message": ...}`` (google.rpc.Status INTERNAL: not a
refusal, no video); ``expire`` applies to download links (Files API, GCS), not
to inline results. Every request body is kept in ``app.state.received``
(credentials are never recorded); each job counts its ``polls`` and the
``final_polls`` answered with the finished operation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import io
import json
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import av
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from reelgate.emulators.base import (
    EmulatorConfig,
    answer_late,
    elapsed_fraction,
    faults_in,
    trickle,
)

__all__ = [
    "GEMINI_RETIRED",
    "GOOGLE_TOKEN_AUDIENCE",
    "VERTEX_MODELS",
    "create_app",
    "create_gemini_app",
    "create_vertex_app",
]

GEMINI_RETIRED = frozenset(
    {
        "veo-3.1-generate-preview",
        "veo-3.1-fast-generate-preview",
        "veo-3.1-lite-generate-preview",
        "veo-3.0-generate-001",
        "veo-3.0-fast-generate-001",
        "veo-2.0-generate-001",
    }
)
"""Every Veo id the Gemini API served: all retired (3.0 and 2.0 on 2026-06-30, the 3.1
previews on 2026-10-22)."""
VERTEX_MODELS = frozenset(
    {"veo-3.1-generate-001", "veo-3.1-fast-generate-001", "veo-3.1-lite-generate-001"}
)
"""What Vertex AI (Gemini Enterprise Agent Platform) lists for Veo in late 2026."""
_NO_4K = frozenset({"veo-3.1-lite-generate-001", "veo-3.1-lite-generate-preview"})
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
"""google-auth signs every service-account grant for this audience, whatever the key
file's ``token_uri`` says."""
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

_SHORT_SIDE = {"720p": 720, "1080p": 1080, "4k": 2160}
_DURATIONS = (4, 6, 8)
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
_NOT_A_VIDEO = b"<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>"
_REFUSAL = (
    "Veo could not generate videos because the input {what} violates {who} usage guidelines. "
    "If you think this was an error, send feedback. Support codes: {code}"
)
_INTERNAL = "Internal error encountered."
"""Google's message for an INTERNAL (13) status."""
_RESPONSE_TYPES = {
    "gemini": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
    "vertex": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
}


class _ApiError(Exception):
    def __init__(self, status: int, word: str, message: str, *details: dict[str, Any]) -> None:
        super().__init__(message)
        self.status, self.word, self.message, self.details = status, word, message, list(details)

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        error: dict[str, Any] = {"code": self.status, "message": self.message, "status": self.word}
        if self.details:
            error["details"] = self.details
        return JSONResponse({"error": error}, status_code=self.status, headers=headers)


@dataclass
class _Job:
    name: str
    prompt: str
    faults: frozenset[str]
    width: int
    height: int
    seconds: int
    storage_uri: str | None
    created: float = field(default_factory=time.monotonic)
    polls: int = 0
    final_polls: int = 0
    """Polls answered with the finished operation (``"done": true``)."""
    downloads: int = 0


@dataclass
class _State:
    config: EmulatorConfig
    shape: str
    jobs: dict[str, _Job] = field(default_factory=dict)
    files: dict[str, _Job] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    creates_seen: collections.Counter[str] = field(default_factory=collections.Counter)
    service_accounts: dict[str, str] = field(default_factory=dict)
    """Public keys (PEM) of the service accounts the token endpoint trusts, by email."""
    tokens: dict[str, float] = field(default_factory=dict)
    """Issued access tokens and when (monotonic) each expires."""
    tokens_issued: int = 0


# -- request checks shared by both shapes -----------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise _ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from exc
    if not isinstance(body, dict):
        raise _ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    return body


def _record(state: _State, request: Request, credential: str | None) -> dict[str, Any]:
    """Keep what arrived (before any check) for tests; the body is filled in once read."""
    query = {k: v for k, v in request.query_params.items() if k != "key"}
    entry: dict[str, Any] = {
        "method": request.method,
        "path": request.url.path,
        "query": query,
        "body": None,
        "credential": credential,
    }
    state.received.append(entry)
    return entry


def _dimensions(parameters: dict[str, Any], model: str) -> tuple[int, int, int]:
    """Width, height and seconds of the requested video, validated like Veo 3.x does."""
    aspect = parameters.get("aspectRatio", "16:9")
    resolution = str(parameters.get("resolution", "720p")).lower()
    duration = parameters.get("durationSeconds", 8)
    if aspect not in ("16:9", "9:16"):
        raise _ApiError(400, "INVALID_ARGUMENT", f"Unsupported aspect ratio: {aspect}.")
    if resolution not in _SHORT_SIDE or (resolution == "4k" and model in _NO_4K):
        raise _ApiError(400, "INVALID_ARGUMENT", f"Unsupported resolution: {resolution}.")
    try:
        seconds = int(duration)
    except (TypeError, ValueError):
        seconds = -1
    if seconds not in _DURATIONS or str(duration) != str(seconds):
        raise _ApiError(
            400, "INVALID_ARGUMENT", f"The duration {duration} is not supported; use 4, 6 or 8."
        )
    if resolution != "720p" and seconds != 8:
        raise _ApiError(
            400, "INVALID_ARGUMENT", f"{resolution} videos are only supported with 8 seconds."
        )
    short = _SHORT_SIDE[resolution]
    long = short * 16 // 9
    return (long, short, seconds) if aspect == "16:9" else (short, long, seconds)


def _check_image(image: Any, shape: str) -> None:
    if image is None:
        return
    if not isinstance(image, dict):
        raise _ApiError(400, "INVALID_ARGUMENT", "instances[0].image must be an object.")
    if "gcsUri" in image and shape == "vertex":
        return
    if image.get("mimeType") not in _IMAGE_TYPES:
        raise _ApiError(400, "INVALID_ARGUMENT", "Unsupported image mime type.")
    try:
        base64.b64decode(str(image.get("bytesBase64Encoded", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _ApiError(400, "INVALID_ARGUMENT", "Image bytes are not valid base64.") from exc
    if not image.get("bytesBase64Encoded"):
        raise _ApiError(400, "INVALID_ARGUMENT", "instances[0].image has no bytesBase64Encoded.")


def _quota(state: _State) -> _ApiError:
    if state.shape == "vertex":
        return _ApiError(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource exhausted. Please try again later. Please refer to https://cloud.google.com"
            "/vertex-ai/generative-ai/docs/error-code-429 for more details.",
        )
    help_link = {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
            {
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }
        ],
    }
    return _ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        help_link,
        {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": f"{state.config.retry_after_seconds}s",
        },
    )


def _new_job(state: _State, name: str, body: dict[str, Any], model: str) -> _Job:
    """Validate a predictLongRunning body and start its job (faults checked first)."""
    instances = body.get("instances")
    parameters = body.get("parameters") or {}
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(parameters, dict):
        raise _ApiError(400, "INVALID_ARGUMENT", "Exactly one instance is supported.")
    instance = instances[0] if isinstance(instances[0], dict) else {}
    prompt = instance.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _ApiError(400, "INVALID_ARGUMENT", "instances[0].prompt is required.")
    faults = faults_in(prompt, "veo")
    if "quota" in faults:
        raise _quota(state)
    state.creates_seen[prompt] += 1
    if "5xx" in faults and state.creates_seen[prompt] <= 2:
        raise _ApiError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    if state.shape == "gemini":
        for unsupported in ("seed", "generateAudio", "storageUri", "fps"):
            if unsupported in parameters:
                raise _ApiError(
                    400, "INVALID_ARGUMENT", f"{unsupported} isn't supported by this model."
                )
    width, height, seconds = _dimensions(parameters, model)
    _check_image(instance.get("image"), state.shape)
    if instance.get("video") is not None:
        seconds = _extended_seconds(instance["video"], state.shape, model, seconds)
    storage = parameters.get("storageUri")
    if storage is not None and not (isinstance(storage, str) and storage.startswith("gs://")):
        raise _ApiError(400, "INVALID_ARGUMENT", "storageUri must start with gs://.")
    job = _Job(name, prompt, faults, width, height, seconds, storage)
    state.jobs[name] = job
    return job


_EXTENDS = (
    "veo-3.1-generate-001",
    "veo-3.1-fast-generate-001",
    "veo-3.1-lite-generate-001",
    "veo-3.1-generate-preview",
    "veo-3.1-fast-generate-preview",
)
"""Vertex's "Extend Veo on Vertex AI-generated videos": the models that extend, "to
between 1 and 30 seconds in length"; the result is the whole, longer video."""


def _extended_seconds(video: Any, shape: str, model: str, seconds: int) -> int:
    """The length of an extension's result: the input video's plus ``seconds``."""
    if shape != "vertex":
        raise _ApiError(400, "INVALID_ARGUMENT", "instances[0].video is not supported here.")
    if model not in _EXTENDS:
        raise _ApiError(400, "INVALID_ARGUMENT", f"Video extension isn't supported by {model}.")
    data = video.get("bytesBase64Encoded") if isinstance(video, dict) else None
    if not isinstance(data, str) or video.get("mimeType") != "video/mp4":
        raise _ApiError(
            400, "INVALID_ARGUMENT", "instances[0].video needs bytesBase64Encoded and mimeType."
        )
    try:
        with av.open(io.BytesIO(base64.b64decode(data, validate=True)), mode="r") as container:
            length = float(container.duration or 0) / av.time_base
    except (binascii.Error, av.FFmpegError):
        raise _ApiError(400, "INVALID_ARGUMENT", "instances[0].video is not a video.") from None
    if length < 1 or length + seconds > 30:
        raise _ApiError(
            400, "INVALID_ARGUMENT", "Videos can be extended to between 1 and 30 seconds."
        )
    return round(length + seconds)


def _malformed() -> Response:
    return Response(b"<html><body>502 Bad Gateway</body></html>", media_type="text/html")


def _operation(state: _State, job: _Job) -> dict[str, Any] | None:
    """The operation as a poll sees it now (proto3 JSON: ``done`` is omitted while false);
    None when the ``malformed`` fault answers this poll with a page that is not JSON."""
    job.polls += 1
    if "malformed" in job.faults and job.polls == 1:
        return None
    config = state.config
    if "never" in job.faults or elapsed_fraction(job.created, config.job_seconds) < 1.0:
        return {"name": job.name}
    job.final_polls += 1
    if "fail" in job.faults:
        return {"name": job.name, "done": True, "error": {"code": 13, "message": _INTERNAL}}
    videos: dict[str, Any] = {}
    if "refuse" in job.faults or "refuse-image" in job.faults:
        who = "Vertex AI's" if state.shape == "vertex" else "the Gemini API's"
        image = "refuse-image" in job.faults
        what, code = ("image", "15236754") if image else ("prompt", "29310472")
        videos["raiMediaFilteredCount"] = 1
        videos["raiMediaFilteredReasons"] = [_REFUSAL.format(what=what, who=who, code=code)]
    elif state.shape == "gemini":
        file_id = job.name.rsplit("/", 1)[-1]
        state.files.setdefault(file_id, job)
        uri = f"{config.public_url}/v1beta/files/{file_id}:download?alt=media"
        videos["generatedSamples"] = [{"video": {"uri": uri}}]
    else:
        videos["raiMediaFilteredCount"] = 0
        videos["videos"] = [_vertex_video(state, job)]
    response: dict[str, Any] = {"@type": _RESPONSE_TYPES[state.shape]}
    if state.shape == "gemini":
        response["generateVideoResponse"] = videos
    else:
        response.update(videos)
    return {"name": job.name, "done": True, "response": response}


def _vertex_video(state: _State, job: _Job) -> dict[str, Any]:
    if job.storage_uri is None:
        return {"bytesBase64Encoded": None, "mimeType": "video/mp4"}  # filled in by the caller
    object_path = f"{job.storage_uri.rstrip('/')}/{job.name.rsplit('/', 1)[-1]}/sample_0.mp4"
    state.files.setdefault(object_path.removeprefix("gs://"), job)
    return {"gcsUri": object_path, "mimeType": "video/mp4"}


async def _video_bytes(state: _State, job: _Job) -> bytes:
    if "notvideo" in job.faults:
        return _NOT_A_VIDEO
    path = await state.config.videos().get(job.width, job.height, job.seconds, job.prompt)
    return await asyncio.to_thread(path.read_bytes)


async def _serve_file(state: _State, job: _Job | None, gone: Response) -> Response:
    """A result download: once only under ``expire``; ``slow``/``truncate`` via trickle()."""
    if job is None or ("expire" in job.faults and job.downloads >= 1):
        return gone
    job.downloads += 1
    data = await _video_bytes(state, job)
    return StreamingResponse(
        trickle(data, job.faults),
        media_type="video/mp4",
        headers={"content-length": str(len(data))},
    )


def _state(request: Request) -> _State:
    state: _State = request.app.state.veo
    return state


def _gemini_state(request: Request) -> _State:
    state: _State = request.app.state.gemini
    return state


# -- Gemini API --------------------------------------------------------------------------


def _gemini_credential(request: Request, state: _State) -> dict[str, Any]:
    """Record the request and how the key came; raise Google's answer to a missing or wrong key."""
    via: str | None = "header"
    key = request.headers.get("x-goog-api-key")
    if key is None and "key" in request.query_params:
        via, key = "query", request.query_params["key"]
    entry = _record(state, request, via if key else None)
    if not key:
        raise _ApiError(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if not secrets.compare_digest(key, state.config.api_key):
        message = "API key not valid. Please pass a valid API key."
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        localized = {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": message,
        }
        raise _ApiError(400, "INVALID_ARGUMENT", message, info, localized)
    return entry


async def _gemini_create(request: Request) -> Response:
    state = _gemini_state(request)
    try:
        entry = _gemini_credential(request, state)
        body = entry["body"] = await _json_body(request)
        model = request.path_params["model"]
        if model in GEMINI_RETIRED and model not in state.config.still_served:
            raise _ApiError(
                404,
                "NOT_FOUND",
                f"This model models/{model} is no longer available. Please update your code to "
                "use a newer model for the latest features and improvements.",
            )
        if model not in state.config.still_served:
            raise _ApiError(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "predictLongRunning. Call ListModels to see the list of available models and "
                "their supported methods.",
            )
        operation_id = "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12)
        )
        job = _new_job(state, f"models/{model}/operations/{operation_id}", body, model)
    except _ApiError as exc:
        return exc.response()
    await answer_late(job.faults, state.config)
    return JSONResponse({"name": job.name})


async def _gemini_operation(request: Request) -> Response:
    state = _gemini_state(request)
    try:
        _gemini_credential(request, state)
    except _ApiError as exc:
        return exc.response()
    name = f"models/{request.path_params['model']}/operations/{request.path_params['op']}"
    job = state.jobs.get(name)
    if job is None:
        return _ApiError(404, "NOT_FOUND", f"Operation {name} not found.").response()
    document = _operation(state, job)
    return _malformed() if document is None else JSONResponse(document)


async def _gemini_download(request: Request) -> Response:
    state = _gemini_state(request)
    try:
        _gemini_credential(request, state)
    except _ApiError as exc:
        return exc.response()
    file_id = request.path_params["file_id"]
    gone = _ApiError(
        403,
        "PERMISSION_DENIED",
        f"You do not have permission to access the File {file_id} or it may not exist.",
    ).response()
    return await _serve_file(state, state.files.get(file_id), gone)


def _gemini_routes() -> list[Route]:
    return [
        Route("/v1beta/models/{model}:predictLongRunning", _gemini_create, methods=["POST"]),
        Route("/v1beta/models/{model}/operations/{op}", _gemini_operation, methods=["GET"]),
        Route("/v1beta/files/{file_id}:download", _gemini_download, methods=["GET"]),
    ]


def create_gemini_app(config: EmulatorConfig) -> Starlette:
    """The Gemini API's Veo surface (every Veo id there is retired: see the module doc)."""
    app = Starlette(routes=_gemini_routes())
    state = _State(config, "gemini")
    app.state.veo = app.state.gemini = state
    app.state.received = state.received
    return app


# -- Vertex AI ---------------------------------------------------------------------------


def _bearer(request: Request, state: _State) -> dict[str, Any]:
    """Record the request; raise Google's 401 for a missing or wrong access token."""
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
    entry = _record(state, request, "header" if token else None)
    if not token:
        raise _ApiError(
            401,
            "UNAUTHENTICATED",
            "Request is missing required authentication credential. Expected OAuth 2 access "
            "token, login cookie or other valid authentication credential.",
        )
    if not _token_ok(state, token):
        raise _ApiError(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            },
        )
    return entry


def _publisher_model(request: Request) -> str:
    p = request.path_params
    name = (
        f"projects/{p['project']}/locations/{p['location']}/publishers/google/models/{p['model']}"
    )
    if p["model"] not in VERTEX_MODELS | _state(request).config.still_served:
        raise _ApiError(
            404,
            "NOT_FOUND",
            f"Publisher Model `{name}` was not found or your project does not have access to "
            "it. Please ensure you are using a valid model version. For more information, see: "
            "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
        )
    return name


async def _vertex_create(request: Request) -> Response:
    state = _state(request)
    try:
        entry = _bearer(request, state)
        body = entry["body"] = await _json_body(request)
        name = f"{_publisher_model(request)}/operations/{uuid.uuid4()}"
        job = _new_job(state, name, body, request.path_params["model"])
    except _ApiError as exc:
        return exc.response()
    await answer_late(job.faults, state.config)
    return JSONResponse({"name": job.name})


async def _vertex_fetch(request: Request) -> Response:
    state = _state(request)
    try:
        entry = _bearer(request, state)
        body = entry["body"] = await _json_body(request)
        resource = _publisher_model(request)
    except _ApiError as exc:
        return exc.response()
    name = body.get("operationName")
    job = state.jobs.get(name) if isinstance(name, str) else None
    if job is None or not job.name.startswith(f"{resource}/operations/"):
        return _ApiError(404, "NOT_FOUND", f"Operation {name} not found.").response()
    document = _operation(state, job)
    if document is None:
        return _malformed()
    for video in document.get("response", {}).get("videos", []):
        if "bytesBase64Encoded" in video:
            data = await _video_bytes(state, job)
            video["bytesBase64Encoded"] = base64.b64encode(data).decode("ascii")
    return JSONResponse(document)


async def _gcs_object(request: Request) -> Response:
    state = _state(request)
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
    _record(state, request, "header" if token else None)
    if not token or not _token_ok(state, token):
        error = {"message": "Invalid Credentials", "domain": "global", "reason": "authError"}
        body = {"error": {"code": 401, "message": "Invalid Credentials", "errors": [error]}}
        return JSONResponse(body, status_code=401)
    path = f"{request.path_params['bucket']}/{request.path_params['object']}"
    missing = {"message": f"No such object: {path}", "domain": "global", "reason": "notFound"}
    gone = JSONResponse(
        {"error": {"code": 404, "message": missing["message"], "errors": [missing]}},
        status_code=404,
    )
    return await _serve_file(state, state.files.get(path), gone)


def _token_ok(state: _State, token: str) -> bool:
    """The configured token, or one the token endpoint issued that has not expired."""
    if secrets.compare_digest(token, state.config.api_key):
        return True
    expires = state.tokens.get(token)
    return expires is not None and time.monotonic() < expires


def _oauth_error(error: str, description: str) -> JSONResponse:
    """Google's token endpoint answers OAuth 2 errors (RFC 6749 section 5.2)."""
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def _token(request: Request) -> Response:
    """A service account's JWT-bearer grant: the assertion must be RS256-signed by a key
    registered in ``state.service_accounts`` (by ``client_email``), for Google's
    audience, unexpired and asking for a scope."""
    state = _state(request)
    form = await request.form()
    _record(state, request, None)
    if form.get("grant_type") != _JWT_BEARER:
        return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
    assertion = str(form.get("assertion") or "")
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64url(header_b64))
        claims = json.loads(_b64url(claims_b64))
        signature = _b64url(signature_b64)
    except (ValueError, binascii.Error):
        return _oauth_error("invalid_request", "Invalid JWT.")
    key_pem = state.service_accounts.get(str(claims.get("iss")))
    if header.get("alg") != "RS256" or key_pem is None:
        return _oauth_error("invalid_grant", "Invalid JWT Signature.")
    public_key = serialization.load_pem_public_key(key_pem.encode())
    try:
        assert isinstance(public_key, rsa.RSAPublicKey), "service accounts have RSA keys"
        public_key.verify(
            signature,
            f"{header_b64}.{claims_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        return _oauth_error("invalid_grant", "Invalid JWT Signature.")
    now = time.time()
    if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
        return _oauth_error("invalid_grant", "Invalid JWT: audience.")
    if not (isinstance(claims.get("exp"), int) and claims["exp"] > now):
        return _oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
        )
    if not claims.get("scope"):
        return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    token = "ya29.c." + secrets.token_urlsafe(24)
    lifetime = state.config.token_seconds
    state.tokens[token] = time.monotonic() + lifetime
    state.tokens_issued += 1
    return JSONResponse({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})


def _vertex_routes() -> list[Route]:
    model = "/v1/projects/{project}/locations/{location}/publishers/google/models/{model}"
    return [
        Route(f"{model}:predictLongRunning", _vertex_create, methods=["POST"]),
        Route(f"{model}:fetchPredictOperation", _vertex_fetch, methods=["POST"]),
        Route("/storage/v1/b/{bucket}/o/{object:path}", _gcs_object, methods=["GET"]),
        Route("/token", _token, methods=["POST"]),
    ]


def create_vertex_app(config: EmulatorConfig) -> Starlette:
    """Vertex AI's Veo surface, the GCS JSON API reads its results need, and the OAuth
    token endpoint a service-account key file's ``token_uri`` may name."""
    app = Starlette(routes=_vertex_routes())
    state = _State(config, "vertex")
    app.state.veo = state
    app.state.received = state.received
    return app


def create_app(config: EmulatorConfig) -> Starlette:
    """Both surfaces on one port: Vertex AI (``app.state.veo``) and the Gemini API
    (``app.state.gemini``), each with its own jobs."""
    app = Starlette(routes=[*_vertex_routes(), *_gemini_routes()])
    vertex, gemini = _State(config, "vertex"), _State(config, "gemini")
    app.state.veo, app.state.gemini = vertex, gemini
    app.state.received = vertex.received
    return app
