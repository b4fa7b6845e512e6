"""Reads a process may reuse for a second: what every submit asks and operators rarely
change (an account's flags, the models a provider said are gone).

API keys follow the same rule (``accounts.keycache`` is built on this): a value read
is remembered for ``ttl`` seconds, so a change made elsewhere is seen by every process
within that time, and at once by the process that made it (``forget``). Nothing here
is a source of truth: the engine and the store check again where it matters (a gone
model is skipped by the engine whatever the API saw).

Reads of one key that overlap are one read (``shared``): when a value expires under
load, the requests that all find it missing wait for the first one's read instead of
each sending its own (measured: 16 clients after a pause made 16 key lookups at once,
and the pool opened connections for them, 100-250 ms for the first requests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from reelgate.store.db import database_unavailable, is_unavailable

__all__ = ["Recent"]

K = TypeVar("K")
V = TypeVar("V")

MAX_ENTRIES = 10_000


@dataclass
class Recent(Generic[K, V]):
    ttl: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _seen: dict[K, tuple[float, V]] = field(default_factory=dict)
    _reading: dict[K, asyncio.Future[V]] = field(default_factory=dict)

    def peek(self, key: K) -> V | None:
        """The value read for ``key`` less than ``ttl`` seconds ago, else None."""
        seen = self._seen.get(key)
        if seen is not None and self.clock() - seen[0] < self.ttl:
            return seen[1]
        return None

    def put(self, key: K, value: V) -> None:
        if len(self._seen) >= MAX_ENTRIES:
            self._seen.clear()
        self._seen[key] = (self.clock(), value)

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        seen = self.peek(key)
        if seen is not None:
            return seen
        value = await self.shared(key, read)
        self.put(key, value)
        return value

    async def shared(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """``read()``, or the answer of the read of ``key`` already under way. The read
        runs as its own task, so a caller that is cancelled does not cancel it for the
        others; its error reaches every caller waiting on it."""
        task = self._reading.get(key)
        if task is None:
            task = self._reading[key] = asyncio.ensure_future(_classified(read))
            task.add_done_callback(lambda done: self._read_done(key, done))
        return await asyncio.shield(task)

    def _read_done(self, key: K, task: asyncio.Future[V]) -> None:
        if self._reading.get(key) is task:
            del self._reading[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when nobody waits

    def forget(self, key: K) -> None:
        self._seen.pop(key, None)
        self._reading.pop(key, None)  # a read already under way may predate the change

    def forget_all(self) -> None:
        self._seen.clear()
        self._reading.clear()


async def _classified(read: Callable[[], Awaitable[V]]) -> V:
    """``read()``, with a database outage turned into the 503 it means before the error is
    shared: every waiter gets the same exception object, and the outage test reads the
    traceback of the driver's error (``store.db.is_unavailable``), which a waiter other
    than the first may no longer carry (seen: a 500 for a refused connection)."""
    try:
        return await read()
    except Exception as exc:
        if is_unavailable(exc):
            raise database_unavailable() from exc
        raise
