"""`reelgate serve --emulators`, used as a new user would: every cloud model answers
through its provider's emulator; text- and image-to-video for each provider, and a
fallback chain whose first model answers 429."""

from __future__ import annotations

import base64
import io
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from reelgate.media.probe import probe_video
from tests.acceptance.conftest import Procs, process_env
from tests.acceptance.test_processes import _wait_healthy
from tests.conftest import free_port

pytestmark = pytest.mark.slow
KEY = "rg_emulated_key_abcdefghijklmnopqrstuvwxyz0123"

JOBS: dict[str, dict[str, Any]] = {
    "veo": {"model": "veo-3-1-fast", "duration_seconds": 4, "resolution": "720p"},
    "sora": {"model": "sora-2", "duration_seconds": 4, "resolution": "720p"},
    "wan": {"model": "wan-2-1", "duration_seconds": 5, "resolution": "720p"},
    "grok": {"model": "grok-video", "duration_seconds": 4, "resolution": "720p"},
    "gateway": {"model": "veo (Audio)", "duration_seconds": 4, "resolution": "512p"},
    # the models only the hosting platforms serve (their first route: fal, by price)
    **{m: {"model": m} for m in ("kling-2-5-turbo", "seedance-1-pro", "hailuo-02")},
    **{m: {"model": m} for m in ("luma-ray-2", "ltx-video", "pixverse-v5")},
}


def _image() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (640, 360), (30, 120, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_every_provider_through_its_emulator_and_a_429_fallback(
    tmp_path: Path, procs: Procs
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.env = process_env(data_dir=str(tmp_path / "data"), dev_api_key=KEY)
    serve = procs.start(
        "serve", "--port", str(port), "--emulators", "--emulator-job-seconds", "3", name="serve"
    )
    _wait_healthy(base, procs, "serve", timeout=120)
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    for body in JOBS.values():
        assert models[body["model"]]["emulated"] is True
        assert models[body["model"]]["usable"] is True, models[body["model"]]

    submitted: dict[str, str] = {}
    for name, body in JOBS.items():
        r = http.post("/v1/videos", json={**body, "prompt": f"{name}: a red fox in snow"})
        assert r.status_code == 202, (name, r.text)
        submitted[f"{name}-t2v"] = r.json()["id"]
        if name != "gateway":  # the media-video-from-text upstream is text-only
            r = http.post(
                "/v1/videos", json={**body, "prompt": f"{name}: animate this", "image": _image()}
            )
            assert r.status_code == 202, (name, r.text)
            submitted[f"{name}-i2v"] = r.json()["id"]
    r = http.post(
        "/v1/videos",
        json={
            **JOBS["veo"],
            # Veo 3.1 fast has three routes here (Vertex, fal, Replicate): all out of quota
            "prompt": "[fault:quota@veo] [fault:quota@fal] [fault:quota@replicate] a fox",
            "fallback": ["grok-video"],
        },
    )
    assert r.status_code == 202, r.text
    submitted["fallback"] = r.json()["id"]

    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 240
    while len(final) < len(submitted) and time.monotonic() < deadline:
        for name, job_id in submitted.items():
            if name not in final:
                answer = http.get(f"/v1/videos/{job_id}")
                if answer.status_code == 429:  # the key's 50/second: wait as told, as clients do
                    time.sleep(float(answer.headers["Retry-After"]))
                    continue
                assert answer.status_code == 200, answer.text
                job = answer.json()
                if job["status"] in ("completed", "failed", "canceled"):
                    final[name] = job
        time.sleep(0.5)
    assert set(final) == set(submitted), f"unfinished: {set(submitted) - set(final)}"
    for name, job in final.items():
        assert job["status"] == "completed", (name, job["error"], job["attempts"])
        assert job["result"]["mirror_status"] == "stored", (name, job["result"].get("mirror_error"))
        video = http.get(job["result"]["url"])
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(video.content)
        assert probe_video(path).duration_seconds > 0
        assert job["cost"]["millicredits"] > 0
    fallback = final["fallback"]
    assert fallback["delivered_by"] == "grok-video"
    assert [(a["model"], a["provider"], a["outcome"]) for a in fallback["attempts"]] == [
        ("veo-3-1-fast", "veo", "quota"),  # its own route first (the lowest price)...
        ("veo-3-1-fast", "fal", "quota"),  # ...then its other routes, by price...
        ("veo-3-1-fast", "replicate", "quota"),
        ("grok-video", "grok", "completed"),  # ...before the next model of the chain
    ]

    # a stop says so once per component: the API, the worker, each emulator
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=60)
    log = procs.log("serve")
    assert log.count("Shutting down") == 1, log[-3000:]
    assert log.count("stopped; released") == 1
    for kind in ("veo", "sora", "wan", "grok", "video_gateway", "fal", "replicate"):
        assert log.count(f"emulator {kind} stopped") == 1
    # the platforms (per job) and Sora's upstream (its project endpoint) called back
    for kind in ("fal", "sora"):
        assert f"{kind} called back about" in log, kind


def test_emulate_runs_one_provider_and_prints_how_to_point_reelgate_at_it(
    tmp_path: Path, procs: Procs
) -> None:
    port = free_port()
    procs.env = process_env(data_dir=str(tmp_path / "data"))
    procs.start(
        "emulate",
        "wan",
        "--port",
        str(port),
        "--api-key",
        "dash-key",
        "--job-seconds",
        "1",
        name="emulate",
    )
    deadline = time.monotonic() + 60
    while "REELGATE_DASHSCOPE_BASE_URL" not in procs.log("emulate"):
        assert time.monotonic() < deadline, procs.log("emulate")
        time.sleep(0.2)
    assert f"REELGATE_DASHSCOPE_BASE_URL=http://127.0.0.1:{port}/api/v1" in procs.log("emulate")
    base = f"http://127.0.0.1:{port}/api/v1"
    denied = httpx.post(f"{base}/services/aigc/video-generation/video-synthesis", json={})
    assert denied.status_code == 401
    created = httpx.post(
        f"{base}/services/aigc/video-generation/video-synthesis",
        headers={"Authorization": "Bearer dash-key", "X-DashScope-Async": "enable"},
        json={
            "model": "wan2.1-t2v-turbo",
            "input": {"prompt": "a fox"},
            "parameters": {"size": "1280*720", "duration": 5},
        },
    )
    assert created.status_code == 200, created.text
    assert created.json()["output"]["task_status"] == "PENDING"
