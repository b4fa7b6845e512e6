"""What an untrusted URL may point at: schemes, ports, host spellings and IP addresses.

Everything here decides on values; nothing resolves a name or opens a socket.
``fetch.py`` resolves and connects, and asks this module about every address
it is about to use.

An address is forbidden when it is not globally reachable, or when it is a
wrapper that carries such an IPv4 address: IPv4-mapped (``::ffff:a.b.c.d``)
and NAT64 (``64:ff9b::/96``) addresses *are* their IPv4 address, so they are
judged by it alone; 6to4 (``2002::/16``) and Teredo (``2001::/32``) tunnel
towards an embedded IPv4 address, so both must pass. Python's ``is_global``
has changed between releases, so an explicit table of special-purpose
networks backs it up.

This module must never let an operator's allow-list widen by accident: an
allow-listed network admits addresses written in that network's own family
only (``127.0.0.0/8`` admits ``127.0.0.1``, not ``::ffff:127.0.0.1``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

import httpx

from reelgate.errors import (
    InvalidRequest,
    ProviderError,
    TransientError,
    ValidationFailed,
)

__all__ = [
    "DEFAULT_PORTS",
    "FORBIDDEN_NETWORKS",
    "IPAddress",
    "IPNetwork",
    "NetPolicy",
    "Target",
    "UrlBadContentType",
    "UrlError",
    "UrlHttpStatus",
    "UrlNotAllowed",
    "UrlNotImage",
    "UrlTimeout",
    "UrlTooLarge",
    "UrlUnavailable",
    "check_url",
    "is_forbidden",
    "literal_address",
    "parse_target",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

DEFAULT_PORTS = frozenset({80, 443})

FORBIDDEN_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ip_network(cidr)
    for cidr in (
        # IPv4 special-purpose and non-unicast space (IANA registry, RFC 6890)
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # the retired 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        # IPv6
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # NAT64 local use: always a private translator
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed by some stacks)
        "ff00::/8",  # multicast
    )
)

_MAPPED = ip_network("::ffff:0:0/96")
_NAT64 = ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ip_network("2002::/16")
_TEREDO = ip_network("2001::/32")
_LOCAL_NAMES = ("localhost", "localhost.")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)\Z", re.IGNORECASE)
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?\Z")


# -- errors ---------------------------------------------------------------------------
# Each error is also the engine class that says what to do next: a refused or
# oversized URL fails the job (InvalidRequest), a slow or broken one is retried
# (TransientError). Messages name the host only: a query string may be a secret.


class UrlError(ProviderError):
    """Root of every netsafe error; catch this to handle any of them."""


class UrlNotAllowed(UrlError, InvalidRequest):
    code = "url_not_allowed"


class UrlTooLarge(UrlError, InvalidRequest):
    code = "url_too_large"


class UrlBadContentType(UrlError, InvalidRequest):
    code = "url_bad_content_type"


class UrlNotImage(UrlError, InvalidRequest):
    code = "url_not_image"


class UrlHttpStatus(UrlError, InvalidRequest):
    """The server answered a 4xx (other than 408/425/429); ``upstream_status`` says which."""

    code = "url_http_error"


class UrlTimeout(UrlError, TransientError):
    code = "url_timeout"


class UrlUnavailable(UrlError, TransientError):
    """DNS, connection, TLS or protocol failure, or a 5xx/429 answer."""

    code = "url_unavailable"


# -- addresses ------------------------------------------------------------------------


def _unscoped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, IPv6Address) and ip.scope_id is not None:
        return IPv6Address(int(ip))
    return ip


def _special(ip: IPAddress) -> bool:
    """True when ``ip`` itself (not what it wraps) is anything but public unicast."""
    if (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, IPv6Address) and ip.is_site_local)
    ):
        return True
    return any(ip in net for net in FORBIDDEN_NETWORKS if net.version == ip.version)


def _translated(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped or well-known-prefix NAT64 address stands for."""
    if ip in _MAPPED or ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _tunnelled(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 endpoint a 6to4 or Teredo (client, de-obfuscated) address leads to."""
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    if ip in _TEREDO and ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_forbidden(ip: IPAddress, allow: Iterable[IPNetwork] = ()) -> bool:
    """Whether a fetch must refuse to connect to ``ip``, given the operator's allow-list."""
    ip = _unscoped(ip)
    if any(ip.version == net.version and ip in net for net in allow):
        return False
    if isinstance(ip, IPv6Address):
        translated = _translated(ip)
        if translated is not None:
            return _special(translated)
        tunnelled = _tunnelled(ip)
        if tunnelled is not None and _special(tunnelled):
            return True
    return _special(ip)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host spells literally, or None for a DNS name.

    Raises ValueError for numeric spellings that ``inet_aton`` and browsers
    accept but that are not a canonical dotted quad (``127.1``, ``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, a trailing dot): a resolver would turn
    them into an address behind our back, and nothing legitimate needs them.
    """
    if ":" in host:
        if "%" in host:
            raise ValueError("IPv6 zone identifiers are not allowed")
        return IPv6Address(host)
    last = host.removesuffix(".").rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.match(last):
        return None
    try:
        return IPv4Address(host)
    except ValueError:
        raise ValueError("numeric hosts must be a canonical dotted quad") from None


# -- policy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NetPolicy:
    """What an operator lets untrusted-URL fetches reach beyond public hosts on 80/443.

    The default admits nothing more. Provider emulators on loopback need, e.g.,
    ``NetPolicy(allow_private=["127.0.0.1/32"], allow_ports=[8123])``. A CIDR
    with host bits set is a ValueError: it is probably a typo.
    """

    allow_private: Sequence[str] = ()
    allow_ports: Collection[int] = ()
    max_redirects: int = 5
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    ports: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cidrs = tuple(self.allow_private)
        extra = frozenset(self.allow_ports)
        if any(not 0 < port < 65536 for port in extra):
            raise ValueError(f"allow_ports must be TCP ports (1-65535), got {sorted(extra)}")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must not be negative")
        object.__setattr__(self, "allow_private", cidrs)
        object.__setattr__(self, "allow_ports", extra)
        object.__setattr__(self, "networks", tuple(ip_network(c, strict=True) for c in cidrs))
        object.__setattr__(self, "ports", DEFAULT_PORTS | extra)

    def permits(self, ip: IPAddress) -> bool:
        return not is_forbidden(ip, self.networks)


# -- URLs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One validated URL: where to connect and what to call the host on the wire."""

    url: httpx.URL
    scheme: str
    host: str
    """ASCII (IDNA-encoded), lower case; an IPv6 literal without brackets."""
    port: int
    address: IPAddress | None
    """The address when the host is a literal (or ``localhost``); None for DNS names."""

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _refuse(why: str, host: str | None = None) -> UrlNotAllowed:
    details: dict[str, Any] = {"host": host} if host else {}
    return UrlNotAllowed(f"URL not allowed: {why}", **details)


def parse_target(url: str | httpx.URL, policy: NetPolicy) -> Target:
    """Validate everything about ``url`` that needs no DNS; raise UrlNotAllowed if it fails."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise _refuse("it is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise _refuse("only http and https URLs can be fetched")
    if parsed.userinfo:
        raise _refuse("URLs must not carry a user name or password")
    try:
        host = parsed.raw_host.decode("ascii").lower()
    except UnicodeDecodeError:
        raise _refuse("the host is not valid") from None
    if not host:
        raise _refuse("the URL has no host")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if port not in policy.ports:
        raise _refuse(f"port {port} is not allowed", host)
    try:
        address = literal_address(host)
    except ValueError as exc:
        raise _refuse(str(exc), host) from None
    if address is None:
        if len(host) > 253 or not _HOST_NAME.match(host):
            raise _refuse("the host is not a valid DNS name", host)
        if host in _LOCAL_NAMES or host.removesuffix(".").endswith(".localhost"):
            address = IPv4Address("127.0.0.1")  # RFC 6761: always loopback, never asked
    if address is not None and not policy.permits(address):
        raise _refuse("the host is not a public address", host)
    return Target(url=parsed, scheme=parsed.scheme, host=host, port=port, address=address)


def check_url(url: str, policy: NetPolicy, *, param: str = "image_url") -> None:
    """Cheap submit-time check (scheme, port, userinfo, literal addresses), no DNS.

    Raises ValidationFailed (a 400 for the client) with code ``url_not_allowed``.
    Passing it does not make a URL safe: the fetch re-checks every resolved
    address and every redirect.
    """
    try:
        parse_target(url, policy)
    except UrlNotAllowed as exc:
        raise ValidationFailed(exc.message, code=exc.code, param=param) from None
