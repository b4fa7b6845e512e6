"""Fetching URLs that users and upstreams hand us, without being steered inside.

``check_url`` is the cheap submit-time check; ``fetch_bytes`` (user images),
``stream`` (provider results) and ``post`` (outbound webhooks) do the real work:
resolve once, check every address, connect to exactly that address, re-check every
redirect (``post`` follows none), cap time, bytes and content type.
``decode_image`` proves fetched bytes are an image.
"""

from __future__ import annotations

from reelgate.netsafe.address import (
    FORBIDDEN_NETWORKS,
    NetPolicy,
    UrlBadContentType,
    UrlError,
    UrlHttpStatus,
    UrlNotAllowed,
    UrlNotImage,
    UrlTimeout,
    UrlTooLarge,
    UrlUnavailable,
    check_url,
    is_forbidden,
)
from reelgate.netsafe.fetch import (
    IMAGE_FORMATS,
    Classifier,
    Fetched,
    ImageInfo,
    Posted,
    decode_image,
    fetch_bytes,
    post,
    stream,
)

__all__ = [
    "FORBIDDEN_NETWORKS",
    "IMAGE_FORMATS",
    "Classifier",
    "Fetched",
    "ImageInfo",
    "NetPolicy",
    "Posted",
    "UrlBadContentType",
    "UrlError",
    "UrlHttpStatus",
    "UrlNotAllowed",
    "UrlNotImage",
    "UrlTimeout",
    "UrlTooLarge",
    "UrlUnavailable",
    "check_url",
    "decode_image",
    "fetch_bytes",
    "is_forbidden",
    "post",
    "stream",
]
