"""A stand-in for xAI's video API (Grok Imagine), speaking its REST wire format.

    POST /v1/videos/generations                  -> {"request_id"}
    GET  /v1/videos/{request_id}                 -> 202 {"status": "pending", "progress"}
                                                    200 {"status": "done", "video": {...}}
                                                    200 {"status": "failed", "error": {...}}
    GET  /xai-vidgen-bucket/xai-video-{id}.mp4   the public result link (vidgen.x.ai's shape)

Errors use xAI's envelope ``{"code": "<gRPC status text>", "error": "<message>"}``;
a missing or wrong key gets xAI's 400 "Incorrect API key provided". Fault
keywords (see ``emulators.base``) map to xAI's own signals:

    refuse         the job ends "done" with ``respect_moderation: false`` and no URL
    refuse-image   400 at create: the input image was rejected by content moderation
    refuse-prompt  400 at create: the prompt was rejected (an xAI-specific extra)
    quota          429 "Some resource has been exhausted" (out of credits) + Retry-After
    5xx            the first two calls carrying the prompt answer 503
    malformed      the first poll answers 200 with an HTML page
    never          pending forever, progress stalled at 50
    fail           the job ends "failed" with error.code "internal_error" (an extra)
    expire         the result link answers 404 NoSuchKey after its first download
    Zero Data Retention (``EmulatorConfig.zero_data_retention``): a create without
    ``output.upload_url`` answers xAI's 400 "Zero Data Retention teams must provide
    output.upload_url for video generation." (phuryn/grok-build-vscode#100); with one
    (any team may send it; VideoOutput in xAI's OpenAPI: "Signed URL to upload the
    generated video via HTTP PUT"), the finished video is PUT there before the first
    final poll, whose ``video.url`` is then that URL (as xAI says of images); a failed
    PUT answers done with ``storage_error`` and no URL.

    expired        the request ends ``{"status": "expired"}`` (a DeferredStatus of the
                   SDKs, not of the REST spec; no REST capture exists)
    slow, truncate, notvideo   applied to the result download

Shapes not confirmed from xAI's own sources are listed in docs/providers/grok.md.
The emulator never records the Authorization header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import io
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
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

__all__ = ["GrokEmulator", "create_app", "emulator_of"]

INVALID_ARGUMENT = "Client specified an invalid argument"
RESOURCE_EXHAUSTED = "Some resource has been exhausted"
NOT_FOUND = "Some requested entity was not found"
UNAVAILABLE = "The service is currently unavailable"

MODELS: dict[str, tuple[str, ...]] = {
    "grok-imagine-video": ("480p", "720p"),
    "grok-imagine-video-1.5": ("480p", "720p", "1080p"),
}
"""Resolutions per model, for text- and image-to-video alike (xai-sdk-python v1.19.0,
2026-08-18: 1080p "e.g. grok-imagine-video-1.5 for image-to-video")."""
ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
DURATION_RANGE = (1, 15)
DEFAULTS = {"model": "grok-imagine-video", "duration": 8, "resolution": "480p", "aspect": "16:9"}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
USD_TICKS_PER_SECOND = {
    "grok-imagine-video": {"480p": 500_000_000, "720p": 700_000_000},
    "grok-imagine-video-1.5": {"480p": 800_000_000, "720p": 1_400_000_000, "1080p": 2_500_000_000},
}
"""$0.05/$0.07 per s (480p/720p), and for 1.5 $0.08/$0.14/$0.25 (third-party price pages,
tests/fixtures/wire/grok/); one USD is 10^10 ticks (MediaUsage, spec)."""
NEVER_PROGRESS = 50

_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
_RESULT_NAME = re.compile(r"xai-video-(?P<id>[0-9a-f-]{36})\.mp4")
_NO_SUCH_KEY = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code>"
    "<Message>The specified key does not exist.</Message></Error>"
)
_NOT_A_VIDEO = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>\n" * 64


@dataclass
class _Job:
    id: str
    prompt: str
    model: str
    duration: int
    resolution: str
    width: int
    height: int
    faults: frozenset[str]
    upload_url: str | None = None
    uploaded: bool = False
    storage_error: str | None = None
    created: float = field(default_factory=time.monotonic)
    polls: int = 0
    final_polls: int = 0
    """Polls answered with the job's final status (done or failed)."""
    downloads: int = 0


class GrokEmulator:
    """In-memory jobs that finish ``config.job_seconds`` after their create."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.videos = config.videos()
        self.jobs: dict[str, _Job] = {}
        self.received: list[dict[str, Any]] = []
        """Every create body, as sent (tests assert on the exact field names)."""
        self.client_request_ids: list[str | None] = []
        self._calls_by_prompt: dict[str, int] = {}

    async def create(self, request: Request) -> Response:
        return await self._start(request, _job_from)

    async def extend(self, request: Request) -> Response:
        """``POST /v1/videos/extensions``: the whole video, source then extension."""
        return await self._start(request, _extension_job)

    async def edit(self, request: Request) -> Response:
        """``POST /v1/videos/edits``: the source re-made to the prompt."""
        return await self._start(request, _edit_job)

    async def _start(self, request: Request, make_job: Any) -> Response:
        if (denied := self._auth_failure(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, INVALID_ARGUMENT, "Failed to parse the request body as JSON")
        if not isinstance(body, dict):
            return PlainTextResponse("Failed to deserialize the JSON body: expected an object", 422)
        self.received.append(body)
        self.client_request_ids.append(request.headers.get("x-client-request-id"))
        raw_prompt = body.get("prompt")
        prompt = raw_prompt if isinstance(raw_prompt, str) else ""
        faults = faults_in(prompt, "grok")
        if (burst := self._burst(prompt, faults)) is not None:
            return burst
        if "quota" in faults:
            return _error(
                429,
                RESOURCE_EXHAUSTED,
                "Your team has either used all available credits or reached its monthly "
                "spending limit. To continue making API requests, please purchase more "
                "credits or raise your spending limit.",
                headers={"retry-after": str(self.config.retry_after_seconds)},
            )
        if "refuse-prompt" in faults:
            return _error(400, INVALID_ARGUMENT, "Prompt rejected by content moderation.")
        if "refuse-image" in faults:
            return _error(400, INVALID_ARGUMENT, "Input image rejected by content moderation.")
        output = body.get("output")
        upload_url = output.get("upload_url") if isinstance(output, dict) else None
        if output is not None and not (isinstance(upload_url, str) and upload_url):
            return _error(400, INVALID_ARGUMENT, "output.upload_url must be a non-empty string.")
        if self.config.zero_data_retention and upload_url is None:
            return _error(
                400,
                "invalid-argument",
                "Zero Data Retention teams must provide output.upload_url for video generation.",
            )
        try:
            job = make_job(body, prompt, faults)
        except Refusal as invalid:
            return invalid.response
        job.upload_url = upload_url
        self.jobs[job.id] = job
        await answer_late(faults, self.config)
        return JSONResponse({"request_id": job.id})

    async def status(self, request: Request) -> Response:
        if (denied := self._auth_failure(request)) is not None:
            return denied
        job = self.jobs.get(request.path_params["request_id"])
        if job is None:
            return _error(
                404, NOT_FOUND, "No deferred video could be found with the given request_id."
            )
        if (burst := self._burst(job.prompt, job.faults)) is not None:
            return burst
        job.polls += 1
        if "malformed" in job.faults and job.polls == 1:
            return Response("<html><body>upstream connect error</body></html>", 200)
        fraction = elapsed_fraction(job.created, self.config.job_seconds)
        if "never" in job.faults or fraction < 1.0:
            progress = min(int(fraction * 100), 99)
            if "never" in job.faults:
                progress = min(progress, NEVER_PROGRESS)
            return JSONResponse({"status": "pending", "progress": progress}, status_code=202)
        job.final_polls += 1
        if "expired" in job.faults:
            return JSONResponse({"status": "expired"})
        if "fail" in job.faults:
            error = {"code": "internal_error", "message": "Video generation failed."}
            return JSONResponse({"status": "failed", "error": error})
        video: dict[str, Any] = {
            "url": self._result_url(job),
            "duration": job.duration,
            "respect_moderation": True,
        }
        if job.upload_url is not None and "refuse" not in job.faults:
            if not job.uploaded and job.storage_error is None:
                await self._upload(job)
            if job.storage_error is not None:
                video["url"] = None
                return JSONResponse(
                    {
                        "status": "done",
                        "video": video,
                        "model": job.model,
                        "progress": 100,
                        "storage_error": job.storage_error,
                    }
                )
            video["url"] = job.upload_url
        if "refuse" in job.faults:
            video = {"url": "", "duration": job.duration, "respect_moderation": False}
        answer: dict[str, Any] = {
            "status": "done",
            "video": video,
            "model": job.model,
            "progress": 100,
        }
        per_second = USD_TICKS_PER_SECOND[job.model]
        if job.resolution in per_second:
            ticks = per_second[job.resolution] * job.duration
            answer["usage"] = {"cost_in_usd_ticks": ticks}
        return JSONResponse(answer)

    async def result(self, request: Request) -> Response:
        """The public result link: no credentials, like vidgen.x.ai's."""
        match = _RESULT_NAME.fullmatch(request.path_params["name"])
        job = self.jobs.get(match.group("id")) if match else None
        if job is None or ("expire" in job.faults and job.downloads >= 1):
            return Response(_NO_SUCH_KEY, 404, media_type="application/xml")
        job.downloads += 1
        if "notvideo" in job.faults:
            data = _NOT_A_VIDEO
        else:
            path = await self.videos.get(job.width, job.height, job.duration, job.prompt)
            data = await asyncio.to_thread(path.read_bytes)
        return StreamingResponse(
            trickle(data, job.faults),
            media_type="video/mp4",
            headers={"content-length": str(len(data))},
        )

    async def _upload(self, job: _Job) -> None:
        """PUT the finished video to the job's ``output.upload_url``."""
        assert job.upload_url is not None
        path = await self.videos.get(job.width, job.height, job.duration, job.prompt)
        data = await asyncio.to_thread(path.read_bytes)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.put(
                    job.upload_url, content=data, headers={"content-type": "video/mp4"}
                )
        except httpx.HTTPError as exc:
            job.storage_error = f"upload failed: {type(exc).__name__}"
            return
        if answer.is_success:
            job.uploaded = True
        else:
            job.storage_error = f"upload failed: HTTP {answer.status_code}"

    def _result_url(self, job: _Job) -> str:
        return f"{self.config.public_url}/xai-vidgen-bucket/xai-video-{job.id}.mp4"

    def _auth_failure(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        expected = self.config.api_key.encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected):
            return None
        return _error(
            400,
            INVALID_ARGUMENT,
            f"Incorrect API key provided: {_redact(token)}. "
            "You can obtain an API key from https://console.x.ai.",
        )

    def _burst(self, prompt: str, faults: frozenset[str]) -> Response | None:
        if "5xx" not in faults:
            return None
        calls = self._calls_by_prompt.get(prompt, 0) + 1
        self._calls_by_prompt[prompt] = calls
        if calls > 2:
            return None
        return _error(503, UNAVAILABLE, "The service is temporarily at capacity.")


def create_app(config: EmulatorConfig) -> Starlette:
    emulator = GrokEmulator(config)
    app = Starlette(
        routes=[
            Route("/v1/videos/generations", emulator.create, methods=["POST"]),
            Route("/v1/videos/extensions", emulator.extend, methods=["POST"]),
            Route("/v1/videos/edits", emulator.edit, methods=["POST"]),
            Route("/v1/videos/{request_id}", emulator.status, methods=["GET"]),
            Route("/xai-vidgen-bucket/{name}", emulator.result, methods=["GET"]),
        ]
    )
    app.state.emulator = emulator
    app.state.received = emulator.received
    return app


def emulator_of(server: EmulatorServer) -> GrokEmulator:
    """The emulator behind a server from ``run_emulator("grok", ...)``, for tests that
    look at what it received. (EmulatorServer keeps the app on its uvicorn config.)"""
    app = server.app
    emulator = getattr(getattr(app, "state", None), "emulator", None)
    if not isinstance(emulator, GrokEmulator):
        raise TypeError("this server does not run the xAI emulator")
    return emulator


def _job_from(body: dict[str, Any], prompt: str, faults: frozenset[str]) -> _Job:
    """Validate a create the way the spec describes it; raise Refusal with xAI's answer."""
    model = body.get("model") or DEFAULTS["model"]
    if model not in MODELS:
        raise Refusal(
            _error(404, NOT_FOUND, f"The model {model} does not exist or you do not have access.")
        )
    image = body.get("image", body.get("input_reference"))
    if not prompt.strip() and image is None:
        raise Refusal(_error(400, INVALID_ARGUMENT, "A prompt is required for text-to-video."))
    duration = _duration(body.get("duration", body.get("seconds", DEFAULTS["duration"])))
    resolution = body.get("resolution") or DEFAULTS["resolution"]
    if resolution not in MODELS[model]:
        raise Refusal(
            _error(400, INVALID_ARGUMENT, f"Resolution {resolution} is not supported by {model}.")
        )
    aspect = body.get("aspect_ratio") or DEFAULTS["aspect"]
    if aspect not in ASPECT_RATIOS:
        raise Refusal(
            PlainTextResponse(
                "Failed to deserialize the JSON body into the target type: aspect_ratio: "
                f"unknown variant `{aspect}`, expected one of {', '.join(ASPECT_RATIOS)}",
                422,
            )
        )
    ratio = _image_ratio(image) if image is not None else None
    if ratio is None:
        width_part, height_part = aspect.split(":")
        ratio = int(width_part) / int(height_part)
    width, height = frame_size(resolution, ratio)
    return _Job(
        id=str(uuid.uuid4()),
        prompt=prompt,
        model=model,
        duration=duration,
        resolution=resolution,
        width=width,
        height=height,
        faults=faults,
    )


EXTEND_SECONDS = (2, 10)
"""xAI's REST reference, ``POST /v1/videos/extensions``: ``duration`` is "the extension
segment to generate in seconds (2-10). Defaults to 6 seconds if not specified"."""
EXTEND_SOURCE_SECONDS = (2.0, 15.0)
"""docs.x.ai Video Extension: "The input video duration must be between 2 and 15 seconds";
"the output matches the aspect ratio and resolution of the input, capped at 720p"."""
EDITING_MODELS = ("grok-imagine-video",)


def _source_video(body: dict[str, Any]) -> tuple[float, int, int]:
    """The ``video`` input's length and frame size ("a public URL, a base64-encoded data
    URL, or a file_id"; only data URLs are read here: no network in the emulator)."""
    video = body.get("video")
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(video, dict):
        raise Refusal(_error(400, INVALID_ARGUMENT, "video is required."))
    if url is None and video.get("file_id"):
        raise Refusal(_error(404, NOT_FOUND, f"File {video['file_id']} not found."))
    match = _DATA_URI.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        raise Refusal(_error(400, INVALID_ARGUMENT, "video.url must be a data URL here."))
    try:
        data = base64.b64decode(match.group("data"), validate=True)
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            seconds = float(container.duration or 0) / av.time_base
            width, height = stream.codec_context.width, stream.codec_context.height
    except (binascii.Error, av.FFmpegError, IndexError):
        raise Refusal(
            _error(400, INVALID_ARGUMENT, "The input video could not be decoded as an MP4.")
        ) from None
    return seconds, width, height


def _edited_job(
    body: dict[str, Any], prompt: str, faults: frozenset[str], extra_seconds: int
) -> _Job:
    model = body.get("model") or DEFAULTS["model"]
    if model not in MODELS:
        raise Refusal(
            _error(404, NOT_FOUND, f"The model {model} does not exist or you do not have access.")
        )
    if model not in EDITING_MODELS:
        raise Refusal(_error(400, INVALID_ARGUMENT, f"Model {model} does not support this."))
    if not prompt.strip():
        raise Refusal(_error(400, INVALID_ARGUMENT, "prompt is required."))
    seconds, width, height = _source_video(body)
    if extra_seconds and not EXTEND_SOURCE_SECONDS[0] <= seconds <= EXTEND_SOURCE_SECONDS[1]:
        raise Refusal(
            _error(
                400,
                INVALID_ARGUMENT,
                "The input video duration must be between 2 and 15 seconds.",
            )
        )
    scale = min(1.0, 720 / min(width, height))  # capped at 720p
    width, height = round(width * scale / 2) * 2, round(height * scale / 2) * 2
    return _Job(
        id=str(uuid.uuid4()),
        prompt=prompt,
        model=model,
        duration=max(1, round(seconds + extra_seconds)),
        resolution="720p" if min(width, height) >= 720 else "480p",
        width=width,
        height=height,
        faults=faults,
    )


def _extension_job(body: dict[str, Any], prompt: str, faults: frozenset[str]) -> _Job:
    extra = body.get("duration", 6)
    low, high = EXTEND_SECONDS
    if isinstance(extra, bool) or not isinstance(extra, int) or not low <= extra <= high:
        raise Refusal(
            _error(400, INVALID_ARGUMENT, f"Duration must be between {low} and {high} seconds.")
        )
    return _edited_job(body, prompt, faults, extra)


def _edit_job(body: dict[str, Any], prompt: str, faults: frozenset[str]) -> _Job:
    return _edited_job(body, prompt, faults, 0)


def frame_size(resolution: str, ratio: float) -> tuple[int, int]:
    """The frame xAI renders: the resolution is the short side, the long side a multiple
    of 16 (its documented sizes: 848x480, 1280x720, 1920x1080)."""
    short = int(resolution.removesuffix("p"))
    long = max(short, round(short * max(ratio, 1 / ratio) / 16) * 16)
    return (long, short) if ratio >= 1 else (short, long)


def _duration(value: Any) -> int:
    """An integer of seconds in range; the spec also accepts it as a string ("8")."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    low, high = DURATION_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refusal(
            _error(400, INVALID_ARGUMENT, f"Duration must be between {low} and {high} seconds.")
        )
    return value


def _image_ratio(image: Any) -> float | None:
    """The input image's width/height: image-to-video keeps the image's aspect ratio.

    A data URI is decoded; an https URL is not fetched here (no network in the
    emulator), so the request's aspect ratio stands in for it.
    """
    url = image.get("url", image.get("image_url")) if isinstance(image, dict) else None
    if isinstance(image, dict) and url is None and image.get("file_id"):
        raise Refusal(_error(404, NOT_FOUND, f"File {image['file_id']} not found."))
    if not isinstance(url, str):
        raise Refusal(_error(400, INVALID_ARGUMENT, "image.url must be a string."))
    if url.startswith(("https://", "http://")):
        return None
    match = _DATA_URI.fullmatch(url)
    if match is None:
        raise Refusal(_error(400, INVALID_ARGUMENT, "image.url must be a URL or a data URI."))
    if match.group("mime") not in IMAGE_TYPES:
        raise Refusal(
            _error(400, INVALID_ARGUMENT, "Unsupported image type; use JPEG, PNG or WebP.")
        )
    try:
        with Image.open(io.BytesIO(base64.b64decode(match.group("data"), validate=True))) as img:
            width, height = img.size
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise Refusal(_error(400, INVALID_ARGUMENT, "Failed to decode the input image.")) from exc
    return width / height


def _redact(token: str) -> str:
    """How xAI echoes a bad key: its first and last two characters."""
    return f"{token[:2]}***{token[-2:]}" if len(token) >= 4 else ""


def _error(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"code": code, "error": message}, status_code=status, headers=headers)
