"""Storage backends and the /files route, against real disks and a loopback S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from fastapi import FastAPI

from reelgate.api.files import make_files_router
from reelgate.errors import StorageError
from reelgate.storage import Storage, StoredObject, local_root, open_storage
from reelgate.storage.objstore import MAX_URL_LIFETIME, ObjectStorage
from reelgate.storage.signing import sign_path, signed_query

SECRET = b"test-signing-secret-0123456789ab"
BASE = "http://testserver"
SECRET_ACCESS_KEY = "s3cr3t-access-key"
MIB = 1024 * 1024
VIDEO = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


def _file_storage(root: Path) -> ObjectStorage:
    storage = open_storage(root.as_uri(), public_base_url=BASE + "/", signing_secret=SECRET)
    assert isinstance(storage, ObjectStorage)
    return storage


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "video store"  # a space: the URL is percent-encoded


@pytest.fixture
def storage(root: Path) -> ObjectStorage:
    return _file_storage(root)


@pytest.fixture
async def client(storage: ObjectStorage) -> AsyncIterator[httpx.AsyncClient]:
    served = local_root(storage)
    assert served is not None
    app = FastAPI()
    app.include_router(make_files_router(served, SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as http:
        yield http


@pytest.fixture
async def video_url(storage: ObjectStorage, tmp_path: Path) -> str:
    await storage.put_file("jobs/v1.mp4", _write(tmp_path / "in.mp4", VIDEO), "video/mp4")
    return await storage.signed_url("jobs/v1.mp4", 600)


# --- file and memory backends ------------------------------------------------


async def test_file_backend_stores_checks_links_and_deletes(
    storage: ObjectStorage, root: Path, tmp_path: Path
) -> None:
    assert root.is_dir()
    as_protocol: Storage = storage
    stored = await as_protocol.put_file("a/b/c.mp4", _write(tmp_path / "x", VIDEO), "video/mp4")
    assert stored == StoredObject(key="a/b/c.mp4", size=len(VIDEO))
    assert (root / "a/b/c.mp4").read_bytes() == VIDEO
    assert await storage.exists("a/b/c.mp4")
    assert not await storage.exists("a/b/other.mp4")
    assert await storage.read_bytes("a/b/c.mp4", len(VIDEO)) == VIDEO
    assert storage.open_local_path("a/b/c.mp4") == (root / "a/b/c.mp4").resolve()

    url = urlsplit(await storage.signed_url("a/b/c.mp4", 300))
    assert (url.scheme, url.netloc, url.path) == ("http", "testserver", "/files/a/b/c.mp4")
    query = parse_qs(url.query)
    assert 0 < int(query["expires"][0]) - time.time() <= 300

    await storage.delete("a/b/c.mp4")
    assert not await storage.exists("a/b/c.mp4")
    await storage.delete("a/b/c.mp4")  # deleting twice is fine: retries are safe


async def test_links_never_outlive_the_cap(storage: ObjectStorage, tmp_path: Path) -> None:
    url = await storage.signed_url("k.mp4", 30 * 24 * 3600)
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert expires - time.time() <= MAX_URL_LIFETIME
    with pytest.raises(ValueError, match="positive"):
        await storage.signed_url("k.mp4", 0)


async def test_memory_backend_roundtrip(tmp_path: Path) -> None:
    storage = open_storage("memory://", public_base_url=BASE, signing_secret=SECRET)
    assert local_root(storage) is None
    stored = await storage.put_file("in/img.png", _write(tmp_path / "i", b"png!"), "image/png")
    assert stored.size == 4
    assert await storage.exists("in/img.png")
    assert await storage.read_bytes("in/img.png", 4) == b"png!"
    assert (await storage.signed_url("in/img.png", 60)).startswith(f"{BASE}/files/in/img.png?")
    await storage.delete("in/img.png")
    assert not await storage.exists("in/img.png")


async def test_read_bytes_refuses_large_and_missing_objects(tmp_path: Path) -> None:
    storage = open_storage("memory://", public_base_url=BASE, signing_secret=SECRET)
    await storage.put_file("big", _write(tmp_path / "b", b"x" * 1000), "image/png")
    with pytest.raises(StorageError) as too_large:
        await storage.read_bytes("big", 999)
    assert too_large.value.code == "object_too_large"
    with pytest.raises(StorageError) as missing:
        await storage.read_bytes("nope", 999)
    assert missing.value.code == "object_not_found"


async def test_upload_of_64_mib_file_uses_constant_memory(
    storage: ObjectStorage, root: Path, tmp_path: Path
) -> None:
    source = tmp_path / "big.mp4"
    with source.open("wb") as fh:
        for i in range(64):
            fh.write(i.to_bytes(1, "big") * MIB)
    tracemalloc.start()
    try:
        stored = await storage.put_file("big/video.mp4", source, "video/mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == 64 * MIB
    assert peak < 16 * MIB, f"upload held {peak / MIB:.1f} MiB at once"
    assert _sha256(root / "big/video.mp4") == _sha256(source)


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../escape", "/etc/passwd", "a\\..\\b", "", "a//b", "./a", "a/.", "a\x00b"],
)
async def test_unsafe_keys_are_refused_everywhere(
    storage: ObjectStorage, tmp_path: Path, key: str
) -> None:
    source = _write(tmp_path / "f", b"data")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: storage.put_file(key, source, "video/mp4"),
        lambda: storage.signed_url(key, 60),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
        lambda: storage.read_bytes(key, 10),
    ]
    for call in calls:
        with pytest.raises(StorageError) as info:
            await call()
        assert info.value.code == "invalid_key"
    with pytest.raises(StorageError):
        storage.open_local_path(key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "video store"]


def test_symlink_out_of_the_root_is_refused(
    storage: ObjectStorage, root: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(StorageError, match="leaves the storage root"):
        storage.open_local_path("link/secret.txt")


def test_unknown_scheme_names_the_supported_ones() -> None:
    for url in ("ftp://host/dir", "videos/dir"):
        with pytest.raises(StorageError) as info:
            open_storage(url, public_base_url=BASE, signing_secret=SECRET)
        assert "file://, memory://, s3://, gs://" in info.value.message


def test_local_backends_refuse_a_short_secret(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="at least 16 bytes"):
        open_storage("memory://", public_base_url=BASE, signing_secret=b"short")


def test_gcs_takes_client_options_and_reports_bad_keys_without_values() -> None:
    storage = open_storage(
        "gs://bucket/prefix",
        public_base_url=BASE,
        signing_secret=b"",
        options={"google_allow_http": "true", "google_bucket": "bucket"},
    )
    assert local_root(storage) is None
    with pytest.raises(StorageError) as info:
        open_storage(
            "gs://bucket/prefix",
            public_base_url=BASE,
            signing_secret=b"",
            options={"google_nonsense": "hunter2-value"},
        )
    assert "google_nonsense" in info.value.message
    assert "hunter2" not in info.value.message


# --- the /files route ----------------------------------------------------------


async def test_full_get_serves_the_file_with_cache_bound_to_expiry(
    client: httpx.AsyncClient, video_url: str
) -> None:
    response = await client.get(video_url)
    assert response.status_code == 200
    assert response.content == VIDEO
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(VIDEO))
    assert response.headers["x-content-type-options"] == "nosniff"
    directive, max_age = response.headers["cache-control"].split(", max-age=")
    assert directive == "private"
    assert 590 <= int(max_age) <= 600


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, len(VIDEO) - 1),
        ("bytes=-240", len(VIDEO) - 240, len(VIDEO) - 1),
        ("bytes=10000-99999", 10000, len(VIDEO) - 1),  # past the end: clamped
        ("bytes=-99999", 0, len(VIDEO) - 1),
    ],
)
async def test_single_range_is_served_as_206(
    client: httpx.AsyncClient, video_url: str, header: str, first: int, last: int
) -> None:
    response = await client.get(video_url, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == VIDEO[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(VIDEO)}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-20010", "bytes=-0", "bytes=9-5"])
async def test_unsatisfiable_range_is_416_with_the_size(
    client: httpx.AsyncClient, video_url: str, header: str
) -> None:
    response = await client.get(video_url, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(VIDEO)}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["items=0-5", "bytes=", "bytes=abc", "bytes=-", "bytes 0-5"])
async def test_malformed_range_is_ignored(
    client: httpx.AsyncClient, video_url: str, header: str
) -> None:
    response = await client.get(video_url, headers={"Range": header})
    assert response.status_code == 200
    assert response.content == VIDEO


async def test_unsatisfiable_parts_of_a_multi_range_are_dropped(
    client: httpx.AsyncClient, video_url: str
) -> None:
    response = await client.get(video_url, headers={"Range": "bytes=0-9, 50000-"})
    assert response.status_code == 206
    assert response.content == VIDEO[:10]
    two = await client.get(video_url, headers={"Range": "bytes=0-9,20-29"})
    assert two.status_code == 206
    assert two.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert VIDEO[0:10] in two.content
    assert VIDEO[20:30] in two.content


async def test_if_range_decides_between_range_and_whole_file(
    client: httpx.AsyncClient, video_url: str
) -> None:
    etag = (await client.head(video_url)).headers["etag"]
    same = await client.get(video_url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert (same.status_code, same.content) == (206, VIDEO[:4])
    changed = await client.get(video_url, headers={"Range": "bytes=0-3", "If-Range": '"old"'})
    assert (changed.status_code, changed.content) == (200, VIDEO)


async def test_head_sends_headers_only(client: httpx.AsyncClient, video_url: str) -> None:
    response = await client.head(video_url)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(VIDEO))
    assert response.headers["accept-ranges"] == "bytes"
    ranged = await client.head(video_url, headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.content == b""
    assert ranged.headers["content-range"] == f"bytes 0-99/{len(VIDEO)}"


async def test_expired_link_is_403_url_expired(
    client: httpx.AsyncClient, storage: ObjectStorage, tmp_path: Path
) -> None:
    await storage.put_file("old.mp4", _write(tmp_path / "o", VIDEO), "video/mp4")
    query = signed_query("old.mp4", 60, SECRET, now=time.time() - 3600)
    response = await client.get(f"/files/old.mp4?{query}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "url_expired"
    assert response.headers["cache-control"] == "no-store"


async def test_tampered_links_are_403_invalid_signature(
    client: httpx.AsyncClient, storage: ObjectStorage, tmp_path: Path, video_url: str
) -> None:
    await storage.put_file("jobs/v2.mp4", _write(tmp_path / "v2", b"other"), "video/mp4")
    url = urlsplit(video_url)
    query = parse_qs(url.query)
    expires, signature = query["expires"][0], query["signature"][0]
    for path, params in [
        ("/files/jobs/v2.mp4", {"expires": expires, "signature": signature}),
        (url.path, {"expires": str(int(expires) + 1000), "signature": signature}),
        (url.path, {"expires": expires, "signature": signature[:-2] + "AA"}),
        (url.path, {"expires": expires}),
        (url.path, {}),
    ]:
        response = await client.get(path, params=params)
        assert response.status_code == 403, (path, params)
        assert response.json()["error"]["code"] == "invalid_signature"


async def test_missing_file_is_404_json(client: httpx.AsyncClient, storage: ObjectStorage) -> None:
    response = await client.get(await storage.signed_url("jobs/never.mp4", 60))
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such file"}}


async def test_even_a_signed_traversal_key_cannot_leave_the_root(
    client: httpx.AsyncClient, root: Path
) -> None:
    (root.parent / "secret.txt").write_text("top secret")
    expires = int(time.time()) + 60
    for key in ("../secret.txt", "a/../../secret.txt"):
        signature = sign_path(key, expires, SECRET)
        raw = key.replace(".", "%2E")  # so no client or router normalises the dots away
        response = await client.get(f"/files/{raw}?expires={expires}&signature={signature}")
        assert response.status_code == 404, key
        assert b"top secret" not in response.content


async def test_active_content_types_are_served_as_downloads(
    client: httpx.AsyncClient, storage: ObjectStorage, tmp_path: Path
) -> None:
    await storage.put_file("x.html", _write(tmp_path / "h", b"<script>1</script>"), "text/html")
    response = await client.get(await storage.signed_url("x.html", 60))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"


# --- S3 (moto on loopback) ---------------------------------------------------------


@pytest.fixture
def s3_storage(moto_endpoint: str) -> Storage:
    bucket = f"reelgate-{uuid.uuid4().hex[:12]}"
    credentials = {"aws_access_key_id": "AKIDREELGATE", "aws_secret_access_key": SECRET_ACCESS_KEY}
    boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1", **credentials
    ).create_bucket(Bucket=bucket)
    return open_storage(
        f"s3://{bucket}/videos",
        public_base_url=BASE,
        signing_secret=b"",
        options={
            "aws_endpoint": moto_endpoint,
            "aws_region": "us-east-1",
            "aws_allow_http": "true",  # a client option: must not reach the store config
            **credentials,
        },
    )


async def test_s3_presigned_url_serves_the_upload_with_range(
    s3_storage: Storage, tmp_path: Path
) -> None:
    data = os.urandom(12 * MIB)  # over one part: exercises the multipart upload
    stored = await s3_storage.put_file("jobs/s3.mp4", _write(tmp_path / "s3", data), "video/mp4")
    assert stored == StoredObject(key="jobs/s3.mp4", size=len(data))
    assert local_root(s3_storage) is None

    url = await s3_storage.signed_url("jobs/s3.mp4", 300)
    assert "/videos/jobs/s3.mp4?" in url
    assert "X-Amz-Signature=" in url
    assert SECRET_ACCESS_KEY not in url
    async with httpx.AsyncClient(timeout=30) as http:
        whole = await http.get(url)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.content == data
        part = await http.get(url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == data[1000:2000]


async def test_s3_exists_read_delete_and_expiry_cap(s3_storage: Storage, tmp_path: Path) -> None:
    await s3_storage.put_file("in/a.png", _write(tmp_path / "a", b"png"), "image/png")
    assert await s3_storage.exists("in/a.png")
    assert await s3_storage.read_bytes("in/a.png", 3) == b"png"
    url = await s3_storage.signed_url("in/a.png", 30 * 24 * 3600)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(MAX_URL_LIFETIME)]
    await s3_storage.delete("in/a.png")
    assert not await s3_storage.exists("in/a.png")
    await s3_storage.delete("in/a.png")


def test_s3_unknown_option_is_a_storage_error_without_values(moto_endpoint: str) -> None:
    with pytest.raises(StorageError) as info:
        open_storage(
            "s3://bucket/p",
            public_base_url=BASE,
            signing_secret=b"",
            options={"aws_secret_access_key": "hunter2-secret", "aws_bogus": "x"},
        )
    assert info.value.code == "storage_misconfigured"
    assert "aws_bogus" in info.value.message
    assert "hunter2" not in info.value.message


async def test_s3_presigned_put_takes_a_providers_upload_and_streams_it_back(
    s3_storage: Storage,
) -> None:
    """What a provider given ``output.upload_url`` does (xAI: "Signed URL to upload the
    generated video via HTTP PUT"): PUT to the presigned link, no credentials of its own."""
    data = os.urandom(3 * MIB)
    url = await s3_storage.upload_url("uploads/video_1-1.mp4", 600)
    assert "X-Amz-Signature=" in url and SECRET_ACCESS_KEY not in url
    async with httpx.AsyncClient(timeout=30) as http:
        put = await http.put(url, content=data, headers={"content-type": "video/mp4"})
        assert put.status_code == 200
    streamed = b"".join([chunk async for chunk in s3_storage.stream("uploads/video_1-1.mp4")])
    assert streamed == data
    with pytest.raises(StorageError) as missing:
        _ = [chunk async for chunk in s3_storage.stream("uploads/none.mp4")]
    assert missing.value.code == "object_not_found"
