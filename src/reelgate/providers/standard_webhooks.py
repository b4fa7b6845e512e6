"""Standard Webhooks (https://www.standardwebhooks.com/), as Replicate and OpenAI sign
their calls.

Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(space-separated ``v1,<base64>`` entries, any of which may match: a rotated secret
signs twice); the signature is HMAC-SHA256 over ``"{id}.{timestamp}.{raw body}"`` keyed
with the base64-decoded part of a ``whsec_`` secret. Sources: replicate-python
``replicate/webhook.py`` ``Webhooks.validate``; openai-python ``lib/_webhooks.py``
``webhook_signature_matches`` (tolerance 300 s both ways; a secret without the
``whsec_`` prefix is used as raw bytes there).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from reelgate.providers.base import WebhookRejected, signed_at

__all__ = ["SignedCall", "sign", "verify"]


@dataclass(frozen=True)
class SignedCall:
    delivery_id: str
    sent_at: float


def _key(secret: str, *, raw_allowed: bool) -> bytes:
    prefix, _, encoded = secret.partition("_")
    if prefix == "whsec" and encoded:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRejected("the webhook signing secret is not base64") from None
    if raw_allowed and secret:
        return secret.encode()
    raise WebhookRejected("the webhook signing secret is not a whsec_ key")


def _digest(key: bytes, delivery_id: str, stamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{delivery_id}.{stamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, delivery_id: str, stamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value a sender holding ``secret`` puts on ``body``."""
    digest = _digest(_key(secret, raw_allowed=True), delivery_id, str(stamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def read_headers(headers: Mapping[str, str], now: float) -> tuple[str, str, str]:
    """``(id, timestamp, signatures)`` of a fresh call; raises ``WebhookRejected`` when
    one is missing or the timestamp is more than the tolerance from ``now``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    delivery_id = lowered.get("webhook-id", "").strip()
    stamp = lowered.get("webhook-timestamp", "").strip()
    signatures = lowered.get("webhook-signature", "").strip()
    if not delivery_id or not stamp or not signatures:
        raise WebhookRejected("missing webhook-id, webhook-timestamp or webhook-signature")
    signed_at(stamp, now, "webhook-timestamp")
    return delivery_id, stamp, signatures


def matches(
    secret: str, delivery_id: str, stamp: str, body: bytes, signatures: str, *, raw_allowed: bool
) -> bool:
    expected = _digest(_key(secret, raw_allowed=raw_allowed), delivery_id, stamp, body)
    matched = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(given, expected)
    return matched


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    *,
    raw_allowed: bool = False,
) -> SignedCall:
    """Check one call signed with ``secret``; raises ``WebhookRejected`` otherwise."""
    delivery_id, stamp, signatures = read_headers(headers, now)
    if not body:
        raise WebhookRejected("the webhook has no body")
    if not matches(secret, delivery_id, stamp, body, signatures, raw_allowed=raw_allowed):
        raise WebhookRejected("no webhook-signature matches")
    return SignedCall(delivery_id, float(stamp))
