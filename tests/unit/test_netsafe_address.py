"""Which addresses and URLs netsafe refuses, decided without any network."""

from __future__ import annotations

import io
import struct
import zlib
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from reelgate.errors import InvalidRequest, ValidationFailed
from reelgate.netsafe import (
    FORBIDDEN_NETWORKS,
    NetPolicy,
    UrlNotAllowed,
    UrlNotImage,
    check_url,
    decode_image,
    is_forbidden,
)
from reelgate.netsafe.address import parse_target


def _teredo(client: str, server: str = "65.54.227.120") -> IPv6Address:
    """A Teredo address: 2001:0:<server>:<flags>:<port>:<client XOR 0xffffffff>."""
    value = (0x20010000 << 96) | (int(IPv4Address(server)) << 64)
    return IPv6Address(value | (int(IPv4Address(client)) ^ 0xFFFFFFFF))


HOSTILE = [
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "0.0.0.0",  # noqa: S104 - an address under test; nothing binds to it
    "::",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # deprecated IPv4-compatible
    "::ffff:0:7f00:1",  # IPv4-translated
    "2002:7f00:0001::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    str(_teredo("127.0.0.1")),
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::808:808",  # local-use NAT64 is never public
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "2001:db8::1",
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2a00:1450:4001::200e",
    "::ffff:8.8.8.8",  # a mapped address is its IPv4 address
    "64:ff9b::808:808",  # so is a NAT64 one (IPv6-only networks with DNS64)
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize("address", HOSTILE)
def test_hostile_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(ip_address(address))


def test_the_allow_list_admits_only_the_spelling_it_names() -> None:
    loopback = NetPolicy(allow_private=["127.0.0.0/8"])
    assert loopback.permits(IPv4Address("127.0.0.1"))
    assert not loopback.permits(IPv6Address("::ffff:127.0.0.1"))
    assert not loopback.permits(IPv6Address("64:ff9b::7f00:1"))
    assert not loopback.permits(IPv4Address("10.0.0.1"))
    assert not NetPolicy().permits(IPv4Address("127.0.0.1"))


def test_a_policy_refuses_typos_instead_of_guessing() -> None:
    with pytest.raises(ValueError, match="host bits"):
        NetPolicy(allow_private=["127.0.0.1/8"])
    with pytest.raises(ValueError, match="does not appear"):
        NetPolicy(allow_private=["localhost"])
    with pytest.raises(ValueError, match="TCP ports"):
        NetPolicy(allow_ports=[0])


REFUSED_URLS = [
    "ftp://example.com/a.png",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "http://example.com:22/",
    "http://example.com:8080/",
    "http://example.com:0/",
    "https://user:pass@example.com/a.png",
    "https://user@example.com/a.png",
    "http://127.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://127.0.0.1./",
    "http://example.0x7f/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://app.localhost/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::7f00:1]/",
    f"http://[{_teredo('127.0.0.1')}]/",
    "http://[fe80::1%25eth0]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/",
    "http://%31%32%37.0.0.1/",
    "http://exa mple.com/",
    "http:///no-host",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_check_url_refuses_without_dns(url: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_url(url, NetPolicy(), param="image_url")
    assert caught.value.code == "url_not_allowed"
    assert caught.value.details["param"] == "image_url"
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.png",
        "http://example.com:80/a.png?sig=abc",
        "https://cdn.example.com:443/x",
        "https://bücher.example/bild.png",
        "https://[2606:4700:4700::1111]/a.png",
        "https://8.8.8.8/a.png",
        "https://123.example.com/a.png",
    ],
)
def test_check_url_accepts_public_urls(url: str) -> None:
    check_url(url, NetPolicy())


def test_the_allow_list_opens_loopback_and_extra_ports() -> None:
    policy = NetPolicy(allow_private=["127.0.0.1/32"], allow_ports=[8123])
    check_url("http://127.0.0.1:8123/result.mp4", policy)
    check_url("http://localhost:8123/result.mp4", policy)  # localhost means 127.0.0.1
    with pytest.raises(ValidationFailed):
        check_url("http://127.0.0.2:8123/", policy)
    with pytest.raises(ValidationFailed):
        check_url("http://127.0.0.1:8124/", policy)


def test_errors_name_the_host_but_never_the_query() -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        parse_target("http://10.0.0.1/x?X-Amz-Signature=secret", NetPolicy())
    assert "secret" not in str(caught.value.to_dict())
    assert caught.value.details["host"] == "10.0.0.1"
    assert isinstance(caught.value, InvalidRequest)  # the engine fails the job, no retry


# -- properties ----------------------------------------------------------------------


def _inside(network: IPv4Network | IPv6Network) -> st.SearchStrategy[IPv4Address | IPv6Address]:
    first = int(network.network_address)
    family = type(network.network_address)  # ip_address(int) would guess IPv4 for ::/96
    return st.integers(first, first + network.num_addresses - 1).map(family)


forbidden_addresses = st.sampled_from(FORBIDDEN_NETWORKS).flatmap(_inside)
forbidden_ipv4 = st.sampled_from([n for n in FORBIDDEN_NETWORKS if n.version == 4]).flatmap(_inside)
public_ipv4 = st.sampled_from(
    [IPv4Network("8.0.0.0/8"), IPv4Network("93.184.0.0/16"), IPv4Network("151.101.0.0/16")]
).flatmap(_inside)


def _wrappers(v4: IPv4Address, low: int) -> list[IPv6Address]:
    """Every IPv6 form that carries ``v4``; ``low`` varies the bits the wrapper ignores."""
    return [
        IPv6Address(f"::ffff:{v4}"),
        IPv6Address((0x0064FF9B << 96) | int(v4)),
        IPv6Address((0x2002 << 112) | (int(v4) << 80) | (low & ((1 << 80) - 1))),
        _teredo(str(v4)),
    ]


@given(forbidden_addresses)
def test_every_address_in_a_forbidden_network_is_forbidden(ip: IPv4Address | IPv6Address) -> None:
    assert is_forbidden(ip)


@given(forbidden_ipv4, st.integers(0, (1 << 80) - 1))
def test_every_wrapper_of_a_forbidden_ipv4_is_forbidden(v4: IPv4Address, low: int) -> None:
    for wrapped in _wrappers(v4, low):
        assert is_forbidden(wrapped), wrapped


@given(public_ipv4, st.integers(0, (1 << 80) - 1))
def test_translated_forms_of_a_public_ipv4_are_allowed(v4: IPv4Address, low: int) -> None:
    mapped, nat64, six_to_four, _teredo_form = _wrappers(v4, low)
    assert not is_forbidden(v4)
    assert not is_forbidden(mapped)
    assert not is_forbidden(nat64)
    assert not is_forbidden(six_to_four)


@given(st.integers(0, 0xFFFFFFFF).map(IPv4Address))
def test_any_ipv4_literal_host_is_judged_like_its_address(v4: IPv4Address) -> None:
    policy = NetPolicy()
    if is_forbidden(v4):
        with pytest.raises(UrlNotAllowed):
            parse_target(f"https://{v4}/a.png", policy)
    else:
        assert parse_target(f"https://{v4}/a.png", policy).address == v4


@given(st.integers(0, 0xFFFFFFFF))
def test_decimal_and_hex_host_spellings_are_always_refused(value: int) -> None:
    for host in (str(value), hex(value), f"0{value:o}"):
        with pytest.raises(UrlNotAllowed):
            parse_target(f"http://{host}/", NetPolicy())


# -- images --------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def test_decode_image_reports_size_and_type() -> None:
    info = decode_image(_png(64, 48))
    assert (info.width, info.height, info.format, info.mime_type) == (64, 48, "PNG", "image/png")


@pytest.mark.parametrize(
    ("fmt", "mime"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")]
)
def test_decode_image_reads_the_formats_providers_take(fmt: str, mime: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(buffer, format=fmt)
    info = decode_image(buffer.getvalue())
    assert (info.width, info.height, info.format, info.mime_type) == (20, 10, fmt, mime)


def test_decode_image_refuses_bytes_that_are_not_an_image() -> None:
    with pytest.raises(UrlNotImage) as caught:
        decode_image(b"<html>not an image</html>")
    assert caught.value.code == "url_not_image"


def test_decode_image_refuses_a_truncated_image() -> None:
    data = _png(256, 256)
    with pytest.raises(UrlNotImage):
        decode_image(data[: len(data) // 2])


def test_decode_image_refuses_formats_outside_the_list() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="BMP")
    with pytest.raises(UrlNotImage):
        decode_image(buffer.getvalue())


@pytest.mark.parametrize("side", [8_000, 100_000])
def test_decode_image_refuses_huge_dimensions_before_decoding(side: int) -> None:
    with pytest.raises(UrlNotImage) as caught:
        decode_image(_png_header_only(side, side))
    assert caught.value.code == "url_image_too_large"
