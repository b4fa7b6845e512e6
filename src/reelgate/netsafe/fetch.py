"""Fetch untrusted URLs without ever connecting to an address the policy forbids.

Every hop (the first URL and each redirect, at most ``policy.max_redirects``)
is validated by ``address.py``, resolved once, and every resolved address is
checked; the connection then goes to one of exactly those addresses through
a pinned network backend, so there is no second lookup for DNS rebinding to
win. The URL, Host header, SNI and certificate check all keep the hostname.

Bodies stream in chunks under a wall-clock deadline and a byte cap that is
enforced on the bytes received, not on what Content-Length claims.

This module must never read proxy settings from the environment (a proxy
would resolve the name again), never follow a redirect without re-validating
it, never carry caller headers (credentials) to another origin, and never put
a full URL in an error message (query strings can be signatures).
"""

from __future__ import annotations

import functools
import io
import json
import socket
import ssl
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import (
    AbstractContextManager,
    AsyncExitStack,
    aclosing,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

import anyio
import httpcore
import httpx
from PIL import Image

from reelgate.errors import ProviderError
from reelgate.netsafe.address import (
    IPAddress,
    NetPolicy,
    Target,
    UrlBadContentType,
    UrlHttpStatus,
    UrlNotAllowed,
    UrlNotImage,
    UrlTimeout,
    UrlTooLarge,
    UrlUnavailable,
    parse_target,
)

__all__ = [
    "IMAGE_FORMATS",
    "Classifier",
    "Fetched",
    "ImageInfo",
    "Posted",
    "decode_image",
    "fetch_bytes",
    "post",
    "resolve",
    "stream",
]

Classifier = Callable[[int, Any], ProviderError | None]
"""(HTTP status, parsed JSON body or None) -> a specific error, or None for the defaults.
The same shape as ``reelgate.providers.http.Classifier``, so adapters can pass theirs."""

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
"""Pillow plugins ``decode_image`` may use. Never open untrusted bytes with all of them:
some (EPS) hand the file to external programs."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ERROR_BODY_LIMIT = 64 * 1024
_HOP_BY_HOP = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "accept-encoding", "te"}
)
_BACKEND: httpcore.AsyncNetworkBackend = httpcore.AnyIOBackend()


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str
    """The media type the server declared, lower case, without parameters."""
    final_url: str
    """Where the bytes came from after redirects. May hold a signed query: do not log it."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mime_type: str


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver returns for ``host``, in its order, deduplicated.

    Runs ``getaddrinfo`` off the event loop. Tests replace this function to
    script DNS answers.
    """
    infos = await anyio.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ip_address(sockaddr[0])
        if ip not in found:
            found.append(ip)
    return found


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """certifi's roots, like httpx; loading them takes tens of ms, so once per process."""
    return httpcore.default_ssl_context()


class _Deadline:
    """One wall-clock budget shared by every lookup, connect and read of a fetch."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._at = time.monotonic() + seconds

    def left(self) -> float:
        left = self._at - time.monotonic()
        if left <= 0:
            raise UrlTimeout(f"the fetch took longer than {self._seconds:g} s")
        return left

    def scope(self) -> AbstractContextManager[anyio.CancelScope]:
        return anyio.fail_after(self.left())

    def timeouts(self) -> dict[str, float]:
        left = self.left()
        return {"connect": left, "read": left, "write": left, "pool": left}


@contextmanager
def _mapped(host: str) -> Iterator[None]:
    """Turn transport failures into netsafe errors that name the host, never the URL."""
    try:
        yield
    except (TimeoutError, httpcore.TimeoutException) as exc:
        raise UrlTimeout(f"{host} did not answer in time", host=host) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
        raise UrlUnavailable(
            f"could not fetch from {host} ({type(exc).__name__})", host=host
        ) from exc


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to the addresses already checked for one host: no second lookup."""

    def __init__(self, host: str, addresses: Sequence[IPAddress]) -> None:
        self._host = host
        self._addresses = tuple(addresses)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host != self._host:  # the pool serves one origin; anything else is a bug
            raise httpcore.ConnectError(f"refusing to connect to unvetted host {host!r}")
        failure: Exception = httpcore.ConnectError("no address to connect to")
        for ip in self._addresses:  # in resolver order, like a browser without Happy Eyeballs
            try:
                return await _BACKEND.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await _BACKEND.sleep(seconds)


async def _addresses(target: Target, policy: NetPolicy, deadline: _Deadline) -> list[IPAddress]:
    """The addresses to connect to; every one of them must pass, or the host is refused."""
    if target.address is not None:
        return [target.address]  # parse_target already checked it
    with _mapped(target.host), deadline.scope():
        try:
            found = await resolve(target.host, target.port)
        except socket.gaierror as exc:
            raise UrlUnavailable(
                f"{target.host} does not resolve", code="url_unresolvable", host=target.host
            ) from exc
    if not found:
        raise UrlUnavailable(
            f"{target.host} does not resolve", code="url_unresolvable", host=target.host
        )
    if not all(policy.permits(ip) for ip in found):
        # Which address is deliberately left out: it would map internal DNS for a caller.
        raise UrlNotAllowed(
            f"URL not allowed: {target.host} resolves to an address that is not public",
            host=target.host,
        )
    return found


@dataclass(frozen=True)
class _Opened:
    response: httpcore.Response
    target: Target
    status: int
    headers: httpx.Headers

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()


def _request_headers(
    target: Target, extra: Mapping[str, str], content: bytes | None = None
) -> list[tuple[bytes, bytes]]:
    headers = {k: v for k, v in extra.items() if k.lower() not in _HOP_BY_HOP}
    headers.setdefault("User-Agent", "reelgate")
    headers.setdefault("Accept", "*/*")
    pairs = [("Host", target.host_header), ("Accept-Encoding", "identity"), *headers.items()]
    if content is not None:
        pairs.append(("Content-Length", str(len(content))))
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def _send(
    stack: AsyncExitStack,
    target: Target,
    addresses: Sequence[IPAddress],
    headers: Mapping[str, str],
    deadline: _Deadline,
    ssl_context: ssl.SSLContext | None,
    *,
    method: bytes = b"GET",
    content: bytes | None = None,
) -> _Opened:
    pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or _default_ssl_context(),
        network_backend=_PinnedBackend(target.host, addresses),
        max_connections=1,
        retries=0,
    )
    await stack.enter_async_context(pool)
    url = httpcore.URL(
        scheme=target.scheme.encode(),
        host=target.host.encode(),
        port=target.port,
        target=target.url.raw_path,
    )
    with _mapped(target.host), deadline.scope():
        response = await stack.enter_async_context(
            pool.stream(
                method,
                url,
                headers=_request_headers(target, headers, content),
                content=content,
                extensions={"timeout": deadline.timeouts()},
            )
        )
    decoded = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
    return _Opened(response, target, response.status, httpx.Headers(decoded))


def _next_target(opened: _Opened, policy: NetPolicy) -> Target | None:
    """Where a redirect points, validated like the first URL; None if it is no redirect."""
    location = opened.headers.get("location")
    if opened.status not in _REDIRECTS or not location:
        return None
    try:
        joined = opened.target.url.join(location).copy_with(fragment=None)
    except (httpx.InvalidURL, ValueError):
        raise UrlNotAllowed(
            f"URL not allowed: {opened.target.host} redirected to an invalid URL",
            host=opened.target.host,
        ) from None
    return parse_target(joined, policy)


@asynccontextmanager
async def _open(
    url: str,
    policy: NetPolicy,
    headers: Mapping[str, str],
    deadline: _Deadline,
    ssl_context: ssl.SSLContext | None,
) -> AsyncIterator[_Opened]:
    """Follow redirects hop by hop; yield the first answer that is not a redirect, unread."""
    target = parse_target(url, policy)
    first_origin = target.origin
    for _ in range(policy.max_redirects + 1):
        addresses = await _addresses(target, policy, deadline)
        async with AsyncExitStack() as stack:
            opened = await _send(stack, target, addresses, headers, deadline, ssl_context)
            following = _next_target(opened, policy)
            if following is None:
                yield opened
                return
        # Closing the stack dropped the redirect's body unread (the connection closes).
        target = following
        if target.origin != first_origin:
            headers = {}  # credentials are for the first origin only, for good
    raise UrlNotAllowed(
        f"URL not allowed: more than {policy.max_redirects} redirects",
        code="url_too_many_redirects",
        host=target.host,
    )


@asynccontextmanager
async def _chunks(opened: _Opened) -> AsyncIterator[AsyncIterator[bytes]]:
    """The raw body iterator, closed on exit: a half-read body closes its connection."""
    body = opened.response.stream
    if not isinstance(body, AsyncIterable):  # pragma: no cover - the pool is async
        raise TypeError("expected an async response stream")
    chunks = aiter(body)
    try:
        yield chunks
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


async def _body(
    opened: _Opened, max_bytes: int, deadline: _Deadline
) -> AsyncGenerator[bytes, None]:
    """The body in the server's chunks (at most 64 KiB each), cut off past ``max_bytes``."""
    host = opened.target.host
    declared = opened.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UrlTooLarge(f"{host} announced more than {max_bytes} bytes", host=host)
    received = 0
    async with _chunks(opened) as chunks:
        while True:
            with _mapped(host), deadline.scope():
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
            received += len(chunk)
            if received > max_bytes:
                raise UrlTooLarge(f"{host} sent more than {max_bytes} bytes", host=host)
            yield chunk


async def _error_body(opened: _Opened, deadline: _Deadline) -> Any:
    """The start of an error answer, parsed as JSON if it is JSON, for a classifier."""
    data = bytearray()
    async with _chunks(opened) as chunks:
        with _mapped(opened.target.host), deadline.scope():
            async for chunk in chunks:
                data += chunk
                if len(data) >= _ERROR_BODY_LIMIT:
                    break
    try:
        return json.loads(bytes(data[:_ERROR_BODY_LIMIT]))
    except (ValueError, UnicodeDecodeError):
        return None


async def _accept(
    opened: _Opened,
    deadline: _Deadline,
    content_types: Sequence[str] | None,
    classify: Classifier | None,
) -> None:
    """Raise unless the answer is a 2xx of an allowed type, unencoded."""
    host, status = opened.target.host, opened.status
    if not 200 <= status < 300:
        body = await _error_body(opened, deadline) if classify is not None else None
        specific = classify(status, body) if classify is not None else None
        if specific is not None:
            raise specific
        message = f"{host} answered HTTP {status}"
        if status >= 500 or status in (408, 425, 429):
            retry = opened.headers.get("retry-after", "")
            raise UrlUnavailable(
                message,
                upstream_status=status,
                retry_after=float(retry) if retry.isdigit() else None,
                host=host,
            )
        raise UrlHttpStatus(message, upstream_status=status, host=host)
    encoding = opened.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # We asked for identity; decoding would make the byte cap meaningless.
        raise UrlBadContentType(
            f"{host} sent a {encoding}-encoded body", code="url_encoded_body", host=host
        )
    mime = opened.content_type
    if content_types is not None and not any(mime.startswith(p) for p in content_types):
        raise UrlBadContentType(
            f"{host} sent {mime or 'no content type'}, expected {', '.join(content_types)}",
            host=host,
        )


async def stream(
    url: str,
    *,
    policy: NetPolicy,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - a deadline across yields; a caller's scope can't span them
    headers: Mapping[str, str] | None = None,
    content_types: Sequence[str] | None = None,
    classify: Classifier | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[bytes]:
    """Stream a 2xx body in chunks of at most 64 KiB; for mirroring provider results.

    ``headers`` (credentials) go to the first origin only. ``classify`` sees
    non-2xx answers first. Raises a :class:`~reelgate.netsafe.UrlError`:
    InvalidRequest kinds for refused URLs, 4xx, wrong types and too many
    bytes; TransientError kinds for timeouts, network failures, truncated
    bodies, 5xx and 429. ``timeout`` bounds the whole fetch, wall clock,
    including the time the consumer spends between chunks.
    """
    deadline = _Deadline(timeout)
    async with _open(url, policy, headers or {}, deadline, ssl_context) as opened:
        await _accept(opened, deadline, content_types, classify)
        async with aclosing(_body(opened, max_bytes, deadline)) as chunks:
            async for chunk in chunks:
                yield chunk


async def fetch_bytes(
    url: str,
    *,
    policy: NetPolicy,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - also sets httpcore's per-operation timeouts
    content_types: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Fetched:
    """Fetch a whole body of at most ``max_bytes``; memory never exceeds that cap by much."""
    deadline = _Deadline(timeout)
    data = bytearray()
    async with _open(url, policy, headers or {}, deadline, ssl_context) as opened:
        await _accept(opened, deadline, content_types, None)
        async with aclosing(_body(opened, max_bytes, deadline)) as chunks:
            async for chunk in chunks:
                data += chunk
    return Fetched(bytes(data), opened.content_type, str(opened.target.url))


@dataclass(frozen=True)
class Posted:
    status: int
    headers: httpx.Headers
    body: bytes
    """The start of the answer (at most ``read_limit`` bytes), for the sender's records."""


async def post(
    url: str,
    content: bytes,
    *,
    policy: NetPolicy,
    timeout: float,  # noqa: ASYNC109 - also sets httpcore's per-operation timeouts
    headers: Mapping[str, str] | None = None,
    read_limit: int = 1024,
    ssl_context: ssl.SSLContext | None = None,
) -> Posted:
    """POST ``content`` to ``url`` once, for outbound webhooks: the same checks as a fetch
    (scheme, port, every resolved address public unless the policy allows it, the
    connection pinned to the addresses checked) and one deadline for all of it. A
    redirect is an answer like any other, never followed: a receiver that moved must be
    told to reelgate, and a 3xx pointing inside the network leads nowhere. Raises a
    :class:`~reelgate.netsafe.UrlError` when no answer came (refused URL, timeout,
    network failure); any HTTP status is returned."""
    deadline = _Deadline(timeout)
    target = parse_target(url, policy)
    addresses = await _addresses(target, policy, deadline)
    async with AsyncExitStack() as stack:
        opened = await _send(
            stack,
            target,
            addresses,
            headers or {},
            deadline,
            ssl_context,
            method=b"POST",
            content=content,
        )
        data = bytearray()
        async with _chunks(opened) as chunks:
            with _mapped(target.host), deadline.scope():
                async for chunk in chunks:
                    data += chunk
                    if len(data) >= read_limit:
                        break
    return Posted(opened.status, opened.headers, bytes(data[:read_limit]))


def decode_image(
    data: bytes, *, max_pixels: int = 40_000_000, formats: Sequence[str] = IMAGE_FORMATS
) -> ImageInfo:
    """Prove ``data`` decodes as an image of an allowed format; return its size and type.

    The pixel count is checked from the header before anything is decoded, so
    a small file that inflates to gigabytes is refused cheaply. CPU-bound:
    call it from a worker thread (``anyio.to_thread.run_sync``).
    """
    too_many = False
    info: ImageInfo | None = None
    try:
        with Image.open(io.BytesIO(data), formats=list(formats)) as img:
            width, height = img.size
            if width * height > max_pixels:
                too_many = True
            else:
                img.load()
                fmt = img.format or ""
                info = ImageInfo(width, height, fmt, Image.MIME.get(fmt, "image/" + fmt.lower()))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        too_many = True
    except Exception:  # Pillow's plugins raise many exception types on hostile input
        info = None
    if too_many:
        raise UrlNotImage(
            f"the image has more than {max_pixels} pixels", code="url_image_too_large"
        )
    if info is None:
        raise UrlNotImage(f"the bytes are not a readable {'/'.join(formats)} image")
    return info
