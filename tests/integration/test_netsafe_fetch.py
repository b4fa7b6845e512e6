"""netsafe against real loopback TCP servers: what never connects, what is cut off, what is kept.

Every server here counts the connections it accepts, so "refused" means
"refused before a single packet reached it", not "failed afterwards". DNS is
scripted by replacing ``reelgate.netsafe.fetch.resolve``; connection attempts
are recorded by wrapping the module's network backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import socket
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpcore
import pytest
from PIL import Image

import reelgate.netsafe.fetch as fetch_module
from reelgate.errors import InvalidRequest, ProviderError, TransientError
from reelgate.netsafe import (
    NetPolicy,
    UrlBadContentType,
    UrlHttpStatus,
    UrlNotAllowed,
    UrlTimeout,
    UrlTooLarge,
    UrlUnavailable,
    decode_image,
    fetch_bytes,
    stream,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
BLOCK = b"\x00" * (64 * 1024)

Respond = Callable[[asyncio.StreamWriter, "Listener"], Awaitable[None]]


class Listener:
    """A raw HTTP/1.1 server on a loopback address that counts accepts and scripts answers."""

    def __init__(
        self, respond: Respond, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self.respond = respond
        self.host = host
        self.tls = tls
        self.accepts = 0
        self.heads: list[str] = []
        self.sent = 0
        self.port = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    @property
    def path(self) -> str:
        return self.heads[-1].split(" ", 2)[1]

    def header(self, name: str, index: int = -1) -> str | None:
        for line in self.heads[index].split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            self.heads.append((await reader.readuntil(b"\r\n\r\n")).decode("latin-1"))
            await self.respond(writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


PNG_BUFFER = io.BytesIO()
Image.new("RGB", (32, 24), (10, 120, 200)).save(PNG_BUFFER, format="PNG")
PNG = PNG_BUFFER.getvalue()


def answer(
    status: int = 200,
    body: bytes = PNG,
    content_type: str = "image/png",
    extra: Iterable[str] = (),
) -> Respond:
    async def respond(writer: asyncio.StreamWriter, listener: Listener) -> None:
        head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", *extra]
        head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        listener.sent += len(body)
        await writer.drain()

    return respond


def redirect(location: str | Callable[[Listener], str], status: int = 302) -> Respond:
    async def respond(writer: asyncio.StreamWriter, listener: Listener) -> None:
        where = location(listener) if callable(location) else location
        writer.write(
            f"HTTP/1.1 {status} X\r\nLocation: {where}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()

    return respond


def endless(head: str, total: int = GiB, chunked: bool = False) -> Respond:
    """``total`` bytes made one block at a time, as fast as the client takes them."""
    frame = b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n" if chunked else BLOCK

    async def respond(writer: asyncio.StreamWriter, listener: Listener) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\n{head}\r\n\r\n".encode())
        while listener.sent < total:
            writer.write(frame)
            listener.sent += len(BLOCK)
            await writer.drain()
        writer.write(b"0\r\n\r\n" if chunked else b"")
        await writer.drain()

    return respond


async def trickle(writer: asyncio.StreamWriter, listener: Listener) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
    while True:
        writer.write(b"x")
        listener.sent += 1
        await writer.drain()
        await asyncio.sleep(0.05)


async def silent(writer: asyncio.StreamWriter, listener: Listener) -> None:
    await asyncio.sleep(3600)


class SpyBackend(httpcore.AsyncNetworkBackend):
    """The real backend, recording every (address, port) anything tried to connect to."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


class FakeDns:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[Any]:
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ip_address(a) for a in self.answers[host]]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns(
        {
            "evil.test": ["127.0.0.1"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "nat64.test": ["64:ff9b::7f00:1"],
            "mixed.test": ["93.184.215.14", "127.0.0.1"],
            "mixed-first.test": ["127.0.0.1", "93.184.215.14"],
            "metadata.test": ["169.254.169.254"],
            "ula.test": ["fd00::1", "2606:4700::1111"],
            "forbidden.test": ["127.0.0.2"],
            "allowed.test": ["127.0.0.1"],
            "images.test": ["127.0.0.1"],
            "wrong.test": ["127.0.0.1"],
        }
    )
    monkeypatch.setattr(fetch_module, "resolve", fake.resolve)
    return fake


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SpyBackend:
    backend = SpyBackend()
    monkeypatch.setattr(fetch_module, "_BACKEND", backend)
    return backend


@pytest.fixture
async def png_server() -> AsyncIterator[Listener]:
    async with Listener(answer()) as listener:
        yield listener


def loopback(*listeners: Listener) -> NetPolicy:
    """The emulator policy: 127.0.0.1 and these listeners' ports."""
    return NetPolicy(allow_private=["127.0.0.1/32"], allow_ports=[s.port for s in listeners])


# -- nothing forbidden is ever reached -------------------------------------------------


async def test_the_listener_is_reached_when_the_policy_allows_it(
    png_server: Listener, spy: SpyBackend
) -> None:
    """The control for the tests below: their listener would see a connection if one were made."""
    fetched = await fetch_bytes(
        png_server.url("/a.png"), policy=loopback(png_server), max_bytes=MiB, timeout=5
    )
    assert fetched.data == PNG
    assert png_server.accepts == 1
    assert spy.attempts == [("127.0.0.1", png_server.port)]


HOSTILE_URLS = [
    "http://127.0.0.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7f.0.0.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0.0.0.0:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[2002:7f00:0001::]:{port}/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/",  # Teredo, client 127.0.0.1
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://evil.test:{port}/",
    "http://mapped.test:{port}/",
    "http://nat64.test:{port}/",
    "http://mixed.test:{port}/",
    "http://mixed-first.test:{port}/",
    "http://metadata.test:{port}/latest/meta-data/",
    "http://ula.test:{port}/",
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://10.0.0.1:{port}/",
    "http://172.16.0.1:{port}/",
    "http://192.168.0.1:{port}/",
    "http://100.64.0.1:{port}/",
    "http://[fc00::1]:{port}/",
    "http://[fe80::1]:{port}/",
]


@pytest.mark.parametrize("template", HOSTILE_URLS)
async def test_hostile_urls_never_reach_a_socket(
    template: str, png_server: Listener, dns: FakeDns, spy: SpyBackend
) -> None:
    # The port is allowed, so only the address can be the reason for refusing.
    policy = NetPolicy(allow_ports=[png_server.port])
    with pytest.raises(UrlNotAllowed) as caught:
        await fetch_bytes(
            template.format(port=png_server.port), policy=policy, max_bytes=MiB, timeout=3
        )
    assert caught.value.code == "url_not_allowed"
    assert png_server.accepts == 0
    assert spy.attempts == []


@pytest.mark.parametrize("host", ["mixed.test", "mixed-first.test"])
async def test_a_dns_answer_with_one_private_address_refuses_the_host(
    host: str, dns: FakeDns, spy: SpyBackend, png_server: Listener
) -> None:
    """Even with the public address listed first: a client may fall back to the private one."""
    with pytest.raises(UrlNotAllowed) as caught:
        await fetch_bytes(
            f"http://{host}:{png_server.port}/",
            policy=NetPolicy(allow_ports=[png_server.port]),
            max_bytes=MiB,
            timeout=3,
        )
    assert "127.0.0.1" not in caught.value.message  # no internal DNS disclosed to the caller
    assert spy.attempts == []


async def test_dns_is_asked_once_and_the_checked_address_is_the_one_dialled(
    png_server: Listener, spy: SpyBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebinding resolver flips to the metadata address after its first answer."""
    answers = iter([["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[Any]:
        calls.append(host)
        return [ip_address(a) for a in next(answers, ["169.254.169.254"])]

    monkeypatch.setattr(fetch_module, "resolve", rebinding)
    fetched = await fetch_bytes(
        f"http://rebind.test:{png_server.port}/a.png",
        policy=loopback(png_server),
        max_bytes=MiB,
        timeout=5,
    )
    assert fetched.data == PNG
    assert calls == ["rebind.test"]
    assert spy.attempts == [("127.0.0.1", png_server.port)]
    assert png_server.header("host") == f"rebind.test:{png_server.port}"


# -- redirects -------------------------------------------------------------------------


@pytest.fixture
async def forbidden_listener() -> AsyncIterator[Listener]:
    try:
        listener = Listener(answer(), host="127.0.0.2")
        await listener.__aenter__()
    except OSError:  # pragma: no cover - macOS has no 127.0.0.2 without an alias
        pytest.skip("cannot listen on 127.0.0.2")
    try:
        yield listener
    finally:
        await listener.__aexit__()


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:{port}/",
        "http://forbidden.test:{port}/",
        "http://2130706434:{port}/",
        "http://[::ffff:127.0.0.2]:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:{allowed}/",
    ],
)
async def test_a_redirect_to_a_forbidden_address_is_refused_before_connecting(
    location: str, forbidden_listener: Listener, dns: FakeDns, spy: SpyBackend
) -> None:
    target = location.format(port=forbidden_listener.port, allowed="{allowed}")
    async with Listener(redirect(lambda s: target.format(allowed=s.port))) as allowed:
        policy = NetPolicy(
            allow_private=["127.0.0.1/32"], allow_ports=[allowed.port, forbidden_listener.port]
        )
        with pytest.raises(UrlNotAllowed):
            await fetch_bytes(allowed.url("/start"), policy=policy, max_bytes=MiB, timeout=3)
        assert allowed.accepts == 1
    assert forbidden_listener.accepts == 0
    assert spy.attempts == [("127.0.0.1", allowed.port)]


def hops(writer: asyncio.StreamWriter, listener: Listener) -> Awaitable[None]:
    """``/hop/N`` redirects (relatively) to ``/hop/N-1``; ``/hop/0`` is the image."""
    left = int(listener.path.rsplit("/", 1)[1])
    return (redirect(f"/hop/{left - 1}") if left else answer())(writer, listener)


async def test_redirects_are_followed_up_to_the_limit_and_no_further() -> None:
    async with Listener(hops) as server:
        fetched = await fetch_bytes(
            server.url("/hop/5"), policy=loopback(server), max_bytes=MiB, timeout=5
        )
        assert fetched.data == PNG
        assert fetched.final_url == server.url("/hop/0")
        with pytest.raises(UrlNotAllowed) as caught:
            await fetch_bytes(
                server.url("/hop/6"), policy=loopback(server), max_bytes=MiB, timeout=5
            )
        assert caught.value.code == "url_too_many_redirects"
        assert server.accepts == 6 + 6


async def test_credentials_go_to_the_first_origin_only() -> None:
    async with Listener(answer()) as other:

        async def two_step(writer: asyncio.StreamWriter, listener: Listener) -> None:
            where = "/same" if listener.path == "/start" else other.url("/file")
            await redirect(where)(writer, listener)

        async with Listener(two_step) as first:
            fetched = await fetch_bytes(
                first.url("/start"),
                policy=loopback(first, other),
                max_bytes=MiB,
                timeout=5,
                headers={"Authorization": "Bearer sk-secret", "Host": "spoofed.example"},
            )
            assert fetched.data == PNG
            assert first.header("authorization", 0) == "Bearer sk-secret"
            assert first.header("authorization", 1) == "Bearer sk-secret"
            assert first.header("host", 0) == f"127.0.0.1:{first.port}"  # never the caller's
        assert other.header("authorization") is None


# -- caps ------------------------------------------------------------------------------


async def _measure(run: Callable[[], Awaitable[None]]) -> tuple[float, int]:
    """(seconds, peak traced bytes) of one run."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        await run()
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return elapsed, peak


@pytest.mark.parametrize(
    "respond",
    [
        endless("Content-Type: video/mp4\r\nTransfer-Encoding: chunked", chunked=True),
        endless("Content-Type: video/mp4\r\nConnection: close"),  # length = until EOF
    ],
    ids=["chunked", "until-close"],
)
async def test_a_1_gib_stream_is_cut_off_at_max_bytes_with_bounded_memory(
    respond: Respond,
) -> None:
    async with Listener(respond) as server:
        received = 0

        async def consume() -> None:
            nonlocal received
            async for chunk in stream(
                server.url("/video.mp4"), policy=loopback(server), max_bytes=8 * MiB, timeout=10
            ):
                received += len(chunk)

        async def mirror() -> None:
            with pytest.raises(UrlTooLarge):
                await consume()

        elapsed, peak = await _measure(mirror)
        assert received <= 8 * MiB
        assert server.sent < 64 * MiB  # the server was stopped, not drained
    assert peak < 16 * MiB
    assert elapsed < 8


async def test_fetch_bytes_holds_at_most_max_bytes_of_a_1_gib_body() -> None:
    chunked = endless("Content-Type: image/png\r\nTransfer-Encoding: chunked", chunked=True)
    async with Listener(chunked) as server:

        async def fetch() -> None:
            with pytest.raises(UrlTooLarge) as caught:
                await fetch_bytes(
                    server.url("/a.png"), policy=loopback(server), max_bytes=4 * MiB, timeout=10
                )
            assert caught.value.code == "url_too_large"

        elapsed, peak = await _measure(fetch)
    assert peak < 24 * MiB
    assert elapsed < 8


async def test_a_lying_content_length_never_delivers_more_than_it_claims() -> None:
    """1 KiB announced, 1 GiB sent: the framing stops at 1 KiB and the rest is never read."""
    async with Listener(endless("Content-Type: image/png\r\nContent-Length: 1024")) as server:

        async def fetch() -> None:
            fetched = await fetch_bytes(
                server.url("/a.png"), policy=loopback(server), max_bytes=4 * MiB, timeout=10
            )
            assert len(fetched.data) == 1024

        elapsed, peak = await _measure(fetch)
        assert server.sent < 64 * MiB
    assert peak < 16 * MiB
    assert elapsed < 8


async def test_an_announced_oversize_body_is_refused_unread() -> None:
    async with Listener(endless(f"Content-Type: video/mp4\r\nContent-Length: {GiB}")) as server:
        handed_out: list[bytes] = []

        async def consume() -> None:
            async for chunk in stream(
                server.url("/v.mp4"), policy=loopback(server), max_bytes=MiB, timeout=10
            ):
                handed_out.append(chunk)

        async def mirror() -> None:
            with pytest.raises(UrlTooLarge):
                await consume()

        elapsed, peak = await _measure(mirror)
    assert handed_out == []  # no chunk of an oversize body is handed out
    assert peak < 16 * MiB
    assert elapsed < 5


@pytest.mark.parametrize("respond", [trickle, silent], ids=["trickle", "silent"])
async def test_the_deadline_covers_the_whole_fetch(respond: Respond) -> None:
    async with Listener(respond) as server:
        started = time.monotonic()
        with pytest.raises(UrlTimeout) as caught:
            await fetch_bytes(
                server.url("/a.png"), policy=loopback(server), max_bytes=MiB, timeout=1
            )
        assert time.monotonic() - started < 2.5
    assert isinstance(caught.value, TransientError)


async def test_a_body_cut_short_is_transient() -> None:
    async def truncated(writer: asyncio.StreamWriter, listener: Listener) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 5000\r\n\r\n")
        writer.write(b"x" * 2500)
        await writer.drain()

    async with Listener(truncated) as server:
        with pytest.raises(UrlUnavailable):
            async for _ in stream(
                server.url("/v"), policy=loopback(server), max_bytes=MiB, timeout=5
            ):
                pass


# -- answers ---------------------------------------------------------------------------


async def test_a_wrong_content_type_is_refused() -> None:
    async with Listener(answer(body=b"<html></html>", content_type="text/html")) as server:
        with pytest.raises(UrlBadContentType) as caught:
            await fetch_bytes(
                server.url(),
                policy=loopback(server),
                max_bytes=MiB,
                timeout=5,
                content_types=["image/"],
            )
    assert caught.value.code == "url_bad_content_type"


async def test_an_encoded_body_is_refused_rather_than_inflated() -> None:
    async with Listener(answer(extra=["Content-Encoding: gzip"])) as server:
        with pytest.raises(UrlBadContentType) as caught:
            await fetch_bytes(server.url(), policy=loopback(server), max_bytes=MiB, timeout=5)
        assert server.header("accept-encoding") == "identity"
    assert caught.value.code == "url_encoded_body"


@pytest.mark.parametrize(
    ("status", "kind", "engine_class"),
    [(404, UrlHttpStatus, InvalidRequest), (503, UrlUnavailable, TransientError)],
)
async def test_http_errors_are_classified_for_the_engine(
    status: int, kind: type[ProviderError], engine_class: type[ProviderError]
) -> None:
    async with Listener(answer(status, b"{}", "application/json")) as server:
        with pytest.raises(kind) as caught:
            await fetch_bytes(server.url(), policy=loopback(server), max_bytes=MiB, timeout=5)
    assert isinstance(caught.value, engine_class)
    assert caught.value.upstream_status == status


async def test_a_classifier_sees_error_answers_first() -> None:
    seen: list[tuple[int, Any]] = []

    def classify(status: int, body: Any) -> ProviderError | None:
        seen.append((status, body))
        return InvalidRequest("the result link expired", code="result_expired")

    body = b'{"error": {"message": "expired"}}'
    async with Listener(answer(403, body, "application/json")) as server:
        with pytest.raises(InvalidRequest) as caught:
            async for _ in stream(
                server.url("/v.mp4?sig=x"),
                policy=loopback(server),
                max_bytes=MiB,
                timeout=5,
                classify=classify,
            ):
                pass
    assert caught.value.code == "result_expired"
    assert seen == [(403, {"error": {"message": "expired"}})]


async def test_a_provider_result_streams_in_bounded_chunks_with_credentials() -> None:
    video = bytes(range(256)) * (12 * 1024)  # 3 MiB
    async with Listener(answer(body=video, content_type="video/mp4")) as server:
        chunks = [
            chunk
            async for chunk in stream(
                server.url("/result.mp4"),
                policy=loopback(server),
                max_bytes=10 * MiB,
                timeout=5,
                headers={"x-goog-api-key": "key-123"},
            )
        ]
        assert server.header("x-goog-api-key") == "key-123"
    assert b"".join(chunks) == video
    assert max(len(c) for c in chunks) <= MiB


async def test_a_fetched_image_decodes(png_server: Listener, dns: FakeDns) -> None:
    fetched = await fetch_bytes(
        f"http://images.test:{png_server.port}/a.png",
        policy=loopback(png_server),
        max_bytes=MiB,
        timeout=5,
        content_types=["image/"],
    )
    info = decode_image(fetched.data)
    assert (info.width, info.height, info.mime_type) == (32, 24, "image/png")
    assert fetched.content_type == "image/png"


# -- TLS: pinned address, hostname everywhere else --------------------------------------


def _tls_pair(tmp_path: Path, cert_host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a cert for ``cert_host``, client context trusting its test CA)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netsafe test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cert_host)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cert_host)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_https_dials_the_checked_address_but_verifies_and_names_the_host(
    tmp_path: Path, dns: FakeDns, spy: SpyBackend
) -> None:
    server_tls, client_tls = _tls_pair(tmp_path, "images.test")
    names: list[str | None] = []
    server_tls.sni_callback = lambda _sock, name, _ctx: names.append(name)
    async with Listener(answer(), tls=server_tls) as server:
        fetched = await fetch_bytes(
            f"https://images.test:{server.port}/a.png",
            policy=loopback(server),
            max_bytes=MiB,
            timeout=5,
            ssl_context=client_tls,
        )
        assert fetched.data == PNG
        assert server.header("host") == f"images.test:{server.port}"
    assert names == ["images.test"]
    assert spy.attempts == [("127.0.0.1", server.port)]


async def test_https_refuses_a_certificate_for_another_host(tmp_path: Path, dns: FakeDns) -> None:
    server_tls, client_tls = _tls_pair(tmp_path, "images.test")
    async with Listener(answer(), tls=server_tls) as server:
        with pytest.raises(UrlUnavailable) as caught:
            await fetch_bytes(
                f"https://wrong.test:{server.port}/a.png",
                policy=loopback(server),
                max_bytes=MiB,
                timeout=5,
                ssl_context=client_tls,
            )
        assert server.heads == []  # no HTTP request was ever sent
    assert "wrong.test" in caught.value.message
