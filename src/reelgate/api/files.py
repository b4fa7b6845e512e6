"""``GET``/``HEAD /files/{key}``: serve ``file://`` storage to browsers, with Range.

Links come from ``ObjectStorage.signed_url``; each request must carry a valid,
unexpired signature for exactly the key it asks for. Starlette's FileResponse
streams the bytes (in 64 KiB chunks) and writes the 206 headers; this module
decides which ranges are asked for, so that malformed headers are ignored and
unsatisfiable ones get a JSON 416, as RFC 9110 asks. It must never serve a
path outside the storage root, nor a type a browser would run as a page.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from reelgate.errors import Forbidden, StorageError
from reelgate.storage.objstore import resolve_local_path
from reelgate.storage.signing import verify

__all__ = ["make_files_router"]

_MAX_RANGES = 16  # more is a scan, not playback; serve the whole file instead
_RANGE_SPEC = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")
# Extension types a browser only displays; anything else (html, svg, js) would run
# on our origin, so it goes out as an opaque download type.
_INLINE_TYPES = ("video/", "audio/", "image/")
_EXTRA_TYPES = {".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime"}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _media_type(path: Path) -> str:
    guessed = _EXTRA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    if guessed and guessed.startswith(_INLINE_TYPES) and guessed != "image/svg+xml":
        return guessed
    return "application/octet-stream"


def _byte_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """The satisfiable ranges of a ``Range`` header, as inclusive ``(first, last)``.

    ``None``: the header is malformed or not in bytes, so it is ignored and the
    whole file is sent. ``[]``: well-formed but nothing satisfiable (416).
    """
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    parts = specs.split(",")
    if len(parts) > _MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for part in parts:
        match = _RANGE_SPEC.fullmatch(part)
        if match is None or match.group(1) == match.group(2) == "":
            return None
        first, last = match.group(1), match.group(2)
        if first == "":  # suffix: the last N bytes
            length = int(last)
            if length > 0 and size > 0:
                ranges.append((max(0, size - length), size - 1))
        elif int(first) < size and (last == "" or int(last) >= int(first)):
            ranges.append((int(first), size - 1 if last == "" else min(int(last), size - 1)))
    return ranges


class _RangedFileResponse(FileResponse):
    """A FileResponse that serves the ranges decided here instead of the request's own.

    Starlette would answer malformed ranges with a plain-text 400 and re-check
    If-Range; both are already settled, so the request's headers are replaced.
    """

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._byte_range: str | None = None

    def select(self, ranges: list[tuple[int, int]]) -> None:
        """Send these inclusive byte ranges (206) instead of the whole file."""
        self._byte_range = "bytes=" + ",".join(f"{first}-{last}" for first, last in ranges)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]
        if self._byte_range is not None:
            headers.append((b"range", self._byte_range.encode("latin-1")))
        await super().__call__({**scope, "headers": headers}, receive, send)


def _if_range_allows(request: Request, response: FileResponse) -> bool:
    """If-Range: use the Range only when the client's copy is this exact file."""
    validator = request.headers.get("if-range")
    if validator is None:
        return True
    if validator.startswith("W/"):
        return False
    return validator in (response.headers.get("etag"), response.headers.get("last-modified"))


def make_files_router(root: Path, secret: bytes) -> APIRouter:
    """Routes for the files under ``root`` (the ``file://`` storage directory)."""
    router = APIRouter()
    base = root.resolve()

    @router.api_route("/files/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def serve_file(request: Request, key: str) -> Response:
        expires = request.query_params.get("expires", "")
        try:
            verify(key, expires, request.query_params.get("signature", ""), secret)
        except Forbidden as exc:
            return _error(exc.http_status, exc.code, exc.message)
        try:
            path = await asyncio.to_thread(resolve_local_path, base, key)
            info = await asyncio.to_thread(os.stat, path)
        except (StorageError, OSError):
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            return _error(404, "not_found", "no such file")

        max_age = max(0, int(expires) - int(time.time()))
        response = _RangedFileResponse(
            path,
            stat_result=info,
            media_type=_media_type(path),
            headers={
                "Cache-Control": f"private, max-age={max_age}",
                "X-Content-Type-Options": "nosniff",
            },
        )
        header = request.headers.get("range")
        if header is None or not _if_range_allows(request, response):
            return response
        ranges = _byte_ranges(header, info.st_size)
        if ranges == []:
            return _error(
                416,
                "range_not_satisfiable",
                f"the file is {info.st_size} bytes; the requested range is outside it",
                {"Content-Range": f"bytes */{info.st_size}", "Accept-Ranges": "bytes"},
            )
        if ranges is not None:
            response.select(ranges)
        return response

    return router
