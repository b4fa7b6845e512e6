"""Emulator of the upstream video gateway behind ``media-video-from-text``.

It speaks what the service brief shows (docs/providers/video_gateway.md):
a FastAPI service validating with Pydantic — only ``"4s"``/``"8s"``,
``"512P"``/``"1080P"``, ``"16:9"``/``"9:16"`` and the two model names pass,
anything else gets a 400 with Pydantic's ``detail`` list — that answers
``{"job_id"}`` and is polled at ``/api/video/status/{job_id}``:

    queued -> processing -> success  {video_url, duration_seconds, model,
                                      resolution, aspect_ratio}
                        \\-> error    {"status": "error", "error": <Veo's message>}

No progress figure (the brief shows none). Results are public object-store
style links (``/files/{job_id}/video.mp4``) that need no credential, like the
brief's ``https://s3.example.com/.../video.mp4``; a missing or expired one
answers S3's ``403 AccessDenied``. Fault keywords (``emulators.base``):

    refuse, refuse-image  the job ends in the 200 error envelope carrying Veo's
                          usage-guidelines message with a support code (the
                          upstream takes no image, so both name the prompt)
    quota                 429 {"detail": ...} + Retry-After at create
    5xx                   the first two creates with that prompt answer 503
    malformed             the first status poll answers 200 with an HTML page
    never                 the job stays "processing"
    fail                  the job ends in the 200 error envelope with a generic
                          failure (no safety, quota or validation wording)
    expire                the result link works once, then 403 AccessDenied
    slow, truncate        the download trickles / stops halfway (full Content-Length)
    notvideo              the result is an HTML page served as video/mp4

``GET /_emulator/received`` (emulator only, no auth) lists what the emulator
was sent, for tests; each job counts its status ``polls`` and the
``final_polls`` answered with its final status (success or error).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from reelgate.catalog.models import resolution_dims
from reelgate.emulators.base import (
    EmulatorConfig,
    answer_late,
    elapsed_fraction,
    faults_in,
    trickle,
)

__all__ = ["GenerateBody", "create_app"]

CREATE_PATH = "/api/video/generate"
_QUEUED_FRACTION = 0.2
_REFUSAL = (
    "Veo could not generate videos because the prompt violates Vertex AI's usage "
    "guidelines. If you think this was an error, send feedback. Support codes: 29310472"
)
_FAILED = "Video generation failed: Internal error encountered."
_NOT_A_VIDEO = (
    b"<!DOCTYPE html><html><head><title>Video</title></head>"
    b"<body><p>Your video is being prepared.</p></body></html>"
)
_ACCESS_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Access Denied</Message></Error>"
)


class GenerateBody(BaseModel):
    """The upstream's request model, as strict as the brief says it is."""

    prompt: str = Field(min_length=1)
    model: Literal["veo (Audio)", "veo fast (Audio)"] = "veo (Audio)"
    resolution: Literal["512P", "1080P"] = "1080P"
    duration: Literal["4s", "8s"] = "4s"
    aspect_ratio: Literal["16:9", "9:16"] = "16:9"


@dataclass
class _Job:
    id: str
    body: GenerateBody
    faults: frozenset[str]
    created: float = field(default_factory=time.monotonic)
    polls: int = 0
    final_polls: int = 0
    """Status polls answered with the job's final status (finished or error)."""
    downloads: int = 0


@dataclass
class _State:
    config: EmulatorConfig
    finished_status: str
    jobs: dict[str, _Job] = field(default_factory=dict)
    bursts: Counter[str] = field(default_factory=Counter)
    received: list[dict[str, Any]] = field(default_factory=list)

    async def require_key(self, request: Request) -> None:
        """A FastAPI dependency: runs before the body is validated, as auth does upstream."""
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": "Bearer"}
        if not header:
            raise HTTPException(401, "Not authenticated", headers=challenge)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token != self.config.api_key:
            raise HTTPException(401, "Invalid API key", headers=challenge)

    def record(self, request: Request, kind: str, body: Any = None) -> None:
        key = self.config.api_key
        sent = any(key and key in value for value in request.headers.values())
        self.received.append(
            {"kind": kind, "path": request.url.path, "body": body, "credential_sent": sent}
        )


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _status_answer(state: _State, job: _Job) -> dict[str, Any]:
    fraction = elapsed_fraction(job.created, state.config.job_seconds)
    if fraction < _QUEUED_FRACTION:
        return {"job_id": job.id, "status": "queued"}
    if fraction < 1.0 or "never" in job.faults:
        return {"job_id": job.id, "status": "processing"}
    if job.faults & {"refuse", "refuse-image"}:
        return {"job_id": job.id, "status": "error", "error": _REFUSAL}
    if "fail" in job.faults:
        return {"job_id": job.id, "status": "error", "error": _FAILED}
    body = job.body
    return {
        "job_id": job.id,
        "status": state.finished_status,
        "video_url": f"{state.config.public_url}/files/{job.id}/video.mp4",
        "duration_seconds": float(body.duration.removesuffix("s")),
        "model": body.model,
        "resolution": body.resolution,
        "aspect_ratio": body.aspect_ratio,
    }


async def _result_bytes(state: _State, job: _Job) -> bytes:
    if "notvideo" in job.faults:
        return _NOT_A_VIDEO
    body = job.body
    width, height = resolution_dims(body.resolution.lower(), body.aspect_ratio)
    seconds = int(body.duration.removesuffix("s"))
    path = await state.config.videos().get(width, height, seconds, body.prompt)
    return await asyncio.to_thread(path.read_bytes)


def create_app(
    config: EmulatorConfig,
    *,
    finished_status: str = "success",
    create_path: str = CREATE_PATH,
) -> FastAPI:
    """``finished_status``: the word a finished job reports (the brief shows
    "success"; "completed" lets tests pin the adapter's other spelling)."""
    app = FastAPI(title="video gateway emulator", docs_url=None, redoc_url=None, openapi_url=None)
    state = _State(config, finished_status)
    app.state.emulator = state
    app.state.received = state.received

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=400)

    authenticated = [Depends(state.require_key)]

    @app.post(create_path, dependencies=authenticated)
    async def generate(request: Request, body: GenerateBody) -> Response:
        state.record(request, "create", await request.json())
        faults = faults_in(body.prompt, "video_gateway")
        if "quota" in faults:
            retry = str(config.retry_after_seconds)
            return _detail(
                429, "Rate limit exceeded: video generation quota", {"Retry-After": retry}
            )
        if "5xx" in faults and state.bursts[body.prompt] < 2:
            state.bursts[body.prompt] += 1
            return _detail(503, "Video worker pool unavailable, try again later")
        job = _Job(id=str(uuid.uuid4()), body=body, faults=faults)
        state.jobs[job.id] = job
        await answer_late(faults, state.config)
        return JSONResponse({"job_id": job.id, "status": "queued"})

    @app.get("/api/video/status/{job_id}", dependencies=authenticated)
    async def video_status(request: Request, job_id: str) -> Response:
        state.record(request, "status")
        job = state.jobs.get(job_id)
        if job is None:
            return _detail(404, "Job not found")
        job.polls += 1
        if "malformed" in job.faults and job.polls == 1:
            html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(html, media_type="text/html")
        answer = _status_answer(state, job)
        if answer["status"] in (state.finished_status, "error"):
            job.final_polls += 1
        return JSONResponse(answer)

    @app.get("/files/{job_id}/video.mp4")
    async def result_file(request: Request, job_id: str) -> Response:
        state.record(request, "download")
        job = state.jobs.get(job_id)
        finished = job is not None and _status_answer(state, job).get("video_url")
        if job is None or not finished or ("expire" in job.faults and job.downloads >= 1):
            return Response(_ACCESS_DENIED, status_code=403, media_type="application/xml")
        job.downloads += 1
        data = await _result_bytes(state, job)
        return StreamingResponse(
            trickle(data, job.faults),
            media_type="video/mp4",
            headers={"Content-Length": str(len(data))},
        )

    @app.get("/_emulator/received")
    async def received() -> list[dict[str, Any]]:
        return state.received

    return app
