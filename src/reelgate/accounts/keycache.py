"""API keys looked up at most once a second per process.

Every request authenticates; the key's row rarely changes. A key found valid is
remembered for ``ttl`` seconds (by its SHA-256, never the key itself), so a revocation
or an expiry is honoured by every process within that time, and at once by the
process that revoked it (``forget_all``). Unknown or revoked keys are never
remembered: each such request reads the database.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from reelgate.store.accounts import KeyInfo

__all__ = ["KeyCache"]

MAX_ENTRIES = 10_000


@dataclass
class KeyCache:
    ttl: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _found: dict[str, tuple[float, KeyInfo]] = field(default_factory=dict)

    async def lookup(
        self, key: str, now_ms: int, read: Callable[[str, int], Awaitable[KeyInfo | None]]
    ) -> KeyInfo | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        seen = self._found.get(digest)
        at = self.clock()
        if seen is not None and at - seen[0] < self.ttl:
            info = seen[1]
            if info.expires_at is None or info.expires_at > now_ms:
                return info
        info_read = await read(key, now_ms)
        if info_read is None:
            self._found.pop(digest, None)
            return None
        if len(self._found) >= MAX_ENTRIES:
            self._found.clear()
        self._found[digest] = (at, info_read)
        return info_read

    def forget_all(self) -> None:
        """A key was revoked here: no process of ours may accept it a moment longer."""
        self._found.clear()
