"""``/v1/storyboards``: an ordered list of shots made as jobs and joined into one video.

``POST`` validates every shot as ``POST /v1/videos`` would, checks that the balance
covers all of them, and answers 202 with the storyboard; a worker runs it
(``storyboards.driver``). ``GET`` shows its status, progress, shots and, once joined,
``result.url``, as a video job does.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, StringConstraints
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.api.access import check_available
from reelgate.api.auth import require_read, require_write, runtime
from reelgate.api.idempotency import Idempotency, idempotent
from reelgate.api.openapi import errors
from reelgate.api.schemas import (
    MetadataKey,
    MetadataValue,
    ModelId,
    Prompt,
    Seconds,
    Seed,
    Short,
    decode_image,
)
from reelgate.api.serialize import cost_to_wire, seconds_of
from reelgate.billing import format_credits, hold_for
from reelgate.catalog.validate import validate_submission
from reelgate.engine.commands import store_input
from reelgate.errors import Conflict, Gone, NotFound, ReelgateError, ValidationFailed
from reelgate.ids import new_id
from reelgate.job import Job, PublicStatus
from reelgate.netsafe import check_url
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.db import reading
from reelgate.store.jobs import now_ms
from reelgate.store.ledger import not_enough
from reelgate.store.sql import SqlTx
from reelgate.storyboards import store as boards
from reelgate.storyboards.driver import progress_of, shot_jobs, shot_problem
from reelgate.storyboards.model import MAX_SHOTS, Shot, ShotRun, Storyboard, StoryboardState

__all__ = ["router"]

router = APIRouter(prefix="/v1/storyboards", tags=["storyboards"])

_BUSY_TRIES = 50
_BUSY_PAUSE = 0.1

_ProviderParams = dict[Annotated[StrictStr, StringConstraints(max_length=64)], Any]
"""A synced model's own inputs, as ``POST /v1/videos`` takes them."""
_AUDIO_DOC = (
    "The model's audio switch (generate_audio...), for a model whose capabilities include "
    "audio; omitted: the model's default."
)
_PROVIDER_PARAMS_DOC = (
    "A synced model's own inputs that reelgate's fields do not carry "
    "(GET /v1/models: synced.provider_params), checked against its schema."
)


class ShotIn(BaseModel):
    """One shot: the native video body's fields."""

    model_config = ConfigDict(extra="forbid")

    model: ModelId
    prompt: Prompt
    duration_seconds: Seconds | None = None
    resolution: Short | None = None
    aspect_ratio: Short | None = None
    negative_prompt: StrictStr | None = Field(default=None, max_length=2000)
    seed: Seed | None = None
    fallback: list[ModelId] = Field(default_factory=list, max_length=8)
    image: StrictStr | None = Field(default=None, description="Inline start image (base64).")
    image_url: StrictStr | None = Field(default=None, max_length=2048)
    audio: StrictBool | None = Field(default=None, description=_AUDIO_DOC)
    provider_params: _ProviderParams | None = Field(
        default=None, max_length=32, description=_PROVIDER_PARAMS_DOC
    )


class ShotChange(BaseModel):
    """What to change in a shot that is made again (nothing: the same shot again)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelId | None = None
    prompt: Prompt | None = None
    duration_seconds: Seconds | None = None
    resolution: Short | None = None
    aspect_ratio: Short | None = None
    negative_prompt: StrictStr | None = Field(default=None, max_length=2000)
    seed: Seed | None = None
    fallback: list[ModelId] | None = Field(default=None, max_length=8)
    audio: StrictBool | None = Field(
        default=None, description=_AUDIO_DOC + " An explicit null clears the shot's."
    )
    provider_params: _ProviderParams | None = Field(
        default=None,
        max_length=32,
        description=_PROVIDER_PARAMS_DOC
        + " They replace the shot's; an explicit null clears them (a retry on another model).",
    )


class StoryboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shots: list[ShotIn] = Field(min_length=1, max_length=MAX_SHOTS)
    continue_from_previous: StrictBool = Field(
        default=False,
        description="Start each shot from the previous one's last frame (then shots run "
        "one after another; otherwise all at once).",
    )
    crossfade_seconds: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Blend each join over this long (0: cuts)."
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(default_factory=dict, max_length=16)


async def _owned(rt: Runtime, key: KeyInfo, storyboard_id: str) -> Storyboard:
    async with reading(rt.db) as conn:
        sb = await boards.get(conn, storyboard_id, key.account_id)
    if sb is None:
        raise NotFound(f"No storyboard {storyboard_id!r}.", param="id")
    return sb


def _status(job: Job | None) -> str:
    return job.status.value if job is not None else "pending"


async def storyboard_to_wire(rt: Runtime, sb: Storyboard, jobs: list[Job | None]) -> dict[str, Any]:
    delivered = [j for j in jobs if j is not None and j.status is PublicStatus.COMPLETED]
    cost = sum(j.cost or 0 for j in delivered)
    shots = []
    for index, (shot, run, job) in enumerate(zip(sb.shots, sb.runs, jobs, strict=True)):
        shots.append(
            {
                "index": index + 1,
                **shot.to_wire(),
                "video_id": run.job_id if job is not None else None,
                "status": _status(job),
                "progress": job.progress if job is not None else 0,
                "delivered_by": job.delivered_by if job is not None else None,
                "units_consumed": job.units_consumed if job is not None else None,
                "cost": cost_to_wire(rt, job.cost) if job is not None else None,
                "tried": list(run.tried),
            }
        )
    result = None
    if sb.result is not None and sb.expired_at is not None:
        kept = ("duration_seconds", "width", "height", "frames", "fps", "joins_at")
        result = {
            "expired": True,
            "expired_at": seconds_of(sb.expired_at),
            "url": None,
            **{k: sb.result.get(k) for k in kept},
        }
    elif sb.result is not None:
        r = sb.result
        ttl = rt.settings.signed_url_ttl_seconds
        poster, sprite = r.get("poster_key"), r.get("sprite_key")
        result = {
            "url": await rt.storage.signed_url(r["key"], ttl),
            "url_expires_in": ttl,
            "content_type": "video/mp4",
            **{k: r.get(k) for k in ("duration_seconds", "width", "height", "fps", "frames")},
            **{k: r.get(k) for k in ("bytes", "sha256", "has_audio", "joins_at", "spritesheet")},
            "thumbnail_url": await rt.storage.signed_url(poster, ttl) if poster else None,
            "spritesheet_url": await rt.storage.signed_url(sprite, ttl) if sprite else None,
        }
    stage = {StoryboardState.RUNNING: "shots", StoryboardState.JOINING: "joining"}.get(sb.state)
    return {
        "id": sb.id,
        "object": "storyboard",
        "status": sb.state.public,
        "stage": stage,
        "progress": sb.progress,
        "created_at": seconds_of(sb.created_at),
        "completed_at": seconds_of(sb.completed_at),
        "continue_from_previous": sb.continue_from_previous,
        "crossfade_seconds": sb.crossfade_seconds,
        "cancel_requested": sb.cancel_requested,
        "shots": shots,
        "result": result,
        "error": dict(sb.error) if sb.error is not None else None,
        "units_consumed": sum(j.units_consumed or 0 for j in delivered),
        "cost": cost_to_wire(rt, cost),
        "metadata": dict(sb.metadata),
    }


async def _wire(rt: Runtime, sb: Storyboard) -> dict[str, Any]:
    return await storyboard_to_wire(rt, sb, await shot_jobs(rt, sb))


_CLEARABLE = ("audio", "provider_params")


def _changed(shot: Shot, change: ShotChange | None) -> Shot:
    if change is None:
        return shot
    fields = change.model_dump(exclude_none=True)
    for name in _CLEARABLE:  # a synced model's own: null clears them for another model
        if name in change.model_fields_set:
            fields[name] = getattr(change, name)
    if "fallback" in fields:
        fields["fallback"] = tuple(fields["fallback"])
    return replace(shot, **fields)


def _shot(shot: ShotIn, image_key: str | None = None, mime: str | None = None) -> Shot:
    return Shot(
        model=shot.model,
        prompt=shot.prompt,
        duration_seconds=shot.duration_seconds,
        resolution=shot.resolution,
        aspect_ratio=shot.aspect_ratio,
        negative_prompt=shot.negative_prompt,
        seed=shot.seed,
        fallback=tuple(shot.fallback),
        image_key=image_key,
        image_mime_type=mime,
        image_url=shot.image_url,
        audio=shot.audio,
        provider_params=shot.provider_params,
    )


def _checked(
    rt: Runtime, continue_from_previous: bool, index: int, shot: Shot
) -> tuple[list[str], int, int]:
    """Shot ``index`` validated as a video job: its chain, its hold and its seconds."""
    continues = continue_from_previous and index > 0
    if continues and (shot.image_key or shot.image_url):
        raise ValidationFailed(
            f"Shot {index + 1} starts from the previous shot's last frame "
            "(continue_from_previous); remove its image.",
            param=f"shots[{index}].image",
        )
    try:
        checked = validate_submission(
            rt.catalog, shot.submission(continues=continues), route_of=rt.providers.route_of
        )
    except ReelgateError as exc:
        where = f"shots[{index}]"
        param = exc.details.get("param")
        exc.details["param"] = f"{where}.{param}" if param else where
        exc.message = f"Shot {index + 1}: {exc.message}"
        raise
    p = checked.params
    hold = hold_for(
        rt.catalog,
        checked.chain,
        p.resolution,
        p.duration_seconds,
        audio=p.audio,
        provider_params=p.provider_params,
    )
    return checked.chain, hold, p.duration_seconds


def _check_crossfade(fade: float, shots: int, shortest: int, param: str) -> None:
    """A crossfade must be shorter than every shot it blends (the join's own rule)."""
    if fade and shots > 1 and fade >= shortest:
        raise ValidationFailed(
            f"The crossfade ({fade:g} s) must be shorter than every shot (the shortest "
            f"is {shortest} s).",
            param=param,
        )


@router.post("", status_code=202, responses=errors(402))
async def create_storyboard(
    body: StoryboardIn,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Make each shot as a video job (in parallel, or one after another from the last
    frame with ``continue_from_previous``), then join them into one MP4. Answers 202
    at once; ``GET /v1/storyboards/{id}`` follows it. The bill is the sum of the shots
    delivered."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        holds, shortest = 0, None
        images: dict[int, tuple[bytes, str]] = {}
        for index, shot in enumerate(body.shots):
            if shot.image and shot.image_url:
                raise ValidationFailed(
                    "Send either image or image_url, not both.", param=f"shots[{index}].image"
                )
            if shot.image:
                try:
                    images[index] = decode_image(shot.image)
                except ReelgateError as exc:
                    exc.details["param"] = f"shots[{index}].image"
                    raise
            unstored = _shot(shot, image_key="(inline)" if shot.image else None)
            chain, hold, seconds = _checked(rt, body.continue_from_previous, index, unstored)
            shortest = seconds if shortest is None else min(shortest, seconds)
            await check_available(rt, key, chain)
            holds += hold
            if shot.image_url:
                check_url(
                    shot.image_url, rt.settings.net_policy(), param=f"shots[{index}].image_url"
                )
        if shortest is not None:
            _check_crossfade(body.crossfade_seconds, len(body.shots), shortest, "crossfade_seconds")
        async with rt.store.reading() as tx:
            balance = await tx.get_balance(key.account_id)
        if balance.available < holds:
            refusal = not_enough(balance, holds)
            refusal.message = (
                f"Not enough credits for these {len(body.shots)} shots: together they need "
                f"holds of {format_credits(holds)} credits but only "
                f"{format_credits(balance.available)} are available. Add credits or "
                "shorten the shots."
            )
            raise refusal
        now = now_ms()
        sb_id = new_id("storyboard")
        shots = []
        for index, shot in enumerate(body.shots):
            image_key, mime = None, None
            if index in images:
                data, mime = images[index]
                image_key = await store_input(rt, f"{sb_id}-{index + 1}", key.account_id, data)
            shots.append(_shot(shot, image_key, mime))
        sb = Storyboard(
            id=sb_id,
            account_id=key.account_id,
            key_id=key.key_id,
            shots=tuple(shots),
            runs=tuple(ShotRun() for _ in shots),
            continue_from_previous=body.continue_from_previous,
            crossfade_seconds=body.crossfade_seconds,
            metadata=body.metadata,
            next_run_at=now,
            created_at=now,
            updated_at=now,
        )
        answer = await storyboard_to_wire(rt, sb, [None] * len(shots))
        async with rt.store.begin() as tx:
            await boards.insert(_conn(tx), sb)
            if idem is not None:
                await idem.complete(tx, 202, answer)
        rt.wakeup.notify()
        return JSONResponse(
            answer, status_code=202, headers={"Location": f"/v1/storyboards/{sb.id}"}
        )

    return await idempotent(request, rt, key.account_id, handler)


def _conn(tx: object) -> AsyncConnection:
    """The SQL transaction's connection (storyboards live beside the jobs, as webhooks)."""
    return cast(SqlTx, tx).conn


@router.get("")
async def list_storyboards(
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None, description="Cursor: the last id of the previous page."),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    async with reading(rt.db) as conn:
        rows = await boards.list_for(conn, key.account_id, limit=limit + 1, after=after)
    page = rows[:limit]
    return {
        "object": "list",
        "data": [await _wire(rt, sb) for sb in page],
        "has_more": len(rows) > limit,
        "last_id": page[-1].id if page else None,
    }


@router.get("/{storyboard_id}", responses=errors(404))
async def get_storyboard(
    storyboard_id: str, key: KeyInfo = Depends(require_read), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    return await _wire(rt, await _owned(rt, key, storyboard_id))


@router.get("/{storyboard_id}/content", responses={**errors(404, 409, 410)})
async def storyboard_content(
    storyboard_id: str, key: KeyInfo = Depends(require_read), rt: Runtime = Depends(runtime)
) -> RedirectResponse:
    """Redirect to the joined video (``result.url``)."""
    sb = await _owned(rt, key, storyboard_id)
    if sb.expired_at is not None:
        raise Gone(
            f"The video of storyboard {storyboard_id} was deleted: videos are kept "
            f"{rt.settings.retention_days:g} days. Its shots' jobs and bills remain.",
            code="video_expired",
            expired_at=seconds_of(sb.expired_at),
        )
    wire = await _wire(rt, sb)
    if wire["result"] is None:
        raise Conflict(
            f"Storyboard {storyboard_id} has no video yet (status {wire['status']}).",
            code="video_not_ready",
            status=wire["status"],
        )
    return RedirectResponse(wire["result"]["url"], status_code=302)


@router.post("/{storyboard_id}/shots/{shot}/retry", status_code=202, responses=errors(404, 409))
async def retry_shot(
    storyboard_id: str,
    request: Request,
    change: ShotChange | None = None,
    shot: int = Path(ge=1, le=MAX_SHOTS, description="The shot's number, from 1."),
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Make a failed or canceled shot again, keeping every other shot; the body may
    change its fields (a reworded prompt after a refusal, another model)."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        # A worker holds a storyboard only for the moment it looks at it (a failed one
        # is never joining): the retry is tried again on a fresh read until it lands.
        for _ in range(_BUSY_TRIES):
            sb = await _owned(rt, key, storyboard_id)
            if shot > len(sb.shots):
                raise NotFound(
                    f"Storyboard {storyboard_id} has {len(sb.shots)} shots.", param="shot"
                )
            jobs = await shot_jobs(rt, sb)
            job = jobs[shot - 1]
            joined_badly = (sb.error or {}).get("code") == "join_failed"
            retryable = job is None or shot_problem(job) is not None or joined_badly
            if sb.state is not StoryboardState.FAILED or sb.cancel_requested or not retryable:
                raise Conflict(
                    f"Shot {shot} of storyboard {storyboard_id} is {_status(job)} and the "
                    f"storyboard is {sb.state.public}: only a failed shot of a failed "
                    "storyboard is retried.",
                    code="shot_not_retryable",
                    status=_status(job),
                )
            again = _changed(sb.shots[shot - 1], change)
            chain, _, seconds = _checked(rt, sb.continue_from_previous, shot - 1, again)
            await check_available(rt, key, chain)
            _check_crossfade(sb.crossfade_seconds, len(sb.shots), seconds, "duration_seconds")
            jobs_now = [*jobs[: shot - 1], None, *jobs[shot:]]
            progress = progress_of(sb, jobs_now)
            now = now_ms()
            async with rt.store.begin() as tx:
                conn = _conn(tx)
                if await boards.restart_shot(conn, sb, shot - 1, again, now, progress):
                    fresh = await boards.get(conn, storyboard_id, key.account_id)
                    assert fresh is not None
                    answer = await storyboard_to_wire(rt, fresh, jobs_now)
                    if idem is not None:
                        await idem.complete(tx, 202, answer)
                    break
            await asyncio.sleep(_BUSY_PAUSE)
        else:
            raise Conflict(
                "A worker is updating this storyboard; retry in a few seconds.",
                code="storyboard_busy",
                retry_after=5,
            )
        rt.wakeup.notify()
        return JSONResponse(answer, status_code=202)

    return await idempotent(request, rt, key.account_id, handler)


@router.post("/{storyboard_id}/cancel", responses=errors(404, 409))
async def cancel_storyboard(
    storyboard_id: str,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Stop it: shots in flight are canceled (what was delivered stays billed)."""

    async def handler(idem: Idempotency | None) -> JSONResponse:
        sb = await _owned(rt, key, storyboard_id)
        if sb.state.is_final:
            raise Conflict(
                f"Storyboard {storyboard_id} is {sb.state.public} already.",
                code="storyboard_final",
                status=sb.state.public,
            )
        async with rt.store.begin() as tx:
            marked = await boards.request_cancel(_conn(tx), sb, now_ms())
        fresh = await _owned(rt, key, storyboard_id)
        if not marked:
            raise Conflict(
                f"Storyboard {storyboard_id} is {fresh.state.public} already.",
                code="storyboard_final",
                status=fresh.state.public,
            )
        rt.wakeup.notify()
        return JSONResponse(await _wire(rt, fresh), status_code=200)

    return await idempotent(request, rt, key.account_id, handler)
