"""The worker: claims due jobs, advances each one step, and sleeps until the next is due.

One main loop plus named, supervised side tasks:
- ``webhooks`` (``webhooks.dispatch``) fans job events out to webhook receivers and
  sends them, in tasks of its own: a slow receiver never holds up a step;
- ``retention`` (``engine.retention``) deletes delivered videos past their keep time;
- ``catalog-sync`` (``engine.catalog_sync``) refreshes the synced catalog from fal and
  Replicate every ``catalog_sync_hours`` (off by default);
- ``storyboards`` (``storyboards.driver``) submits storyboards' shots as jobs and joins
  their videos;
- ``lease-renewer`` keeps the leases of jobs in hand alive while a long step
  (an upload, a slow upstream) runs, so no other worker takes them over;
- the wake-up listener (``store.wakeup``) cuts the sleep short when a job
  is submitted or becomes due.

Nothing is kept in memory between steps: a job waiting on its provider is
only a row with a ``next_run_at``. Shutdown (SIGTERM/SIGINT → ``stop()``)
stops claiming, lets the steps in hand finish, and releases every lease.

The loop never ends on an error: a database that is down, cut or frozen
makes it back off (0.5 s doubling to 15 s, logged once per outage) and
resume by itself when the database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from reelgate import metrics
from reelgate.engine.steps import Stepper
from reelgate.job import Job
from reelgate.logs import job_context
from reelgate.store.base import Store
from reelgate.store.db import is_unavailable
from reelgate.store.jobs import now_ms
from reelgate.store.wakeup import Wakeup

if TYPE_CHECKING:
    from reelgate.engine.catalog_sync import CatalogSyncer
    from reelgate.engine.retention import Sweeper
    from reelgate.runtime import Runtime
    from reelgate.storyboards.driver import StoryboardDriver
    from reelgate.webhooks.dispatch import Dispatcher

__all__ = ["Worker", "new_worker_id"]

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Claims due jobs from the store and has the stepper advance each by one step.

    It receives what it uses: the store, a stepper, the wake-up channel and the
    clock. ``Worker.from_runtime`` builds one from a process's runtime."""

    def __init__(
        self,
        *,
        store: Store,
        stepper: Stepper,
        wakeup: Wakeup,
        concurrency: int,
        lease_seconds: float,
        idle_poll_seconds: float,
        shutdown_grace_seconds: float = 30.0,
        clock: Callable[[], int] = now_ms,
        webhooks: Dispatcher | None = None,
        sweeper: Sweeper | None = None,
        storyboards: StoryboardDriver | None = None,
        catalog_sync: CatalogSyncer | None = None,
    ) -> None:
        self.store = store
        self.catalog_sync = catalog_sync
        self.webhooks = webhooks
        self.sweeper = sweeper
        self.storyboards = storyboards
        self.wakeup = wakeup
        self.id = stepper.worker_id
        self.concurrency = concurrency
        self.lease_ms = int(lease_seconds * 1000)
        self.idle_poll = idle_poll_seconds
        self.grace = shutdown_grace_seconds
        self.clock = clock
        self.stepper = stepper
        self._in_hand: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._step_done = asyncio.Event()
        self.steps_run = 0
        self._beat_at: float | None = None

    @classmethod
    def from_runtime(
        cls,
        rt: Runtime,
        *,
        concurrency: int | None = None,
        lease_seconds: float | None = None,
        idle_poll_seconds: float | None = None,
        shutdown_grace_seconds: float = 30.0,
    ) -> Worker:
        from reelgate.engine.catalog_sync import CatalogSyncer
        from reelgate.engine.retention import Sweeper
        from reelgate.storyboards.driver import StoryboardDriver
        from reelgate.webhooks.dispatch import Dispatcher

        s = rt.settings
        return cls(
            store=rt.store,
            stepper=Stepper.from_runtime(rt, new_worker_id()),
            wakeup=rt.wakeup,
            concurrency=concurrency or s.worker_concurrency,
            lease_seconds=lease_seconds or s.lease_seconds,
            idle_poll_seconds=idle_poll_seconds or s.idle_poll_seconds,
            shutdown_grace_seconds=shutdown_grace_seconds,
            webhooks=Dispatcher(rt),
            sweeper=Sweeper(rt),
            storyboards=StoryboardDriver(rt),
            catalog_sync=CatalogSyncer(rt) if s.catalog_sync_hours > 0 else None,
        )

    def stop(self) -> None:
        """Ask the loop to finish the steps in hand and return (signal-handler safe)."""
        self._stopping.set()
        self.wakeup.notify()

    async def _renew_forever(self) -> None:
        interval = self.lease_ms / 3000.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.renew_leases(
                    self.id, list(self._in_hand), self.lease_ms, self.clock()
                )
                self._beat_at = time.monotonic()
            except Exception as exc:  # a DB blip must not kill the renewer
                if is_unavailable(exc):
                    log.warning("lease renewal: database unavailable; retrying in %.1fs", interval)
                else:
                    log.exception("lease renewal failed; retrying in %.1fs", interval)

    async def _run_step(self, job: Job) -> None:
        started = time.monotonic()
        try:
            with job_context(job):
                await self.stepper.advance(job)
            metrics.step_done(job.state.value, time.monotonic() - started)
        except Exception as exc:
            # A bug, an unclassified failure or a database outage: leave the job
            # leased; when the lease runs out another attempt is made. Never crash
            # the loop.
            if is_unavailable(exc):
                log.warning("job %s: step %s stopped: database unavailable", job.id, job.state)
            else:
                log.exception("job %s: step %s raised", job.id, job.state)
        finally:
            self.steps_run += 1
            if self._in_hand.get(job.id) is asyncio.current_task():
                self._in_hand.pop(job.id, None)
            self._step_done.set()

    async def _claim(self) -> tuple[int, int]:
        """Lease due jobs for the free slots and start their steps: (free, claimed)."""
        free = self.concurrency - len(self._in_hand)
        if free <= 0:
            return 0, 0
        jobs = await self.store.claim_due(
            self.id,
            limit=free,
            lease_ms=self.lease_ms,
            now=self.clock(),
            in_hand=list(self._in_hand),
        )
        for job in jobs:
            self._in_hand[job.id] = asyncio.create_task(self._run_step(job), name=f"step-{job.id}")
        return free, len(jobs)

    async def _idle_wait(self) -> None:
        """Sleep until a step ends, a wake-up comes, or the next job falls due. With
        every slot busy only a step's end (or ``stop``) can let more work in, so the
        next wake-up is not asked for: that query would run once per step for nothing."""
        timeout: float | None = None
        if len(self._in_hand) < self.concurrency:
            wake_at = await self.store.next_wakeup()
            timeout = self.idle_poll
            if wake_at is not None:
                timeout = min(timeout, max(0.0, (wake_at - self.clock()) / 1000.0) + 0.005)
        waits: list[asyncio.Task[bool]] = [asyncio.create_task(self._step_done.wait())]
        if timeout is None:
            waits.append(asyncio.create_task(self._stopping.wait()))
        else:
            waits.append(asyncio.create_task(self.wakeup.wait(timeout)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            self._step_done.clear()

    async def _cycle(self, burst: bool) -> bool:
        """Claim what is due, else wait for the next wake-up. True: burst is done.

        A claim that filled every free slot may have left more due: claim again. One
        that took fewer than it could took everything due now: wait."""
        free, claimed = await self._claim()
        if claimed and claimed == free:
            return False
        if burst and not self._in_hand and await self.store.count_active() == 0:
            return True
        await self._idle_wait()
        return False

    async def run(self, *, burst: bool = False) -> None:
        """Work until ``stop()``; with ``burst``, until no job is left in flight."""
        renewer = asyncio.create_task(self._renew_forever(), name="lease-renewer")
        sides = [
            asyncio.create_task(side.run(), name=name)
            for name, side in self._sides()
            if side is not None
        ]
        log.info("worker %s started (concurrency %d)", self.id, self.concurrency)
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    done = await self._cycle(burst)
                    self._beat_at = time.monotonic()
                    if done:
                        break
                except Exception as exc:
                    failures += 1
                    await self._back_off(exc, failures)
                    continue
                if failures:
                    log.info("worker %s: the database answers again; resuming", self.id)
                    failures = 0
        finally:
            await self._shutdown(renewer)
            for _name, side in self._sides():
                if side is not None:
                    side.stop()
            await asyncio.gather(*sides, return_exceptions=True)

    def _sides(
        self,
    ) -> list[tuple[str, Dispatcher | Sweeper | StoryboardDriver | CatalogSyncer | None]]:
        """The loops beside the job loop: webhooks, retention, storyboards, catalog sync."""
        return [
            ("webhooks", self.webhooks),
            ("retention", self.sweeper),
            ("storyboards", self.storyboards),
            ("catalog-sync", self.catalog_sync),
        ]

    def heartbeat_age(self) -> float | None:
        """Seconds since this worker last reached the database (a claim cycle or a lease
        renewal, every lease/3 seconds even with every slot busy); None before it has."""
        return None if self._beat_at is None else time.monotonic() - self._beat_at

    async def _back_off(self, exc: Exception, failures: int) -> None:
        delay = min(15.0, 0.5 * 2 ** min(failures - 1, 5)) * random.uniform(0.8, 1.2)  # noqa: S311
        if not is_unavailable(exc):
            log.exception("worker %s: loop failed; retrying in %.1fs", self.id, delay)
        elif failures == 1 or failures % 10 == 0:
            log.warning(
                "worker %s: database unavailable (%s); backing off, retrying in %.1fs",
                self.id,
                type(exc).__name__,
                delay,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _shutdown(self, renewer: asyncio.Task[None]) -> None:
        if self._in_hand:
            log.info("worker %s: finishing %d steps in hand", self.id, len(self._in_hand))
            _done, pending = await asyncio.wait(list(self._in_hand.values()), timeout=self.grace)
            for task in pending:
                task.cancel()
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        try:
            released = await self.store.release_leases(self.id)
        except Exception as exc:
            # the leases run out by themselves; another worker takes the jobs over
            log.warning("worker %s stopped; could not release its leases (%s)", self.id, exc)
            return
        log.info("worker %s stopped; released %d leases", self.id, released)
