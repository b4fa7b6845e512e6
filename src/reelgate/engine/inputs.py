"""Request inputs the engine hands to providers: the image for image-to-video.

Inline images were stored at submit time (``params.image_key``); an
``image_url`` is fetched here with size, time and type caps, so providers that
need bytes get bytes and providers that take URLs can still use the URL.
"""

from __future__ import annotations

from typing import Any

import httpx

from reelgate.errors import InvalidRequest, TransientError
from reelgate.providers.base import ImageInput
from reelgate.storage import Storage

__all__ = ["MAX_IMAGE_BYTES", "load_image"]

MAX_IMAGE_BYTES = 10 * 1024 * 1024
_FETCH_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


async def _fetch(url: str) -> tuple[bytes, str]:
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest("image_url must be an http or https URL", code="invalid_image")
    try:
        async with (
            httpx.AsyncClient(timeout=_FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code >= 500:
                raise TransientError(f"image_url answered HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise InvalidRequest(
                    f"image_url answered HTTP {resp.status_code}", code="invalid_image"
                )
            mime = resp.headers.get("content-type", "").split(";")[0].strip()
            if not mime.startswith("image/"):
                raise InvalidRequest(
                    f"image_url is not an image (content-type {mime or 'missing'})",
                    code="invalid_image",
                )
            data = bytearray()
            async for chunk in resp.aiter_bytes():
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise InvalidRequest(
                        f"image_url is larger than {MAX_IMAGE_BYTES} bytes", code="invalid_image"
                    )
            return bytes(data), mime
    except httpx.HTTPError as exc:
        raise TransientError(f"could not fetch image_url: {type(exc).__name__}") from exc


async def load_image(params: dict[str, Any], storage: Storage) -> ImageInput | None:
    if params.get("image_key"):
        data = await storage.read_bytes(params["image_key"], MAX_IMAGE_BYTES)
        return ImageInput(data=data, mime_type=params.get("image_mime_type") or "image/png")
    if params.get("image_url"):
        data, mime = await _fetch(params["image_url"])
        return ImageInput(data=data, mime_type=mime, url=params["image_url"])
    return None
