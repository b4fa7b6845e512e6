"""Where finished videos live: the interface the engine and the API use.

Backends are chosen by URL (``file://``, ``s3://``, ``gs://``, ``memory://``).
A backend must never hand out an unsigned, non-expiring URL, and never embed
credentials in one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Storage", "StoredObject"]


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


class Storage(Protocol):
    url: str

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Upload a local file (streamed in parts; constant memory)."""
        ...

    async def signed_url(self, key: str, expires_in: int) -> str:
        """A URL a browser can GET (with Range) until it expires."""
        ...

    async def upload_url(self, key: str, expires_in: int) -> str:
        """A URL a provider can PUT the object to until it expires (a presigned cloud
        URL, or reelgate's own signed ``/v1/uploads/{key}`` for local storage)."""
        ...

    def stream(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks (``StorageError`` ``object_not_found``)."""
        ...

    async def read_bytes(self, key: str, max_bytes: int) -> bytes:
        """Read a small object whole (request inputs such as an image); refuse past max_bytes."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...
