"""Per-job callback URLs for providers that call back (``ReceivesWebhooks``).

A job's create carries ``{public_url}/v1/provider-hooks/{kind}/{job_id}?expires=..&
signature=..``: the signature (HMAC-SHA256 under the gateway's signing secret, in
its own purpose domain) names the provider kind and the job, so a call to any other
job's URL, or with the path changed, is refused before the provider's own signature
is even read. The link lives until the job's deadline plus a day (a provider may
retry its delivery for a while).
"""

from __future__ import annotations

from urllib.parse import quote

from reelgate.storage.signing import signed_query, verify

__all__ = ["HOOK_DOMAIN", "HOOK_PATH", "LINK_MARGIN_SECONDS", "callback_url", "verify_callback"]

HOOK_DOMAIN = b"reelgate.provider-hooks.v1\n"
HOOK_PATH = "/v1/provider-hooks"
LINK_MARGIN_SECONDS = 86_400


def _key(kind: str, job_id: str) -> str:
    return f"{kind}/{job_id}"


def callback_url(
    public_url: str, kind: str, job_id: str, secret: bytes, *, lifetime_seconds: int, now: float
) -> str:
    query = signed_query(
        _key(kind, job_id), lifetime_seconds + LINK_MARGIN_SECONDS, secret, now, domain=HOOK_DOMAIN
    )
    base = public_url.rstrip("/")
    return f"{base}{HOOK_PATH}/{quote(kind, safe='')}/{quote(job_id, safe='')}?{query}"


def verify_callback(
    kind: str, job_id: str, expires: str, signature: str, secret: bytes, now: float | None = None
) -> None:
    """Raise ``Forbidden`` unless the link was signed by this gateway for this job."""
    verify(_key(kind, job_id), expires, signature, secret, now, domain=HOOK_DOMAIN)
