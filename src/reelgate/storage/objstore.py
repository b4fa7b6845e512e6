"""The obstore-backed ``Storage``: one class for local directories, memory, S3 and GCS.

S3 and GCS hand out their own presigned URLs; local and memory storage get
links to reelgate's ``/files`` route, signed with ``signing.py``.  This module
must never let a key escape its root directory, never put credentials or
option values into an error message, and never read a whole file into memory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, cast
from urllib.parse import quote, unquote, urlsplit

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError
from obstore.store import GCSStore, LocalStore, MemoryStore, S3Store

from reelgate.errors import StorageError
from reelgate.storage.base import StoredObject
from reelgate.storage.signing import MIN_SECRET_BYTES, UPLOAD_DOMAIN, signed_query

if TYPE_CHECKING:
    from obstore.store import ClientConfig, GCSConfig, ObjectStore, S3Config

__all__ = [
    "MAX_URL_LIFETIME",
    "SUPPORTED_SCHEMES",
    "ObjectStorage",
    "resolve_local_path",
    "validate_key",
]

SUPPORTED_SCHEMES = ("file", "memory", "s3", "gs")

MAX_URL_LIFETIME = 7 * 24 * 3600
"""S3's SigV4 limit; our own links are held to it too, so no backend hands out a
link that outlives the others."""

# Memory held per upload is about chunk size x concurrency, whatever the file size.
# 8 MiB stays above S3's 5 MiB minimum part size.
_CHUNK_SIZE = 8 * 1024 * 1024
_MAX_CONCURRENCY = 4
_READ_CHUNK_SIZE = 256 * 1024
_MAX_KEY_BYTES = 1024  # S3's and GCS's limit on object names

# Options that configure obstore's HTTP client rather than the store.  obstore
# panics (a BaseException) when one of these arrives in the store config, so
# they are moved to ``client_options``, with or without their ``aws_``/``google_``.
_CLIENT_OPTION_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_ca_certificate",
        "proxy_excludes",
        "proxy_url",
        "randomize_addresses",
        "read_timeout",
        "root_certificate",
        "timeout",
        "user_agent",
    }
)
_OPTION_PREFIX = {"s3": "aws_", "gs": "google_"}


def validate_key(key: str) -> str:
    """Return ``key`` if it is a plain relative object name, else raise ``StorageError``.

    Every backend gets the same rules so a key that works on S3 also works, and
    stays inside its root, on the local disk.
    """
    problem = None
    if not key or len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        problem = "must be 1 to 1024 bytes"
    elif key.startswith("/") or "\\" in key:
        problem = "must be a relative path with forward slashes"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        problem = "must not contain control characters"
    elif any(part in ("", ".", "..") for part in key.split("/")):
        problem = "must not contain empty, '.' or '..' segments"
    if problem is not None:
        raise StorageError(f"invalid storage key: it {problem}", code="invalid_key")
    return key


def resolve_local_path(root: Path, key: str) -> Path:
    """Where ``key`` lives under ``root``; refuses anything that would land outside it.

    The segment rules already forbid ``..``; resolving and re-checking also
    stops a symlink inside the root from pointing elsewhere.
    """
    base = root.resolve()
    path = (base / validate_key(key)).resolve()
    if not path.is_relative_to(base):
        raise StorageError("invalid storage key: it leaves the storage root", code="invalid_key")
    return path


def _too_large(key: str, max_bytes: int) -> StorageError:
    return StorageError(
        f"the object is larger than {max_bytes} bytes", code="object_too_large", key=key
    )


def _split_options(
    scheme: str, options: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Separate store settings from HTTP client settings (see ``_CLIENT_OPTION_KEYS``)."""
    config: dict[str, str] = {}
    client: dict[str, str] = {}
    prefix = _OPTION_PREFIX[scheme]
    for key, value in options.items():
        name = key.lower()
        bare = name.removeprefix(prefix)
        if bare in _CLIENT_OPTION_KEYS:
            client[bare] = value
        else:
            config[name] = value
    return config, client


def _local_root(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise StorageError("a file storage URL looks like file:///absolute/directory")
    root = Path(unquote(parts.path))
    if not root.is_absolute():
        raise StorageError("a file storage URL needs an absolute directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the storage directory: {type(exc).__name__}",
            code="storage_unavailable",
        ) from exc
    return root.resolve()


def _cloud_store(url: str, scheme: str, options: Mapping[str, str]) -> S3Store | GCSStore:
    config, client = _split_options(scheme, options)
    try:
        if scheme == "s3":
            return S3Store.from_url(
                url,
                config=cast("S3Config", config),
                client_options=cast("ClientConfig", client),
            )
        return GCSStore.from_url(
            url,
            config=cast("GCSConfig", config),
            client_options=cast("ClientConfig", client),
        )
    except (ObstoreError, ValueError) as exc:
        # Name the keys, never the values: those hold credentials.
        raise StorageError(
            f"{scheme}:// storage refused its URL or options ({type(exc).__name__});"
            f" option keys given: {sorted(options)}",
            code="storage_misconfigured",
        ) from exc


class ObjectStorage:
    """``Storage`` over an obstore store; build it with ``from_url``."""

    def __init__(
        self,
        url: str,
        store: ObjectStore,
        *,
        public_base_url: str,
        signing_secret: bytes,
        local_root: Path | None = None,
    ) -> None:
        if not isinstance(store, S3Store | GCSStore) and len(signing_secret) < MIN_SECRET_BYTES:
            raise StorageError(
                f"the signing secret must be at least {MIN_SECRET_BYTES} bytes",
                code="storage_misconfigured",
            )
        self.url = url
        self._store = store
        self._public_base_url = public_base_url.rstrip("/")
        self._signing_secret = signing_secret
        self._local_root = local_root

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        public_base_url: str,
        signing_secret: bytes,
        options: Mapping[str, str] | None = None,
    ) -> ObjectStorage:
        """Open ``file://``, ``memory://``, ``s3://`` or ``gs://`` storage.

        ``options`` are obstore config keys (``aws_endpoint``, ``aws_region``,
        ``aws_access_key_id``, ``aws_allow_http``, ``google_service_account_key``...),
        used by S3 and GCS only.
        """
        scheme = urlsplit(url).scheme.lower()
        store: ObjectStore
        local_root = None
        if scheme == "file":
            local_root = _local_root(url)
            store = LocalStore(local_root)
        elif scheme == "memory":
            store = MemoryStore()
        elif scheme in ("s3", "gs"):
            store = _cloud_store(url, scheme, options or {})
        else:
            supported = ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES)
            raise StorageError(
                f"unsupported storage URL scheme {scheme + '://' if scheme else '(none)'};"
                f" supported: {supported}",
                code="storage_misconfigured",
            )
        return cls(
            url,
            store,
            public_base_url=public_base_url,
            signing_secret=signing_secret,
            local_root=local_root,
        )

    @property
    def local_root(self) -> Path | None:
        """The directory behind ``file://`` storage (for the ``/files`` route), else None."""
        return self._local_root

    def open_local_path(self, key: str) -> Path | None:
        """The on-disk path of ``key`` for ``file://`` storage, else None; it may not exist."""
        if self._local_root is None:
            return None
        return resolve_local_path(self._local_root, key)

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Upload ``path`` in parts.

        obstore gets an open file rather than the path so that the parts pass
        through Python, where tests can measure that memory stays bounded. The
        local backend cannot store a content type; the ``/files`` route derives
        it from the key's extension instead.
        """
        validate_key(key)
        attributes = None if isinstance(self._store, LocalStore) else {"Content-Type": content_type}
        try:
            handle: BinaryIO = await asyncio.to_thread(path.open, "rb")
        except OSError as exc:
            raise StorageError(
                f"cannot read the file to upload: {type(exc).__name__}", key=key
            ) from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                await obstore.put_async(
                    self._store,
                    key,
                    handle,
                    attributes=attributes,
                    chunk_size=_CHUNK_SIZE,
                    max_concurrency=_MAX_CONCURRENCY,
                )
            except (ObstoreError, OSError) as exc:
                raise StorageError(f"upload failed: {type(exc).__name__}", key=key) from exc
        return StoredObject(key=key, size=size)

    async def signed_url(self, key: str, expires_in: int) -> str:
        """A GET link valid for ``expires_in`` seconds, capped at ``MAX_URL_LIFETIME``."""
        return await self._link("GET", key, expires_in)

    async def upload_url(self, key: str, expires_in: int) -> str:
        """A PUT link valid for ``expires_in`` seconds, capped at ``MAX_URL_LIFETIME``."""
        return await self._link("PUT", key, expires_in)

    async def _link(self, method: Literal["GET", "PUT"], key: str, expires_in: int) -> str:
        """The cloud's presigned link, or reelgate's own (``/files`` to read,
        ``/v1/uploads`` to write, each signed under its own purpose)."""
        validate_key(key)
        if expires_in <= 0:
            raise ValueError("expires_in must be a positive number of seconds")
        lifetime = min(expires_in, MAX_URL_LIFETIME)
        if isinstance(self._store, S3Store | GCSStore):
            try:
                return await obstore.sign_async(
                    self._store, method, key, timedelta(seconds=lifetime)
                )
            except (ObstoreError, OSError) as exc:
                raise StorageError(f"signing failed: {type(exc).__name__}", key=key) from exc
        if method == "PUT":
            query = signed_query(key, lifetime, self._signing_secret, domain=UPLOAD_DOMAIN)
            return f"{self._public_base_url}/v1/uploads/{quote(key, safe='/')}?{query}"
        query = signed_query(key, lifetime, self._signing_secret)
        return f"{self._public_base_url}/files/{quote(key, safe='/')}?{query}"

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        validate_key(key)
        try:
            result = await obstore.get_async(self._store, key)
            async for chunk in result.stream(min_chunk_size=_READ_CHUNK_SIZE):
                yield bytes(chunk)
        except (FileNotFoundError, NotFoundError) as exc:
            raise StorageError("no such object", code="object_not_found", key=key) from exc
        except (ObstoreError, OSError) as exc:
            raise StorageError(f"read failed: {type(exc).__name__}", key=key) from exc

    async def read_bytes(self, key: str, max_bytes: int) -> bytes:
        """Read a small object whole; ``StorageError`` (``object_too_large``) past ``max_bytes``.

        The size is checked from the metadata before any body is read, and again
        while reading, in case the object was replaced in between.
        """
        validate_key(key)
        try:
            result = await obstore.get_async(self._store, key)
            if result.meta["size"] > max_bytes:
                raise _too_large(key, max_bytes)
            data = bytearray()
            async for chunk in result.stream(min_chunk_size=_READ_CHUNK_SIZE):
                data += chunk
                if len(data) > max_bytes:
                    raise _too_large(key, max_bytes)
        except (FileNotFoundError, NotFoundError) as exc:
            raise StorageError("no such object", code="object_not_found", key=key) from exc
        except (ObstoreError, OSError) as exc:
            raise StorageError(f"read failed: {type(exc).__name__}", key=key) from exc
        return bytes(data)

    async def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            await obstore.head_async(self._store, key)
        except (FileNotFoundError, NotFoundError):
            return False
        except (ObstoreError, OSError) as exc:
            raise StorageError(f"lookup failed: {type(exc).__name__}", key=key) from exc
        return True

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key succeeds, so retries are safe."""
        validate_key(key)
        try:
            await obstore.delete_async(self._store, key)
        except (FileNotFoundError, NotFoundError):
            return
        except (ObstoreError, OSError) as exc:
            raise StorageError(f"delete failed: {type(exc).__name__}", key=key) from exc
