"""Reads a process may reuse for a second: what every submit asks and operators rarely
change (an account's flags, the models a provider said are gone).

API keys follow the same rule (``accounts.keycache`` is built on this): a value read
is remembered for ``ttl`` seconds, so a change made elsewhere is seen by every process
within that time, and at once by the process that made it (``forget``). Nothing here
is a source of truth: the engine and the store check again where it matters (a gone
model is skipped by the engine whatever the API saw).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Recent"]

K = TypeVar("K")
V = TypeVar("V")

MAX_ENTRIES = 10_000


@dataclass
class Recent(Generic[K, V]):
    ttl: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _seen: dict[K, tuple[float, V]] = field(default_factory=dict)

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
        value = await read()
        self.put(key, value)
        return value

    def forget(self, key: K) -> None:
        self._seen.pop(key, None)

    def forget_all(self) -> None:
        self._seen.clear()
