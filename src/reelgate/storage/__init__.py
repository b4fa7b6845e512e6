"""Where finished videos live. ``open_storage`` picks a backend from a URL.

Callers depend on the ``Storage`` protocol only; which backend sits behind it
is the deployment's choice, made once in the app factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reelgate.storage.base import Storage, StoredObject
from reelgate.storage.objstore import ObjectStorage

__all__ = ["Storage", "StoredObject", "local_root", "open_storage"]


def open_storage(
    url: str,
    *,
    public_base_url: str,
    signing_secret: bytes,
    options: Mapping[str, str] | None = None,
) -> Storage:
    """Open ``file:///abs/dir``, ``memory://``, ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

    ``public_base_url`` and ``signing_secret`` make the links for ``file://`` and
    ``memory://`` (served by reelgate's ``/files`` route). ``options`` are obstore
    config keys for S3 and GCS, e.g. ``aws_endpoint``, ``aws_region``,
    ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_allow_http``.
    An unknown scheme raises ``StorageError`` naming the supported ones.
    """
    return ObjectStorage.from_url(
        url,
        public_base_url=public_base_url,
        signing_secret=signing_secret,
        options=options,
    )


def local_root(storage: Storage) -> Path | None:
    """The directory reelgate must serve at ``/files`` itself, or None when the
    backend hands out its own links (S3, GCS) or has no files (memory)."""
    return storage.local_root if isinstance(storage, ObjectStorage) else None
