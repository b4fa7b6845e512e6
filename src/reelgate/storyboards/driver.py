"""The worker's storyboard loop: lease a due storyboard, look at its shots' jobs, submit
the shots that may start, and join the shots into one video once all are delivered.

- Shots are ordinary jobs (``engine.commands.submit_job``): their own hold, fallback,
  retries, deadline and bill. A storyboard's bill is the sum of its delivered shots.
- Without ``continue_from_previous`` every shot is submitted at once and they run in
  parallel; with it, shot *n + 1* starts when shot *n* is delivered, from its last frame
  (``engine.edits.last_frame``) as the start image.
- A shot's job id is chosen and saved before the submit: a worker that dies between
  the two leaves an id whose job either exists (it is used) or does not (it is submitted
  again under that id), so a shot is never made twice.
- A shot that fails makes the storyboard ``failed``; the other shots go on, and
  ``restart_shot`` (``POST /v1/storyboards/{id}/shots/{n}/retry``) makes only that one
  again.
- The join (``media.join``) runs in a thread while the lease is held long enough for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from reelgate.catalog.validate import validate_submission
from reelgate.engine.commands import NewJob, request_cancel, submit_job
from reelgate.engine.edits import last_frame
from reelgate.engine.mirror import fetch_stored, spool_dir, store_file
from reelgate.errors import ReelgateError, StorageError
from reelgate.ids import new_id, new_job_id
from reelgate.job import MAX_IMAGE_BYTES, Job, MirrorStatus, PublicStatus
from reelgate.media.join import JoinSpec, join_clips
from reelgate.store.db import is_unavailable, reading
from reelgate.store.jobs import now_ms
from reelgate.storyboards import store as boards
from reelgate.storyboards.model import Shot, ShotRun, Storyboard, StoryboardState

if TYPE_CHECKING:
    from reelgate.runtime import Runtime

__all__ = ["StoryboardDriver", "progress_of", "shot_jobs", "shot_problem", "storyboard_keys"]

log = logging.getLogger(__name__)

LEASE_MS = 60_000
JOIN_LEASE_MS = 30 * 60_000
"""Held through a join: long enough for the longest (20 shots of 20 s, measured in
``make bench``), and it runs out if the worker dies."""
POLL_SECONDS = 0.5
"""How often a running storyboard looks at its shots' jobs (one write each time)."""
IDLE_SECONDS = 0.25
"""How often a worker looks for storyboards that are due (one indexed read)."""
BUSY_RETRY_MS = 5_000
"""A shot the account's in-flight limits keep out now is submitted again after this."""


def storyboard_keys(sb: Storyboard) -> tuple[str, str, str]:
    """Where its video, poster and sprite sheet are stored."""
    base = f"storyboards/{sb.account_id}/{sb.id}"
    return f"{base}/video.mp4", f"{base}/poster.webp", f"{base}/sprite.jpg"


async def shot_jobs(rt: Runtime, sb: Storyboard) -> list[Job | None]:
    """Each shot's current job (None: not submitted yet)."""
    async with rt.store.reading() as tx:
        return [
            await tx.get_job(run.job_id, sb.account_id, include_deleted=True)
            if run.job_id
            else None
            for run in sb.runs
        ]


def _delivered(job: Job | None) -> bool:
    """Made, and its copy is stored and still there: a shot the join can use."""
    result = job.result if job is not None else None
    return (
        job is not None
        and job.status is PublicStatus.COMPLETED
        and job.deleted_at is None
        and job.expired_at is None
        and result is not None
        and result.mirror_status is MirrorStatus.STORED
        and result.key is not None
    )


def shot_problem(job: Job | None) -> str | None:
    """Why this shot cannot be used (it is then retried as a failed one), or None."""
    if job is None:
        return None
    if job.deleted_at is not None or job.expired_at is not None:
        return "its video was deleted"
    if job.status in (PublicStatus.FAILED, PublicStatus.CANCELED):
        reason = job.error.message if job.error is not None else job.status.value
        return f"{job.status.value}: {reason.rstrip('. ')}"
    result = job.result
    copy_gave_up = (
        job.status is PublicStatus.COMPLETED
        and result is not None
        and result.mirror_status is MirrorStatus.FAILED
        and result.mirror_retry_at is None
    )
    return "its video could not be copied into storage" if copy_gave_up else None


def progress_of(sb: Storyboard, jobs: list[Job | None]) -> int:
    """The whole storyboard's: the shots by their seconds (90 %), then the join."""
    weights = [max(1, s.duration_seconds or 4) for s in sb.shots]
    done = sum(
        w * (100 if _delivered(j) else (j.progress if j is not None else 0))
        for w, j in zip(weights, jobs, strict=True)
    )
    return min(90, done * 90 // (100 * sum(weights)))


class StoryboardDriver:
    def __init__(self, rt: Runtime, *, clock: Callable[[], int] = now_ms) -> None:
        self.rt = rt
        self.clock = clock
        self.owner = f"storyboards-{new_id('w')}"
        self._stopping = asyncio.Event()
        self.joins = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self.run_once()
                failures = 0
            except Exception as exc:
                failures += 1
                if is_unavailable(exc):
                    log.warning("storyboards: database unavailable; retrying")
                else:
                    log.exception("storyboards: a pass failed; retrying")
            delay = min(15.0, POLL_SECONDS * 2**failures) if failures else IDLE_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def run_once(self) -> int:
        """Advance every storyboard that is due, side by side (a join in one does not
        hold up the others); how many were."""
        async with reading(self.rt.db) as conn:  # a read first: no write lock while idle
            due = await boards.next_due(conn)
        if due is None or due > self.clock():
            return 0
        async with self.rt.db.begin() as conn:
            claimed = await boards.claim_due(conn, self.owner, self.clock(), LEASE_MS, 8)
        await asyncio.gather(*(self._advance_logged(sb) for sb in claimed))
        return len(claimed)

    async def _advance_logged(self, sb: Storyboard) -> None:
        try:
            await self.advance(sb)
        except Exception:
            # left leased: the lease runs out and it is advanced again
            log.exception("storyboard %s: step raised", sb.id)

    async def _save(self, sb: Storyboard, *, keep_lease_ms: int | None = None) -> bool:
        async with self.rt.db.begin() as conn:
            return await boards.save(
                conn, sb, self.owner, self.clock(), keep_lease_ms=keep_lease_ms
            )

    async def advance(self, sb: Storyboard) -> None:
        now = self.clock()
        jobs = await shot_jobs(self.rt, sb)
        if sb.cancel_requested and sb.state is not StoryboardState.CANCELED:
            await self._cancel(sb, jobs, now)
            return
        if sb.state in (StoryboardState.COMPLETED, StoryboardState.CANCELED):
            await self._save(replace(sb, next_run_at=None, updated_at=now))
            return
        failed = self._first_failed(sb, jobs)
        if failed is not None:
            index, job, problem = failed
            await self._save(self._failed_on(sb, jobs, index, job, problem, now))
            return
        for index in range(len(sb.shots)):
            if jobs[index] is None and self._may_start(sb, jobs, index):
                sb, made, error = await self._submit(sb, index, jobs, now)
                if error is not None:
                    await self._save(error)
                    return
                jobs[index] = made
        if all(_delivered(j) for j in jobs):
            await self._join(sb, jobs)
            return
        await self._save(
            replace(
                sb,
                state=StoryboardState.RUNNING,
                progress=max(sb.progress, progress_of(sb, jobs)),
                next_run_at=now + int(POLL_SECONDS * 1000),
                updated_at=now,
            )
        )

    def _may_start(self, sb: Storyboard, jobs: list[Job | None], index: int) -> bool:
        return not sb.continue_from_previous or index == 0 or _delivered(jobs[index - 1])

    def _first_failed(self, sb: Storyboard, jobs: list[Job | None]) -> tuple[int, Job, str] | None:
        for index, job in enumerate(jobs):
            problem = shot_problem(job)
            if job is not None and problem is not None:
                return index, job, problem
        return None

    def _failed_on(
        self, sb: Storyboard, jobs: list[Job | None], index: int, job: Job, problem: str, now: int
    ) -> Storyboard:
        code = job.error.code if job.error is not None else job.status.value
        # the other shots go on (they are billed when delivered); look again until they end
        running = any(
            j is not None and j.deleted_at is None and not j.status.is_final for j in jobs
        )
        return replace(
            sb,
            state=StoryboardState.FAILED,
            progress=max(sb.progress, progress_of(sb, jobs)),
            error={
                "code": "shot_failed",
                "message": f"Shot {index + 1} ({job.id}) {problem}. "
                f"Retry it with POST /v1/storyboards/{sb.id}/shots/{index + 1}/retry; "
                "the other shots are kept.",
                "shot": index + 1,
                "video_id": job.id,
                "shot_error": code,
            },
            next_run_at=now + int(POLL_SECONDS * 1000) if running else None,
            updated_at=now,
        )

    async def _submit(
        self, sb: Storyboard, index: int, jobs: list[Job | None], now: int
    ) -> tuple[Storyboard, Job | None, Storyboard | None]:
        """Submit shot ``index``: (the storyboard, its job, or the storyboard failed)."""
        shot, run = sb.shots[index], sb.runs[index]
        job_id = run.job_id or new_job_id()
        if run.job_id is None:
            sb = sb.with_run(index, ShotRun(job_id=job_id, tried=run.tried))
            if not await self._save(sb, keep_lease_ms=LEASE_MS):
                raise RuntimeError("the storyboard's lease was lost")
        previous = jobs[index - 1] if index else None
        try:
            new = await self._new_job(sb, shot, index, job_id, previous)
            job = await submit_job(self.rt, new)
        except ReelgateError as exc:
            if exc.http_status == 429:  # the account's in-flight limits: later
                return sb, None, replace(sb, next_run_at=now + BUSY_RETRY_MS, updated_at=now)
            gone = isinstance(exc, StorageError) and exc.code == "object_not_found"
            if gone and previous is not None and sb.continue_from_previous:
                # the shot it continues from lost its video (deleted meanwhile): that shot
                # is the one to make again
                missing = "its video is missing from storage"
                return sb, None, self._failed_on(sb, jobs, index - 1, previous, missing, now)
            failed = replace(
                sb,
                state=StoryboardState.FAILED,
                error={
                    "code": exc.code,
                    "message": f"Shot {index + 1} could not be submitted: {exc.message}",
                    "shot": index + 1,
                },
                next_run_at=None,
                updated_at=now,
            )
            return sb, None, failed.with_run(index, ShotRun(job_id=None, tried=run.tried))
        return sb, job, None

    async def _new_job(
        self, sb: Storyboard, shot: Shot, index: int, job_id: str, previous: Job | None
    ) -> NewJob:
        rt = self.rt
        continues = sb.continue_from_previous and index > 0
        checked = validate_submission(
            rt.catalog, shot.submission(continues=continues), route_of=rt.providers.route_of
        )
        image: bytes | None = None
        mime: str | None = None
        params = checked.params
        if continues:
            assert previous is not None
            assert previous.result is not None
            assert previous.result.key is not None
            image, mime = await last_frame(rt.storage, previous.result.key), "image/png"
        elif shot.image_key:
            image = await rt.storage.read_bytes(shot.image_key, MAX_IMAGE_BYTES)
            mime = shot.image_mime_type
        elif shot.image_url:
            params = replace(params, image_url=shot.image_url)
        return NewJob(
            account_id=sb.account_id,
            key_id=sb.key_id,
            chain=tuple(checked.chain),
            prompt=shot.prompt,
            params=params,
            deadline_seconds=checked.deadline_seconds or rt.settings.default_deadline_seconds,
            metadata={**sb.metadata, "storyboard_id": sb.id, "storyboard_shot": str(index + 1)},
            image=image,
            image_mime_type=mime,
            job_id=job_id,
        )

    async def _cancel(self, sb: Storyboard, jobs: list[Job | None], now: int) -> None:
        for job in jobs:
            if job is not None and not job.status.is_final:
                with contextlib.suppress(ReelgateError):
                    await request_cancel(self.rt, sb.account_id, job.id)
        await self._save(
            replace(
                sb,
                state=StoryboardState.CANCELED,
                next_run_at=None,
                completed_at=now,
                updated_at=now,
            )
        )

    async def _join(self, sb: Storyboard, jobs: list[Job | None]) -> None:
        now = self.clock()
        joining = replace(sb, state=StoryboardState.JOINING, progress=90, updated_at=now)
        if not await self._save(joining, keep_lease_ms=JOIN_LEASE_MS):
            return
        spool = spool_dir()
        try:
            clips = []
            for index, job in enumerate(jobs):
                assert job is not None
                assert job.result is not None
                assert job.result.key
                clip = spool / f"shot-{index + 1}.mp4"
                try:
                    await fetch_stored(
                        self.rt.storage, job.result.key, clip, self.rt.settings.mirror_max_bytes
                    )
                except StorageError as exc:
                    if exc.code != "object_not_found":
                        raise
                    gone = "its video is missing from storage"
                    await self._save(self._failed_on(joining, jobs, index, job, gone, now))
                    return
                clips.append(clip)
            out = spool / "joined.mp4"
            spec = JoinSpec(crossfade_seconds=sb.crossfade_seconds)
            joined = await asyncio.to_thread(join_clips, clips, out, spec)
            video_key, poster_key, sprite_key = storyboard_keys(sb)
            copy = await store_file(
                self.rt.storage,
                out,
                video_key,
                spool=spool,
                preview_keys=(poster_key, sprite_key) if self.rt.settings.previews else None,
            )
        except StorageError as exc:  # storage trouble: the join is tried again
            log.warning("storyboard %s: join: %s; retrying", sb.id, exc.code)
            await self._save(replace(joining, next_run_at=self.clock() + 30_000))
            return
        except (ReelgateError, ValueError, OSError) as exc:
            message = exc.message if isinstance(exc, ReelgateError) else str(exc)
            error = {"code": "join_failed", "message": f"The shots could not be joined: {message}"}
            await self._save(
                replace(joining, state=StoryboardState.FAILED, error=error, next_run_at=None)
            )
            return
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        self.joins += 1
        done = self.clock()
        result = {
            "key": copy.key,
            "bytes": copy.bytes,
            "sha256": copy.sha256,
            "duration_seconds": copy.duration_seconds,
            "width": copy.width,
            "height": copy.height,
            "fps": joined.fps,
            "frames": joined.frames,
            "has_audio": copy.has_audio,
            "joins_at": list(joined.joins_at),
            "poster_key": copy.poster_key,
            "sprite_key": copy.sprite_key,
            "spritesheet": copy.sprite_layout,
        }
        await self._save(
            replace(
                joining,
                state=StoryboardState.COMPLETED,
                progress=100,
                result=result,
                error=None,
                next_run_at=None,
                completed_at=done,
                updated_at=done,
            )
        )
