"""Request inputs the engine hands to providers: the image for image-to-video.

Inline images were stored at submit time (``params.image_key``); an
``image_url`` is fetched here through ``netsafe`` (public addresses only, every
resolved address and redirect checked, size/time/type caps, and the bytes must
decode as an image), so providers that need bytes get bytes and providers that
take URLs can still use the URL.
"""

from __future__ import annotations

import asyncio

from reelgate.job import MAX_IMAGE_BYTES, JobParams
from reelgate.netsafe import NetPolicy, decode_image, fetch_bytes
from reelgate.providers.base import ImageInput
from reelgate.storage import Storage

__all__ = ["MAX_IMAGE_BYTES", "load_image"]

_FETCH_SECONDS = 20.0


async def _fetch(url: str, policy: NetPolicy) -> tuple[bytes, str]:
    fetched = await fetch_bytes(
        url,
        policy=policy,
        max_bytes=MAX_IMAGE_BYTES,
        timeout=_FETCH_SECONDS,
        content_types=("image/",),
    )
    info = await asyncio.to_thread(decode_image, fetched.data)
    return fetched.data, info.mime_type


async def load_image(params: JobParams, storage: Storage, policy: NetPolicy) -> ImageInput | None:
    if params.image_key:
        data = await storage.read_bytes(params.image_key, MAX_IMAGE_BYTES)
        return ImageInput(data=data, mime_type=params.image_mime_type or "image/png")
    if params.image_url:
        data, mime = await _fetch(params.image_url, policy)
        return ImageInput(data=data, mime_type=mime, url=params.image_url)
    return None
