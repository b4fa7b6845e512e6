"""``PUT /v1/uploads/{key}``: where a provider writes a finished video into reelgate's
own storage, when reelgate hands it an upload URL (xAI's ``output.upload_url`` for Zero
Data Retention teams) and the storage has no presigned PUT of its own (``file://``).

The URL is the whole credential: a signature (``storage.signing``, under the upload
purpose, so no download link can write) over the key and its expiry. Only keys under
``uploads/`` can be written, each at most ``mirror_max_bytes``; the body is streamed to
a temporary file, never held in memory, then stored. The engine then mirrors that
object like any provider result (probed, hashed, copied to the video's key).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from reelgate.errors import Forbidden, PayloadTooLarge
from reelgate.runtime import Runtime
from reelgate.storage.signing import UPLOAD_DOMAIN, verify

__all__ = ["UPLOAD_PREFIX", "router"]

UPLOAD_PREFIX = "uploads/"

router = APIRouter()


def _error(exc: Forbidden | PayloadTooLarge) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, status_code=exc.http_status
    )


@router.put("/v1/uploads/{key:path}", include_in_schema=False)
async def upload(request: Request, key: str) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        if not key.startswith(UPLOAD_PREFIX):
            raise Forbidden("this link cannot write there", code="invalid_signature")
        verify(
            key,
            request.query_params.get("expires", ""),
            request.query_params.get("signature", ""),
            rt.signing_secret,
            domain=UPLOAD_DOMAIN,
        )
    except Forbidden as exc:
        return _error(exc)
    cap = rt.settings.mirror_max_bytes
    with tempfile.TemporaryDirectory(prefix="reelgate-upload-") as tmp:
        path = Path(tmp) / "object"
        size = 0
        with path.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    return _error(
                        PayloadTooLarge(f"An upload may be at most {cap} bytes.", limit=cap)
                    )
                fh.write(chunk)
        content_type = request.headers.get("content-type") or "video/mp4"
        await rt.storage.put_file(key, path, content_type.split(";")[0])
    return Response(status_code=200)
