"""Signed file links: only the exact key and expiry that were signed are accepted."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

import pytest

from reelgate.errors import Forbidden
from reelgate.storage.signing import sign_path, signed_query, verify

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.0


def _parts(query: str) -> tuple[str, str]:
    fields = parse_qs(query, strict_parsing=True)
    assert set(fields) == {"expires", "signature"}
    return fields["expires"][0], fields["signature"][0]


def _code(key: str, expires: str | int, signature: str, now: float = NOW) -> str:
    with pytest.raises(Forbidden) as info:
        verify(key, expires, signature, SECRET, now=now)
    assert info.value.http_status == 403
    return info.value.code


def test_signed_query_roundtrips_through_verify() -> None:
    expires, signature = _parts(signed_query("videos/a b/ü.mp4", 60, SECRET, now=NOW))
    assert int(expires) == int(NOW) + 60
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", signature)  # unpadded base64url SHA-256
    verify("videos/a b/ü.mp4", expires, signature, SECRET, now=NOW)
    verify("videos/a b/ü.mp4", int(expires), signature, SECRET, now=NOW + 59)


def test_signature_is_deterministic_and_depends_on_every_input() -> None:
    base = sign_path("a.mp4", 100, SECRET)
    assert sign_path("a.mp4", 100, SECRET) == base
    assert sign_path("b.mp4", 100, SECRET) != base
    assert sign_path("a.mp4", 101, SECRET) != base
    assert sign_path("a.mp4", 100, SECRET[::-1]) != base


def test_changed_key_is_rejected_as_bad_signature() -> None:
    expires, signature = _parts(signed_query("jobs/1.mp4", 60, SECRET, now=NOW))
    assert _code("jobs/2.mp4", expires, signature) == "invalid_signature"
    assert _code("jobs/1.mp4/", expires, signature) == "invalid_signature"


@pytest.mark.parametrize("delta", [1, -1, 3600])
def test_changed_expiry_is_rejected_as_bad_signature(delta: int) -> None:
    expires, signature = _parts(signed_query("jobs/1.mp4", 60, SECRET, now=NOW))
    assert _code("jobs/1.mp4", str(int(expires) + delta), signature) == "invalid_signature"


@pytest.mark.parametrize("expires", ["", "abc", " 12", "+12", "1_2", "-5", "١٢", "1" * 17])
def test_malformed_expiry_is_rejected_as_bad_signature(expires: str) -> None:
    assert _code("jobs/1.mp4", expires, "x") == "invalid_signature"


def test_changed_signature_is_rejected() -> None:
    expires, signature = _parts(signed_query("jobs/1.mp4", 60, SECRET, now=NOW))
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad in (flipped, signature[:-1], signature + "A", "", "é" * 43, signature.upper()):
        if bad != signature:
            assert _code("jobs/1.mp4", expires, bad) == "invalid_signature"


def test_other_secret_is_rejected() -> None:
    expires, signature = _parts(signed_query("jobs/1.mp4", 60, SECRET, now=NOW))
    with pytest.raises(Forbidden) as info:
        verify("jobs/1.mp4", expires, signature, b"another-secret-of-32-bytes------", now=NOW)
    assert info.value.code == "invalid_signature"


def test_link_expires_at_its_expiry_second() -> None:
    expires, signature = _parts(signed_query("jobs/1.mp4", 60, SECRET, now=NOW))
    verify("jobs/1.mp4", expires, signature, SECRET, now=NOW + 59.9)
    assert _code("jobs/1.mp4", expires, signature, now=NOW + 60) == "url_expired"
    assert _code("jobs/1.mp4", expires, signature, now=NOW + 86400) == "url_expired"


def test_expired_and_tampered_link_reads_as_tampered() -> None:
    expires, signature = _parts(signed_query("jobs/1.mp4", 60, SECRET, now=NOW))
    assert _code("jobs/2.mp4", expires, signature, now=NOW + 3600) == "invalid_signature"


def test_error_messages_never_contain_the_secret() -> None:
    with pytest.raises(Forbidden) as info:
        verify("k", "1", "sig", SECRET, now=NOW)
    assert SECRET.decode() not in str(info.value.to_dict())


def test_short_secret_and_nonpositive_lifetime_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        sign_path("k", 1, b"short")
    with pytest.raises(ValueError, match="positive"):
        signed_query("k", 0, SECRET)
