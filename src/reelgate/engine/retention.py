"""Retention: a delivered video is kept ``retention_days`` after it was delivered, then a
sweeper in the workers deletes it from storage; a pinned one is kept for ever.

An expired job keeps its row, its bill and its usage line: only its video goes. The
sweep marks the job first (``expired_at``, and a ``video.expired`` event that streams
and webhooks carry like any other) in one transaction, then deletes the files and
records it (``purged_at``), so a pin or a re-mirror that comes in between finds the
job expired and is refused, never left pointing at a deleted file; a delete that
fails (storage down) or a sweeper that dies after marking is taken up again by the
next sweep.

The local renderer's work directory is swept too: renders of finished jobs and its
cache older than ``local_renders_keep_hours``. Their videos are in storage by then,
unless a copy kept failing that long: such a ``local`` job's video goes with its
render (a provider's own link would have expired too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reelgate.job import JobState, PublicStatus
from reelgate.storage.keys import stored_keys
from reelgate.store.codec import decode_params, decode_result
from reelgate.store.db import is_unavailable, reading
from reelgate.store.jobs import now_ms
from reelgate.store.schema import job_events, jobs
from reelgate.storyboards import store as boards

if TYPE_CHECKING:
    from reelgate.runtime import Runtime

__all__ = ["DAY_MS", "Sweeper"]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
BATCH = 100


class Sweeper:
    def __init__(self, rt: Runtime, *, clock: Callable[[], int] = now_ms) -> None:
        s = rt.settings
        self.rt = rt
        self.clock = clock
        self.keep_ms = int(s.retention_days * DAY_MS)
        self.interval = s.retention_sweep_seconds
        self.local_keep_seconds = s.local_renders_keep_hours * 3600
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                while await self._expire() == BATCH:
                    pass
                while await self.purge_once() == BATCH:
                    pass
                while await self.sweep_storyboards() == BATCH:
                    pass
                await asyncio.to_thread(self.sweep_local)
                failures = 0
                pause = self.interval
            except Exception as exc:
                failures += 1
                pause = min(self.interval, 5.0 * 2**failures)
                if is_unavailable(exc):
                    log.warning("retention sweep: database unavailable; again in %.0fs", pause)
                else:
                    log.exception("retention sweep failed; again in %.0fs", pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=pause)

    async def sweep_once(self) -> int:
        """Expire up to a batch of videos past their time, then delete the files of up
        to a batch of expired ones; returns how many were expired."""
        expired = await self._expire()
        await self.purge_once()
        return expired

    async def _expire(self) -> int:
        if self.keep_ms <= 0:
            return 0
        now = self.clock()
        async with self.rt.db.begin() as conn:
            query = (
                sa.select(jobs.c.id)
                .where(
                    jobs.c.completed_at < now - self.keep_ms,
                    jobs.c.expired_at.is_(None),
                    jobs.c.pinned_at.is_(None),
                    jobs.c.state == JobState.COMPLETED.value,
                )
                .order_by(jobs.c.completed_at)
                .limit(BATCH)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list((await conn.execute(query)).scalars())
            if not ids:
                return 0
            expired = (
                await conn.execute(
                    jobs.update()
                    .where(
                        jobs.c.id.in_(ids),
                        jobs.c.expired_at.is_(None),
                        jobs.c.pinned_at.is_(None),
                    )
                    .values(expired_at=now, updated_at=now, event_seq=jobs.c.event_seq + 1)
                    .returning(jobs.c.id, jobs.c.event_seq, jobs.c.progress)
                )
            ).all()
            if expired:
                await conn.execute(
                    job_events.insert(),
                    [
                        {
                            "job_id": row.id,
                            "seq": row.event_seq,
                            "type": "video.expired",
                            "status": PublicStatus.COMPLETED.value,
                            "progress": row.progress,
                            "created_at": now,
                        }
                        for row in expired
                    ],
                )
        if expired:
            log.info("retention: %d videos expired", len(expired))
        return len(ids)

    async def purge_once(self) -> int:
        """Delete the files of expired videos not yet purged (a delete that failed, or a
        sweeper that died after marking, is taken up again here); returns how many."""
        async with reading(self.rt.db) as conn:
            rows = (
                await conn.execute(
                    sa.select(jobs.c.id, jobs.c.result, jobs.c.params)
                    .where(jobs.c.expired_at.is_not(None), jobs.c.purged_at.is_(None))
                    .order_by(jobs.c.expired_at)
                    .limit(BATCH)
                )
            ).all()
        purged = [row.id for row in rows if await self._delete_files(row)]
        if purged:
            async with self.rt.db.begin() as conn:
                await conn.execute(
                    jobs.update().where(jobs.c.id.in_(purged)).values(purged_at=self.clock())
                )
            log.info("retention: deleted the files of %d expired videos", len(purged))
        return len(purged)

    async def sweep_storyboards(self) -> int:
        """Storyboards' joined videos go as their shots' do: marked expired, then their
        files deleted (a delete that fails is tried at the next sweep); how many were
        deleted. Their shots are jobs, swept above."""
        if self.keep_ms <= 0:
            return 0
        now = self.clock()
        async with self.rt.db.begin() as conn:
            await boards.expire_due(conn, now - self.keep_ms, now, BATCH)
        async with reading(self.rt.db) as conn:
            due = await boards.purge_expired(conn, BATCH)
        purged = []
        for storyboard_id, keys in due:
            try:
                for key in keys:
                    await self.rt.storage.delete(key)
            except Exception:
                log.exception("retention: could not delete a file of storyboard %s", storyboard_id)
                continue
            purged.append(storyboard_id)
        if purged:
            async with self.rt.db.begin() as conn:
                await boards.mark_purged(conn, purged, self.clock())
            log.info("retention: deleted the videos of %d expired storyboards", len(purged))
        return len(purged)

    async def _delete_files(self, row: Any) -> bool:
        result = decode_result(row.result)
        params = decode_params(row.params)
        for key in stored_keys(result, params):
            try:
                await self.rt.storage.delete(key)
            except Exception:  # tried again at the next sweep
                log.exception("retention: could not delete a file of job %s", row.id)
                return False
        return True

    def sweep_local(self) -> int:
        """The local renderer's finished renders and cache past their keep time."""
        from reelgate.providers.local import LocalProvider

        provider = self.rt.providers.get("local")
        if not isinstance(provider, LocalProvider) or self.local_keep_seconds <= 0:
            return 0
        return provider.sweep(self.local_keep_seconds, self.clock() / 1000)
