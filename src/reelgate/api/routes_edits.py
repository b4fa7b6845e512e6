"""``POST /v1/videos/{id}/extend`` and ``/remix``: new jobs made from a finished video.

Both answer 202 with a job like any other (progress, fallback, billing, webhooks). The
source is a completed video of the same account whose copy is stored. An extension's
job video is the whole video, source then continuation, and it is billed for the seconds
added. A remix is the source re-made to a new prompt, billed like a new clip of the
source's length; only a model whose provider remixes natively can make one
(``engine.edits``).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from reelgate.api.access import check_available
from reelgate.api.auth import require_write, runtime
from reelgate.api.idempotency import Idempotency, idempotent
from reelgate.api.openapi import errors
from reelgate.api.routes_videos import accepted, owned
from reelgate.api.schemas import VideoExtend, VideoRemix
from reelgate.catalog import ModelSpec
from reelgate.catalog.routing import served_routes
from reelgate.catalog.validate import Submission, validate_submission
from reelgate.engine.commands import NewJob, video_expired
from reelgate.engine.edits import copy_source
from reelgate.errors import Conflict, ValidationFailed
from reelgate.ids import new_job_id
from reelgate.job import Job, JobParams, MirrorStatus, PublicStatus
from reelgate.netsafe import check_url
from reelgate.providers.base import EditsVideos
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo

__all__ = ["router"]

router = APIRouter(prefix="/v1/videos", tags=["videos"])


async def _source(rt: Runtime, key: KeyInfo, video_id: str) -> tuple[Job, str, float]:
    """The video to edit, its stored copy's key and its length."""
    job = await owned(rt, key, video_id)
    if job.expired_at is not None:
        raise video_expired(job, rt.settings.retention_days)
    result = job.result
    stored = result is not None and result.mirror_status is MirrorStatus.STORED and result.key
    if job.status is not PublicStatus.COMPLETED or not stored or result is None:
        raise Conflict(
            f"Video job {video_id} cannot be edited yet: it is {job.status.value}"
            + ("" if job.status is not PublicStatus.COMPLETED else " and its copy is not stored")
            + ". Extend or remix a completed video once its copy is stored.",
            code="source_not_ready",
            status=job.status.value,
        )
    seconds = result.measured_duration_seconds or result.duration_seconds
    assert result.key is not None
    return job, result.key, float(seconds or job.params.duration_seconds)


def _edit_params(params: JobParams, edit: str, source: Job, key: str, seconds: float) -> JobParams:
    return replace(
        params, edit=edit, source_video_id=source.id, source_key=key, source_seconds=seconds
    )


async def _submit(
    rt: Runtime,
    key: KeyInfo,
    idem: Idempotency | None,
    body: VideoExtend | VideoRemix,
    chain: list[str],
    params: JobParams,
    deadline: int | None,
) -> JSONResponse:
    """Submit the edit with its own copy of the source (and, to extend, the source's
    last frame as its start image); the copy goes again if the submit is refused."""
    await check_available(rt, key, chain)
    if body.webhook_url:
        check_url(body.webhook_url, rt.settings.net_policy(), param="webhook_url")
    assert params.source_key is not None
    job_id = new_job_id()
    extend = params.edit == "extend"
    copy, frame = await copy_source(
        rt.storage, params.source_key, key.account_id, job_id, with_last_frame=extend
    )
    new = NewJob(
        account_id=key.account_id,
        key_id=key.key_id,
        chain=tuple(chain),
        prompt=body.prompt,
        params=replace(params, source_key=copy),
        deadline_seconds=deadline or rt.settings.default_deadline_seconds,
        metadata=body.metadata,
        image=frame,
        image_mime_type="image/png" if frame is not None else None,
        webhook_url=body.webhook_url,
        job_id=job_id,
    )
    try:
        return await accepted(rt, new, idem)
    except BaseException:
        with contextlib.suppress(Exception):
            await rt.storage.delete(copy)
        raise


@router.post("/{video_id}/extend", status_code=202, responses=errors(402, 404, 409, 410))
async def extend_video(
    video_id: str,
    body: VideoExtend,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Continue a completed video by ``duration_seconds``: by the provider's own
    extension where it has one (xAI), else by image-to-video from the last frame, joined
    on by reelgate. The job's video is the whole, longer video."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        source, stored, seconds = await _source(rt, key, video_id)
        checked = validate_submission(
            rt.catalog,
            Submission(
                model=body.model or source.delivered_by or source.model,
                fallback=tuple(body.fallback),
                duration_seconds=body.duration_seconds,
                resolution=body.resolution or source.params.resolution,
                aspect_ratio=source.params.aspect_ratio,
                has_image=True,
                prompt=body.prompt,
            ),
            route_of=rt.providers.route_of,
        )
        params = _edit_params(checked.params, "extend", source, stored, seconds)
        deadline = checked.deadline_seconds
        return await _submit(rt, key, idem, body, checked.chain, params, deadline)

    return await idempotent(request, rt, key.account_id, handler)


@router.post("/{video_id}/remix", status_code=202, responses=errors(402, 404, 409, 410))
async def remix_video(
    video_id: str,
    body: VideoRemix,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """The video re-made to a new prompt (OpenAI's ``videos.remix(video_id, prompt=)``
    sends this), on a model whose provider remixes: others answer 400
    ``remix_not_supported`` with the models that can."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        source, stored, seconds = await _source(rt, key, video_id)
        checked = validate_submission(
            rt.catalog,
            Submission(
                model=body.model or source.delivered_by or source.model,
                fallback=tuple(body.fallback),
                # the source's length as it is (an extended video is longer than the
                # seconds its job added)
                duration_seconds=max(1, round(seconds)),
                resolution=source.params.resolution,
                aspect_ratio=source.params.aspect_ratio,
                prompt=body.prompt,
            ),
            route_of=rt.providers.route_of,
        )
        duration = checked.params.duration_seconds
        able = [s.id for s in rt.catalog if _remixes(rt, s, duration, seconds)]
        for model_id in checked.chain:
            if model_id not in able:
                raise ValidationFailed(
                    f"{model_id!r} cannot remix a video on this gateway: no provider serving "
                    "it here remixes natively. Pick one of the allowed models, or make a new "
                    "video with POST /v1/videos.",
                    code="remix_not_supported",
                    param="model" if model_id == checked.chain[0] else "fallback",
                    model=model_id,
                    allowed=able,
                )
        params = _edit_params(checked.params, "remix", source, stored, seconds)
        deadline = checked.deadline_seconds
        return await _submit(rt, key, idem, body, checked.chain, params, deadline)

    return await idempotent(request, rt, key.account_id, handler)


def _remixes(rt: Runtime, spec: ModelSpec, duration: int, seconds: float) -> bool:
    """Some route serving ``spec`` here remixes a source of ``seconds`` natively."""
    for served in served_routes(spec, rt.providers.route_of):
        provider = rt.providers.get(served.kind)
        if isinstance(provider, EditsVideos) and provider.edits_natively(
            "remix", served.upstream_model, duration, seconds
        ):
            return True
    return False
