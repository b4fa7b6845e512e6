"""The whole path with videos kept in S3 (moto on loopback): mirror, presign, fetch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import httpx
import pytest

from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.config import Settings
from reelgate.engine.worker import Worker
from reelgate.media.probe import probe_video
from reelgate.runtime import build_runtime
from tests.conftest import TEST_KEY, wait_for_status


@pytest.fixture
async def s3_client(settings: Settings, moto_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    bucket = f"rg-{uuid.uuid4().hex[:12]}"
    creds = {"aws_access_key_id": "AKIDTEST", "aws_secret_access_key": "s3-test-secret"}
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket=bucket
    )
    s3_settings = settings.model_copy(
        update={
            "storage_url": f"s3://{bucket}/reelgate",
            "storage_options": {
                "aws_endpoint": moto_endpoint,
                "aws_region": "us-east-1",
                "aws_allow_http": "true",
                **creds,
            },
        }
    )
    rt = await build_runtime(s3_settings, public_url="http://testserver")
    await ensure_dev_account(rt)
    worker = Worker.from_runtime(rt, concurrency=2)
    task = asyncio.create_task(worker.run())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as client:
        yield client
    worker.stop()
    await task
    await rt.aclose()


async def test_a_job_mirrored_to_s3_downloads_from_its_presigned_url(
    s3_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    resp = await s3_client.post(
        "/v1/videos",
        json={
            "model": "local",
            "prompt": "to the bucket",
            "duration_seconds": 1,
            "resolution": "360p",
        },
    )
    final = (await wait_for_status(s3_client, resp.json()["id"], {"completed", "failed"}))[-1]
    assert final["status"] == "completed", final
    url = final["result"]["url"]
    assert "X-Amz-Signature=" in url and "s3-test-secret" not in url
    async with httpx.AsyncClient() as http:
        body = (await http.get(url)).content
    assert len(body) == final["result"]["bytes"]
    (tmp_path / "v.mp4").write_bytes(body)
    info = probe_video(tmp_path / "v.mp4")
    assert (info.video_codec, info.width, info.height) == ("h264", 640, 360)
