"""API keys looked up at most once a second per process.

Every request authenticates; the key's row rarely changes. A key found valid is
remembered for ``ttl`` seconds (by its SHA-256, never the key itself), so a revocation
or an expiry is honoured by every process within that time, and at once by the
process that revoked it (``forget_all``). Unknown or revoked keys are never
remembered: each such request reads the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from reelgate.store.accounts import KeyInfo
from reelgate.store.recent import Recent

__all__ = ["KeyCache"]


class KeyCache(Recent[str, KeyInfo | None]):
    """``store.recent`` keyed by the key's SHA-256, holding valid keys only (never None:
    an unknown key is read again every time)."""

    async def lookup(
        self, key: str, now_ms: int, read: Callable[[str, int], Awaitable[KeyInfo | None]]
    ) -> KeyInfo | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        info = self.peek(digest)
        if info is not None and (info.expires_at is None or info.expires_at > now_ms):
            return info
        info = await self.shared(digest, lambda: read(key, now_ms))
        if info is None:
            self.forget(digest)
        else:
            self.put(digest, info)
        return info
