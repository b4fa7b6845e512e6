"""Signed, expiring links for the files reelgate serves itself (``file://`` storage).

A link carries ``expires`` (Unix seconds) and ``signature``, an HMAC-SHA256 over
both the key and the expiry, so neither can be changed without the secret.
This module must never accept a link whose signature it has not compared in
constant time, and never put the secret into a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from urllib.parse import urlencode

from reelgate.errors import Forbidden

__all__ = ["MIN_SECRET_BYTES", "UPLOAD_DOMAIN", "sign_path", "signed_query", "verify"]

MIN_SECRET_BYTES = 16
"""Shorter secrets make the HMAC guessable; refuse them rather than sign weakly."""

# A purpose prefix keeps these MACs from ever validating some other message
# that reelgate might sign with the same secret in the future.
_DOMAIN = b"reelgate.files.v1\n"
UPLOAD_DOMAIN = b"reelgate.uploads.v1\n"
"""Upload links (PUT) are signed under their own purpose: a download link's signature
never lets anyone write, and the reverse."""
# ASCII digits only: int() would also take "+5", " 5", "1_0" and other scripts' digits.
_EXPIRES = re.compile(r"[0-9]{1,16}")


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes")


def sign_path(key: str, expires_at: int, secret: bytes, *, domain: bytes = _DOMAIN) -> str:
    """The base64url (unpadded) HMAC-SHA256 of the expiry and the key."""
    _check_secret(secret)
    if expires_at < 0:
        raise ValueError("expires_at must be a Unix time in seconds")
    # The expiry is digits only, so the newline makes the split unambiguous.
    expiry = str(expires_at).encode("ascii")
    message = domain + expiry + b"\n" + key.encode("utf-8", "surrogatepass")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signed_query(
    key: str, expires_in: int, secret: bytes, now: float | None = None, *, domain: bytes = _DOMAIN
) -> str:
    """The ``expires=...&signature=...`` query string for a link valid ``expires_in`` s."""
    if expires_in <= 0:
        raise ValueError("expires_in must be a positive number of seconds")
    expires_at = int(time.time() if now is None else now) + expires_in
    signature = sign_path(key, expires_at, secret, domain=domain)
    return urlencode({"expires": expires_at, "signature": signature})


def verify(
    key: str,
    expires: str | int,
    signature: str,
    secret: bytes,
    now: float | None = None,
    *,
    domain: bytes = _DOMAIN,
) -> None:
    """Accept a link or raise ``Forbidden`` with code ``invalid_signature`` or ``url_expired``.

    The signature is checked before the expiry so that a link whose expiry was
    pushed into the past or future reads as tampered, not as merely expired.
    """
    if isinstance(expires, str):
        if not _EXPIRES.fullmatch(expires):
            raise Forbidden("the link's signature is not valid", code="invalid_signature")
        expires_at = int(expires)
    else:
        expires_at = expires
    if expires_at < 0:
        raise Forbidden("the link's signature is not valid", code="invalid_signature")
    expected = sign_path(key, expires_at, secret, domain=domain).encode("ascii")
    # compare_digest refuses non-ASCII str, so compare bytes; "replace" keeps junk harmless.
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise Forbidden("the link's signature is not valid", code="invalid_signature")
    if (time.time() if now is None else now) >= expires_at:
        raise Forbidden("the link has expired; ask for a new one", code="url_expired")
