"""The commands as an operator runs them: `reelgate serve`, and `reelgate api` beside
two `reelgate worker` processes on PostgreSQL, driven over real HTTP."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from reelgate.media.probe import probe_video
from tests.acceptance.conftest import Procs, process_env
from tests.conftest import free_port

pytestmark = pytest.mark.slow
KEY = "rg_acceptance_key_abcdefghijklmnopqrstuvwxyz"


def _wait_healthy(base: str, procs: Procs, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{name} never became healthy:\n{procs.log(name)}")


def _wait_ready(base: str, timeout: float = 30) -> dict[str, object]:
    """``/readyz`` once every check passes (serve's worker must first reach the database)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{base}/readyz", timeout=5)
        if answer.status_code == 200 or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            body: dict[str, object] = answer.json()
            return body
        time.sleep(0.2)


def _generate(
    base: str, tmp_path: Path, body: dict[str, object]
) -> tuple[dict[str, object], list[int]]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        resp = http.post("/v1/videos", json=body)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        progress: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = http.get(f"/v1/videos/{job_id}").json()
            progress.append(job["progress"])
            if job["status"] in ("completed", "failed", "canceled"):
                break
            time.sleep(0.2)
        assert job["status"] == "completed", job
        video = http.get(job["result"]["url"])
        assert video.status_code == 200
        path = tmp_path / f"{job_id}.mp4"
        path.write_bytes(video.content)
        job["_path"] = str(path)
        return job, progress


def test_serve_renders_a_4s_16_9_video_then_stops_cleanly_on_sigterm(
    tmp_path: Path, procs: Procs
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.env = process_env(data_dir=str(tmp_path / "data"), dev_api_key=KEY)
    server = procs.start("serve", "--port", str(port), name="serve")
    _wait_healthy(base, procs, "serve")
    assert KEY in procs.log("serve")  # the banner shows the key and a curl to try
    ready = _wait_ready(base)
    assert set(ready["checks"]) == {"database", "migrations", "storage", "worker"}

    job, progress = _generate(
        base,
        tmp_path,
        {
            "model": "local",
            "prompt": "a red fox running through snow",
            "duration_seconds": 4,
            "aspect_ratio": "16:9",
        },
    )
    assert progress == sorted(progress) and progress[-1] == 100
    assert len(set(progress)) >= 3, f"progress should rise in steps: {progress}"
    info = probe_video(Path(str(job["_path"])))
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert abs(info.duration_seconds - 4.0) <= 0.1
    assert (info.width, info.height) == (1280, 720)

    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    assert "released" in procs.log("serve")


def test_api_with_two_workers_on_postgres(tmp_path: Path, procs: Procs, pg_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.env = process_env(
        data_dir=str(tmp_path / "data"), dev_api_key=KEY, database_url=pg_url, public_url=base
    )
    procs.start("api", "--port", str(port), name="api")
    procs.start("worker", name="w0")
    procs.start("worker", name="w1")
    _wait_healthy(base, procs, "api")
    assert set(_wait_ready(base)["checks"]) == {"database", "migrations", "storage"}
    jobs = [
        _generate(
            base,
            tmp_path,
            {"model": "local", "prompt": f"clip {i}", "duration_seconds": 1, "resolution": "360p"},
        )[0]
        for i in range(3)
    ]
    for job in jobs:
        assert probe_video(Path(str(job["_path"]))).duration_seconds == pytest.approx(1.0, abs=0.1)
    logs = procs.log("w0") + procs.log("w1")
    assert "started" in logs
