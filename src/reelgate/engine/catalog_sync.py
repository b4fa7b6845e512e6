"""The periodic catalog sync (``catalog_sync_hours``): a side loop of the workers that
runs what ``reelgate catalog sync`` runs, when the last sync is that old.

The last sync's time is in the table itself (every sync writes ``fetched_at`` on each
model it lists), so several workers share one schedule: each looks every few minutes
(with jitter) and only one that finds the table stale syncs. Two that sync at once do
no harm: the merge compares with what is stored, and a write that loses a race is
tried again at the next look. A sync that cannot reach a provider retires nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reelgate.catalog.synced.store import load_into
from reelgate.catalog.synced.sync import PROVIDERS, SyncReport, run_sync, source_of
from reelgate.store.db import is_unavailable, reading
from reelgate.store.jobs import now_ms
from reelgate.store.schema import synced_models

if TYPE_CHECKING:
    from reelgate.runtime import Runtime

__all__ = ["CatalogSyncer"]

log = logging.getLogger(__name__)

LOOK_SECONDS = 300.0
"""How often a worker looks whether a sync is due (at most; less for short intervals)."""


class CatalogSyncer:
    def __init__(self, rt: Runtime, *, clock: Callable[[], int] = now_ms) -> None:
        self.rt = rt
        self.clock = clock
        self.every_ms = int(rt.settings.catalog_sync_hours * 3_600_000)
        self.look = min(LOOK_SECONDS, max(1.0, self.every_ms / 1000 / 4))
        self._stopping = asyncio.Event()
        self.last_report: SyncReport | None = None

    def stop(self) -> None:
        self._stopping.set()

    def providers(self) -> list[str]:
        """The providers to sync: those asked for, Replicate only with its token (its
        API wants one; fal's model list is public)."""
        source = source_of(self.rt.settings)
        wanted = [p for p in self.rt.settings.catalog_sync_providers if p in PROVIDERS]
        return [p for p in wanted if p != "replicate" or source.replicate_token]

    async def due(self) -> bool:
        async with reading(self.rt.db) as conn:
            last = (await conn.execute(sa.select(sa.func.max(synced_models.c.fetched_at)))).scalar()
        return last is None or self.clock() - int(last) >= self.every_ms

    async def sync_once(self) -> SyncReport | None:
        """Sync if it is due; the report, or None when it was not due."""
        providers = self.providers()
        if not providers or not await self.due():
            return None
        settings = self.rt.settings
        report = await run_sync(
            self.rt.db,
            source_of(settings),
            providers=providers,
            prices=self.rt.catalog.synced_settings.prices,
            timeout_seconds=settings.timeout_for("fal"),
        )
        await load_into(self.rt.catalog, self.rt.db)
        for line in report.lines():
            log.info("catalog sync: %s", line)
        self.last_report = report
        return report

    async def run(self) -> None:
        if self.every_ms <= 0:
            return
        while not self._stopping.is_set():
            try:
                await self.sync_once()
            except Exception as exc:
                if is_unavailable(exc):
                    log.warning("catalog sync: database unavailable; trying again later")
                else:
                    log.exception("catalog sync failed; trying again later")
            pause = self.look * random.uniform(0.8, 1.2)  # noqa: S311
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=pause)
