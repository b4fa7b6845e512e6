"""Wake-ups: how a new or newly due job reaches an idle worker at once.

In one process (the embedded default) an ``asyncio.Event`` is enough. Across
processes on PostgreSQL, the submitting transaction runs ``pg_notify`` and
every worker LISTENs on a dedicated asyncpg connection; the notification is
delivered only when the transaction commits, so a worker never wakes for a
job it cannot see yet. Workers still fall back to a timed poll bounded by the
next known wake-up, so a lost notification delays work but never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["CHANNEL", "InProcessWakeup", "PostgresWakeup", "Wakeup", "notify_in_transaction"]

CHANNEL = "reelgate_jobs"
EVENTS_CHANNEL = "reelgate_events"  # job events for SSE streams (engine.events)
log = logging.getLogger(__name__)


class Wakeup(Protocol):
    def notify(self) -> None:
        """Wake waiters in this process (after a commit this process made)."""
        ...

    async def wait(self, seconds: float) -> bool:
        """Wait until woken or ``seconds`` pass; True if woken."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcessWakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout=max(seconds, 0.0))
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class PostgresWakeup(InProcessWakeup):
    """LISTEN on a dedicated connection; reconnects if the connection drops."""

    def __init__(self, database_url: str, *, on_event: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self._on_event = on_event
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._conn: asyncpg.Connection[Any] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.ready = asyncio.Event()

    def _on_notify(self, *_args: object) -> None:
        self.notify()

    def _on_job_event(self, _conn: object, _pid: object, _channel: object, payload: object) -> None:
        if self._on_event is not None:
            self._on_event(str(payload))

    def _on_lost(self, *_args: object) -> None:
        self._lost.set()

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                self._conn = await asyncpg.connect(self._dsn)
                self._conn.add_termination_listener(self._on_lost)
                await self._conn.add_listener(CHANNEL, self._on_notify)
                if self._on_event is not None:
                    await self._conn.add_listener(EVENTS_CHANNEL, self._on_job_event)
                self.ready.set()
                delay = 0.5
                # Anything may have been submitted while we were not listening.
                self.notify()
                await self._lost.wait()
                self._lost.clear()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("wake-up listener: %s; reconnecting in %.1fs", exc, delay)
            finally:
                self.ready.clear()
                if self._conn is not None and not self._conn.is_closed():
                    with contextlib.suppress(Exception):
                        await self._conn.close(timeout=2)
                self._conn = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._listen_forever(), name="wakeup-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None


async def notify_in_transaction(conn: AsyncConnection, payload: str = "") -> None:
    """Queue a cross-process wake-up; delivered by PostgreSQL when the transaction commits."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))
