"""What every HTTP adapter shares: one client per deployment, status classification,
and streamed downloads that send credentials without ever exposing them.

Adapters call :func:`request_json` for API calls and :func:`stream_download`
for results; both turn transport failures and HTTP status codes into the
classified errors of ``reelgate.errors`` (DESIGN.md, "Errors decide"):

    429                      -> QuotaExceeded (Retry-After honoured)
    5xx, network, bad JSON   -> TransientError
    other 4xx                -> InvalidRequest (unless the adapter's ``refusal``
                                hook recognises a safety refusal first)

A provider-specific body (an error ``code``, a moderation flag) is read by
the adapter's ``classify`` callback before the defaults apply.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from reelgate.errors import InvalidRequest, ProviderError, QuotaExceeded, TransientError
from reelgate.netsafe import NetPolicy
from reelgate.netsafe import stream as netsafe_stream

__all__ = [
    "Classifier",
    "DownloadRules",
    "HttpDeployment",
    "accepted_credential",
    "new_client",
    "parse_retry_after",
    "request_json",
    "retry_after_of",
    "stream_download",
]

DOWNLOAD_CHUNK = 1 << 20

Classifier = Callable[[int, Any], ProviderError | None]
"""(HTTP status, parsed body or None) -> a provider-specific error, or None for the defaults."""


@dataclass(frozen=True)
class DownloadRules:
    """How result downloads may reach the network, given to each deployment (from
    settings, by ``providers.plugin``). Provider result URLs are untrusted: every
    download goes through ``netsafe`` (public addresses only, unless the operator
    allow-listed a private range such as a local emulator's)."""

    policy: NetPolicy = field(default_factory=NetPolicy)
    max_bytes: int = 2 * 1024**3
    timeout_seconds: float = 900.0


@dataclass(frozen=True)
class HttpDeployment:
    """One configured upstream: where it is, how to authenticate, how patient to be.
    ``api_key`` is a secret: never log it, never put it in a URL or a message."""

    base_url: str
    api_key: str
    timeout_seconds: float = 30.0
    """Concurrency caps are not here: they hold across workers, in the engine
    (``Settings.provider_max_concurrent``)."""
    downloads: DownloadRules = field(default_factory=DownloadRules)
    """Where result downloads may go (the production default: public addresses only)."""

    def __repr__(self) -> str:
        return f"HttpDeployment(base_url={self.base_url!r}, api_key=***)"


def new_client(deployment: HttpDeployment, headers: Mapping[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=deployment.base_url.rstrip("/"),
        headers=dict(headers),
        timeout=httpx.Timeout(deployment.timeout_seconds, connect=10.0),
        follow_redirects=False,
    )


def accepted_credential(exc: ProviderError) -> bool:
    """For a credential check that reads something that does not exist: a 404-style
    answer (or a missing model) still proves the credential was accepted; an auth,
    quota or transport failure does not."""
    return exc.code != "upstream_auth" and exc.error_class.value in ("invalid", "gone")


def retry_after_of(headers: httpx.Headers) -> float | None:
    """How long the upstream asked us to wait: ``retry-after-ms`` (OpenAI's and Azure
    OpenAI's header, milliseconds, read first as openai-python's ``_base_client`` does),
    else ``Retry-After``."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _message(body: Any, resp: httpx.Response) -> str:
    """The upstream's own words, from the envelopes providers use:
    ``{"error": {"message"}}``, ``{"error": "..."}``, ``{"message"}``, FastAPI's ``{"detail"}``."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(body.get("message"), str):
            return str(body["message"])
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            loc = ".".join(str(p) for p in detail[0].get("loc", ()) if p != "body")
            return f"{loc}: {detail[0].get('msg', 'invalid')}".lstrip(": ")
    return f"HTTP {resp.status_code}"


def classify_response(resp: httpx.Response, body: Any, classify: Classifier | None) -> None:
    """Raise the classified error for a non-2xx answer; return for a 2xx."""
    if resp.is_success:
        return
    retry_after = retry_after_of(resp.headers)
    if classify is not None:
        specific = classify(resp.status_code, body)
        if specific is not None:
            if specific.retry_after is None:
                specific.retry_after = retry_after
            raise specific
    status = resp.status_code
    message = _message(body, resp)
    if status == 429:
        raise QuotaExceeded(message, upstream_status=status, retry_after=retry_after)
    if status >= 500 or status in (408, 409, 425):
        # A gateway timeout or bad gateway may have passed the request on: the
        # upstream job may exist, so the engine must not blindly re-send a create.
        raise TransientError(
            message,
            upstream_status=status,
            retry_after=retry_after,
            ambiguous=status in (408, 502, 504),
        )
    raise InvalidRequest(message, upstream_status=status)


async def request_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    classify: Classifier | None = None,
    **kwargs: Any,
) -> Any:
    """One API call; returns the parsed JSON body of a 2xx answer or raises classified."""
    body, _ = await request_json_answer(client, method, url, classify=classify, **kwargs)
    return body


async def request_json_answer(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    classify: Classifier | None = None,
    **kwargs: Any,
) -> tuple[Any, httpx.Headers]:
    """``request_json``, with the answer's headers (an upstream's polling hint, say)."""
    try:
        resp = await client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # nothing reached the upstream: safe to send again
        raise TransientError(f"upstream unreachable ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        # sent, but the answer was lost: the upstream may have acted on it
        raise TransientError(
            f"upstream answer lost ({type(exc).__name__})", ambiguous=True
        ) from exc
    body = _body(resp)
    classify_response(resp, body, classify)
    if body is None and resp.content:
        # a 2xx: for a create, the upstream accepted something we cannot read
        raise TransientError(
            "upstream answered with a body that is not JSON",
            upstream_status=resp.status_code,
            ambiguous=True,
        )
    return body, resp.headers


_NOT_FORWARDED = {"host", "accept-encoding", "connection", "content-length", "user-agent"}


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


async def stream_download(
    client: httpx.AsyncClient,
    url: str,
    *,
    rules: DownloadRules,
    headers: Mapping[str, str] | None = None,
    classify: Classifier | None = None,
) -> AsyncIterator[bytes]:
    """Stream a result file in chunks through ``netsafe``: every address checked, the
    checked address dialled, every redirect re-checked. The client's own headers
    (its credentials) go only to the client's own origin; a cut connection or a
    short body is transient."""
    target = (
        client.base_url.join(url)
        if not url.startswith(("http://", "https://"))
        else (httpx.URL(url))
    )
    send: dict[str, str] = {}
    if _same_origin(target, client.base_url):
        send.update((k, v) for k, v in client.headers.items() if k.lower() not in _NOT_FORWARDED)
    send.update(headers or {})
    async for chunk in netsafe_stream(
        str(target),
        policy=rules.policy,
        max_bytes=rules.max_bytes,
        timeout=rules.timeout_seconds,
        headers=send,
        classify=classify,
    ):
        yield chunk
