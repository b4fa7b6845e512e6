"""A full run of ``reelgate serve --emulators`` with ``REELGATE_LOG_FORMAT=json``: every
line it writes is one JSON object, every line about a job says which job, account,
model and attempt, and no key it used appears anywhere in its output."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Procs, process_env
from tests.acceptance.test_emulators import JOBS
from tests.acceptance.test_processes import _wait_healthy
from tests.conftest import free_port

pytestmark = pytest.mark.slow
KEY = "rg_jsonlog_key_abcdefghijklmnopqrstuvwxyz01234"
EMULATED = ("veo", "sora", "wan", "grok", "video_gateway", "fal", "replicate")


def test_a_json_logged_run_names_each_job_and_never_a_secret(tmp_path: Path, procs: Procs) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    procs.env = process_env(data_dir=str(data), dev_api_key=KEY, log_format="json")
    serve = procs.start(
        "serve", "--port", str(port), "--emulators", "--emulator-job-seconds", "1", name="serve"
    )
    _wait_healthy(base, procs, "serve", timeout=120)
    ids: dict[str, str] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}) as http:
        for name in ("sora", "kling-2-5-turbo", "wan"):
            body = {**JOBS[name], "prompt": f"{name}: a heron over a lake"}
            made = http.post("/v1/videos", json=body, headers={"X-Request-Id": f"req-{name}"})
            assert made.status_code == 202, made.text
            assert made.headers["x-request-id"] == f"req-{name}"
            ids[name] = made.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {n: http.get(f"/v1/videos/{i}").json()["status"] for n, i in ids.items()}
            if all(s in ("completed", "failed") for s in states.values()):
                break
            time.sleep(0.5)
        assert set(states.values()) == {"completed"}, states
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=60) == 0

    text = procs.log("serve")
    lines: list[dict[str, Any]] = []
    for raw in text.splitlines():
        if raw.strip():
            lines.append(json.loads(raw))  # every line is one JSON object
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    for name, job_id in ids.items():
        about = [line for line in lines if line.get("job_id") == job_id]
        assert about, f"no line about {name}'s job {job_id}"
        for line in about:
            assert line["account_id"] and line["model"] and line["attempt"] >= 1, line
    assert any("running at" in line["message"] for line in lines)

    secrets = [KEY, (data / "signing.key").read_text().strip()]
    secrets += [f"emulator-{kind}" for kind in EMULATED]
    for secret in secrets:
        assert secret not in text, f"{secret[:12]}… is in the log"
    assert "whsec_" not in text  # no webhook secret either
