"""Untrusted URLs through the whole gateway: provider result links and image_url reach
only public addresses unless the operator allow-lists a private range."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.engine.worker import Worker
from reelgate.netsafe import NetPolicy
from reelgate.providers.http import DownloadRules, HttpDeployment
from reelgate.providers.video_gateway import VideoGatewayProvider
from reelgate.runtime import Runtime
from tests.conftest import wait_for_status
from tests.integration.test_gateway_video_gateway import quick


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(api_key="k", job_seconds=0.3, video_dir=tmp_path / "videos")
    with run_emulator("video_gateway", config) as server:
        yield server


def use_gateway(rt: Runtime, upstream: EmulatorServer, downloads: DownloadRules) -> None:
    """The video gateway deployment, with ``downloads`` as its result-download rules."""
    deployment = HttpDeployment(upstream.url, "k", timeout_seconds=10, downloads=downloads)
    rt.providers.providers["video_gateway"] = VideoGatewayProvider(deployment)
    quick(rt)


async def test_a_result_link_on_a_private_address_is_not_mirrored_by_default(
    client: httpx.AsyncClient,
    worker: Worker,
    rt: Runtime,
    upstream: EmulatorServer,
) -> None:
    use_gateway(rt, upstream, DownloadRules())  # the production default
    resp = await client.post(
        "/v1/videos",
        json={"model": "veo (Audio)", "prompt": "fox", "duration_seconds": 4, "resolution": "512p"},
    )
    assert resp.status_code == 202, resp.text
    final: dict[str, Any] = (
        await wait_for_status(client, resp.json()["id"], {"completed", "failed"}, timeout=60)
    )[-1]
    assert final["status"] == "completed"
    assert final["result"]["mirror_status"] == "failed"
    assert "not allowed" in final["result"]["mirror_error"].lower() or "private" in (
        final["result"]["mirror_error"].lower()
    )


async def test_an_operator_allow_list_lets_the_emulator_through(
    client: httpx.AsyncClient,
    worker: Worker,
    rt: Runtime,
    upstream: EmulatorServer,
) -> None:
    port = int(upstream.url.rsplit(":", 1)[1])
    allowed = NetPolicy(allow_private=["127.0.0.1/32"], allow_ports=[port])
    use_gateway(rt, upstream, DownloadRules(policy=allowed))
    resp = await client.post(
        "/v1/videos",
        json={"model": "veo (Audio)", "prompt": "fox", "duration_seconds": 4, "resolution": "512p"},
    )
    final = (await wait_for_status(client, resp.json()["id"], {"completed", "failed"}, timeout=60))[
        -1
    ]
    assert final["result"]["mirror_status"] == "stored"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://localhost/x.png",
        "http://169.254.169.254/latest/meta-data",
        "http://2130706433/x.png",
        "http://0x7f000001/x.png",
        "http://[::1]/x.png",
        "http://10.0.0.1/x.png",
        "ftp://example.com/x.png",
        "http://example.com:8080/x.png",
    ],
)
async def test_hostile_image_urls_are_refused_at_submit(
    client: httpx.AsyncClient, rt: Runtime, url: str
) -> None:
    rt.settings = rt.settings.model_copy(
        update={"fetch_allow_private": [], "fetch_allow_ports": []}
    )

    resp = await client.post("/v1/videos", json={"model": "local", "prompt": "x", "image_url": url})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "image_url"


async def test_an_oversized_inline_image_is_413_before_decoding(client: httpx.AsyncClient) -> None:
    from reelgate.engine.inputs import MAX_IMAGE_BYTES

    # just over the image's own cap, within the body cap: the image check answers
    over = "A" * ((MAX_IMAGE_BYTES * 4) // 3 + 64)
    resp = await client.post("/v1/videos", json={"model": "local", "prompt": "x", "image": over})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "image_too_large"
    # far over: the body cap answers before the body is even parsed
    huge = "A" * (20 * 1024 * 1024)
    resp = await client.post("/v1/videos", json={"model": "local", "prompt": "x", "image": huge})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"
    assert "image_url" in resp.json()["error"]["message"]


def test_every_deployment_gets_the_operators_allow_list(tmp_path: Path) -> None:
    from reelgate.config import Settings
    from reelgate.providers.registry import build_registry

    settings = Settings(
        data_dir=tmp_path,
        fetch_allow_private=["10.1.0.0/16"],
        fetch_allow_ports=[8443],
        mirror_max_bytes=1234,
        xai_api_key="xai-k",
        openai_api_key="sk-k",
    )
    registry = build_registry(settings)
    for kind in ("grok", "sora"):
        rules = registry.providers[kind]._deployment.downloads  # type: ignore[attr-defined]
        assert tuple(rules.policy.allow_private) == ("10.1.0.0/16",)
        assert set(rules.policy.allow_ports) == {8443}
        assert rules.max_bytes == 1234
