"""``/v1/videos``: submit (202 at once), get, list, cancel, content, retry mirror."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from reelgate.api.access import check_available, synced_models_fresh
from reelgate.api.auth import require_read, require_write, runtime
from reelgate.api.idempotency import Idempotency, idempotent
from reelgate.api.openai_compat import openai_params, parse_create
from reelgate.api.openapi import errors
from reelgate.api.schemas import VideoCreate, decode_image
from reelgate.api.serialize import STREAM_KEY, job_to_wire, result_url
from reelgate.catalog.validate import Submission, validate_submission
from reelgate.engine.commands import (
    NewJob,
    delete_job,
    request_cancel,
    retry_mirror,
    set_pinned,
    submit_job,
    video_expired,
)
from reelgate.errors import (
    BadGateway,
    Conflict,
    Gone,
    NotFound,
    ProviderError,
    ServiceUnavailable,
    ValidationFailed,
)
from reelgate.job import Job, MirrorStatus, PublicStatus
from reelgate.netsafe import check_url
from reelgate.providers.base import UPLOADED, ResultLocation
from reelgate.runtime import Runtime
from reelgate.storage.keys import upload_key
from reelgate.storage.signing import verify
from reelgate.store.accounts import KeyInfo
from reelgate.store.submit import StoredAnswer

__all__ = ["router"]

router = APIRouter(prefix="/v1/videos", tags=["videos"])
log = logging.getLogger(__name__)


async def owned(rt: Runtime, key: KeyInfo, job_id: str) -> Job:
    async with rt.store.reading() as tx:
        job = await tx.get_job(job_id, key.account_id)
    if job is None:
        raise NotFound(f"No video job {job_id!r}.", param="id")
    return job


@router.post(
    "",
    status_code=202,
    responses=errors(402),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": VideoCreate.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "description": "OpenAI style: the same fields as form fields, plus "
                        "input_reference (an image file) for image-to-video.",
                    }
                },
            },
        }
    },
)
async def create_video(
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Submit a job; answers 202 at once. JSON (native) or multipart (OpenAI's SDK)."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        return await _create(rt, key, await parse_create(request), idem)

    return await idempotent(request, rt, key.account_id, handler)


async def _create(
    rt: Runtime, key: KeyInfo, body: VideoCreate, idem: Idempotency | None
) -> JSONResponse:
    if body.image and body.image_url:
        raise ValidationFailed("Send either image or image_url, not both.", param="image")
    await synced_models_fresh(rt, [body.model, *body.fallback])
    duration, resolution, aspect = openai_params(rt.catalog.get(body.model), body)
    checked = validate_submission(
        rt.catalog,
        Submission(
            model=body.model,
            fallback=tuple(body.fallback),
            duration_seconds=duration,
            resolution=resolution,
            aspect_ratio=aspect,
            has_image=bool(body.image or body.image_url),
            negative_prompt=body.negative_prompt,
            seed=body.seed,
            prompt=body.prompt,
            audio=body.audio,
            provider_params=body.provider_params,
        ),
        route_of=rt.providers.route_of,
    )
    await check_available(rt, key, checked.chain)
    image, mime = decode_image(body.image) if body.image else (None, None)
    params = checked.params
    if body.image_url:
        check_url(body.image_url, rt.settings.net_policy(), param="image_url")
        params = replace(params, image_url=body.image_url)
    if body.webhook_url:
        check_url(body.webhook_url, rt.settings.net_policy(), param="webhook_url")

    new = NewJob(
        account_id=key.account_id,
        key_id=key.key_id,
        chain=tuple(checked.chain),
        prompt=body.prompt,
        params=params,
        deadline_seconds=checked.deadline_seconds or rt.settings.default_deadline_seconds,
        metadata=body.metadata,
        image=image,
        image_mime_type=mime,
        webhook_url=body.webhook_url,
    )
    return await accepted(rt, new, idem)


async def accepted(rt: Runtime, new: NewJob, idem: Idempotency | None) -> JSONResponse:
    """Submit ``new`` and answer 202 with it (stored for the Idempotency-Key with it)."""

    async def answer(job: Job) -> StoredAnswer:
        assert idem is not None
        return idem.answer(202, await job_to_wire(rt, job))

    job = await submit_job(rt, new, answer=answer if idem is not None else None)
    if idem is not None:
        idem.done = True
    return JSONResponse(
        await job_to_wire(rt, job), status_code=202, headers={"Location": f"/v1/videos/{job.id}"}
    )


@router.get("")
async def list_videos(
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None, description="Cursor: the last id of the previous page."),
    order: Literal["asc", "desc"] = "desc",
    status: Literal["queued", "in_progress", "completed", "failed", "canceled"] | None = None,
    model: str | None = Query(None, description="Requested or delivering model id."),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """The account's jobs, newest first unless ``order=asc``; the studio's gallery."""
    wanted = PublicStatus(status) if status else None
    async with rt.store.reading() as tx:
        rows = await tx.list_jobs(
            key.account_id, limit=limit + 1, after=after, status=wanted, model=model, order=order
        )
    page = rows[:limit]
    data = [await job_to_wire(rt, job) for job in page]
    return {
        "object": "list",
        "data": data,
        "has_more": len(rows) > limit,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    }


@router.get("/{video_id}", responses=errors(404))
async def get_video(
    video_id: str, key: KeyInfo = Depends(require_read), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    return await job_to_wire(rt, await owned(rt, key, video_id))


@router.post("/{video_id}/cancel", responses=errors(404))
async def cancel_video(
    video_id: str,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def handler(_idem: Idempotency | None) -> JSONResponse:
        job = await request_cancel(rt, key.account_id, video_id)
        return JSONResponse(await job_to_wire(rt, job))

    return await idempotent(request, rt, key.account_id, handler)


@router.post("/{video_id}/mirror", status_code=202, responses=errors(404))
async def mirror_video(
    video_id: str,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def handler(_idem: Idempotency | None) -> JSONResponse:
        job = await retry_mirror(rt, key.account_id, video_id)
        return JSONResponse(await job_to_wire(rt, job), status_code=202)

    return await idempotent(request, rt, key.account_id, handler)


@router.post("/{video_id}/pin", responses=errors(404, 409, 410))
async def pin_video(
    video_id: str,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Keep this video for ever (the brief: "download or pin permanently"); the retention
    sweeper passes it by. ``expires_at`` becomes null."""

    async def handler(_idem: Idempotency | None) -> JSONResponse:
        job = await set_pinned(rt, key.account_id, video_id, True)
        return JSONResponse(await job_to_wire(rt, job))

    return await idempotent(request, rt, key.account_id, handler)


@router.post("/{video_id}/unpin", responses=errors(404, 409, 410))
async def unpin_video(
    video_id: str,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Undo a pin: the video is kept the retention period after its delivery again (one
    already past it goes at the next sweep)."""

    async def handler(_idem: Idempotency | None) -> JSONResponse:
        job = await set_pinned(rt, key.account_id, video_id, False)
        return JSONResponse(await job_to_wire(rt, job))

    return await idempotent(request, rt, key.account_id, handler)


@router.delete("/{video_id}", responses=errors(404, 409))
async def delete_video(
    video_id: str, key: KeyInfo = Depends(require_write), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    """OpenAI's delete: the stored file goes; the job leaves listings (usage keeps it)."""
    await delete_job(rt, key.account_id, video_id)
    return {"id": video_id, "object": "video.deleted", "deleted": True}


@router.get(
    "/{video_id}/content",
    responses={302: {"description": "Redirect to the video (result.url)."}, **errors(404, 409)},
)
async def video_content(
    video_id: str,
    variant: Literal["video", "thumbnail", "spritesheet"] = Query(
        "video",
        description="Which asset, as OpenAI's Videos API names them: the MP4, its poster "
        "(WebP) or its sprite sheet (JPEG; the job's result.spritesheet gives the layout).",
    ),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> RedirectResponse:
    job = await owned(rt, key, video_id)
    if job.expired_at is not None:
        raise video_expired(job, rt.settings.retention_days)
    wire = await job_to_wire(rt, job)
    result = wire["result"]
    if wire["status"] != "completed" or not result or not result["url"]:
        raise Conflict(
            f"Video job {video_id} has no downloadable video yet (status {wire['status']}).",
            code="video_not_ready",
            status=wire["status"],
        )
    if variant == "video":
        return RedirectResponse(result["url"], status_code=302)
    url = result["thumbnail_url" if variant == "thumbnail" else "spritesheet_url"]
    if not url:
        raise Conflict(
            f"Video job {video_id} has no {variant}: its copy into storage "
            + (
                "has not been made yet (it is retried)"
                if result["mirror_status"] != "stored"
                else "was made without one (before previews existed, or they failed)"
            )
            + ". The video itself is available (variant=video).",
            code="variant_not_available",
            variant=variant,
        )
    return RedirectResponse(url, status_code=302)


@router.get(
    "/{video_id}/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The video, from the upstream."},
        302: {"description": "The stored copy exists: go there."},
        **errors(403, 404, 410, 502),
    },
)
async def video_stream(
    video_id: str,
    expires: str = Query(..., description="Unix seconds; part of the signed link."),
    signature: str = Query(..., description="The link's HMAC."),
    rt: Runtime = Depends(runtime),
) -> Response:
    """A completed video whose copy into storage failed, streamed from the upstream with
    the provider's credentials (never shown). ``result.url`` points here, signed and
    expiring, so it works without an API key, like a stored file's link."""
    verify(STREAM_KEY.format(job_id=video_id), expires, signature, rt.signing_secret)
    async with rt.store.reading() as tx:
        job = await tx.get_job(video_id)
    if job is None or job.status is not PublicStatus.COMPLETED or job.result is None:
        raise NotFound(f"No delivered video {video_id!r}.", param="id")
    upstream_url = job.result.upstream_url
    url = await result_url(rt, job)
    if job.result.mirror_status is MirrorStatus.STORED and url:
        return RedirectResponse(url, status_code=302)
    spec = rt.catalog.get(job.delivered_by or job.current_model)
    provider = rt.providers.get(spec.provider)
    if provider is None:
        raise ServiceUnavailable(
            f"The provider that made this video ({spec.provider}) is not configured now.",
            code="provider_unavailable",
            retry_after=30,
        )
    location = ResultLocation(
        url=upstream_url,
        content_type=job.result.content_type or "video/mp4",
    )
    # a video the provider wrote into our storage is read from there
    chunks = (
        rt.storage.stream(upload_key(job))
        if upstream_url.startswith(UPLOADED)
        else provider.download(location)
    )
    try:
        first = await anext(chunks)  # errors (an expired link, say) answer before any byte
    except StopAsyncIteration:
        first = b""
    except ProviderError as exc:
        gone = exc.code in ("result_expired", "upstream_expired") or exc.upstream_status in (
            403,
            404,
            410,
        )
        # Anyone holding the link reads this: the upstream's own words (which can name
        # settings or addresses) go to the log, not into the answer.
        log.warning("job %s: streaming from the upstream failed: %s", video_id, exc.message)
        if gone:
            raise Gone(
                "The upstream no longer serves this video, and its copy into storage never "
                "succeeded.",
                code="upstream_expired",
            ) from None
        raise BadGateway(
            "The upstream did not serve the video; retry shortly.", retry_after=5
        ) from None

    async def body() -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)  # a generator: a client that left
            if close is not None:  # closes the upstream download too
                await close()

    return StreamingResponse(
        body(),
        media_type=location.content_type,
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )
