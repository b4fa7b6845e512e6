"""The OpenAPI document is the contract: schemathesis drives every operation (admin
included) against a real ``reelgate api`` and finds no 5xx and no answer the document
does not describe (status, headers, content type, body schema).

A bounded run here (`make test`); `make fuzz` runs the same checks with many more
examples and the stateful phase. Checks and their exceptions: schemathesis.toml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import Procs, process_env
from tests.acceptance.test_processes import _wait_healthy
from tests.conftest import free_port

pytestmark = pytest.mark.slow

KEY = "rg_contract_key_abcdefghijklmnopqrstuvwxyz0123456"
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _schemathesis() -> list[str]:
    return [str(Path(sys.executable).with_name("schemathesis"))]


def _config_with_real_ids(base: str, tmp_path: Path) -> Path:
    """schemathesis.toml plus real ids (half the time) for the path parameters, so the
    operations on a job, an account and a key answer for real objects, not only 404."""
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    video = http.post(
        "/v1/videos",
        json={
            "model": "local",
            "prompt": "a contract",
            "duration_seconds": 1,
            "resolution": "360p",
        },
    ).json()["id"]
    account = http.post("/v1/admin/accounts", json={"name": "contract", "credits": "5"}).json()
    key = http.post(f"/v1/admin/accounts/{account['id']}/keys", json={}).json()["id"]
    shot = {"model": "local", "prompt": "a contract shot", "duration_seconds": 1}
    storyboard = http.post("/v1/storyboards", json={"shots": [shot, shot]}).json()["id"]
    ids = {
        "video_id": video,
        "job_id": video,
        "account_id": account["id"],
        "key_id": key,
        "storyboard_id": storyboard,
        "model_id": "local",
    }
    lines = [CONFIG.read_text(), ""]
    for name, value in ids.items():
        lines += [f"[dictionaries.{name}]", f'values = ["{value}"]', ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in ids]
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def test_every_operation_keeps_the_openapi_contract(tmp_path: Path, procs: Procs) -> None:
    examples = os.environ.get("REELGATE_TEST_FUZZ_EXAMPLES", "25")
    phases = os.environ.get("REELGATE_TEST_FUZZ_PHASES", "examples,coverage,fuzzing")
    budget = os.environ.get("REELGATE_TEST_FUZZ_SECONDS")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.env = process_env(
        data_dir=str(tmp_path / "data"),
        dev_api_key=KEY,
        rate_limit="",  # 429s are documented, but would starve the run of real answers
        max_jobs_in_flight="1000000",
        max_seconds_in_flight="100000000",
        dev_credits="100000000",
    )
    subprocess.run(  # the API alone: submitted jobs stay queued, nothing renders
        [sys.executable, "-m", "reelgate.cli.main", "db", "upgrade"],
        env=procs.env,
        check=True,
        capture_output=True,
    )
    procs.start("api", "--port", str(port), name="api")
    _wait_healthy(base, procs, "api")
    config = _config_with_real_ids(base, tmp_path)
    started = time.monotonic()
    run = subprocess.run(
        [
            *_schemathesis(),
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {KEY}",
            "--max-examples",
            examples,
            "--phases",
            phases,
            # one worker: hypothesis's source cache is not thread-safe (a Runtime Error
            # "AST constructor recursion depth mismatch" with two)
            "--workers",
            "1",
            "--seed",
            "20261201",
            *(["--max-time", budget] if budget else []),
        ],
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    took = time.monotonic() - started
    summary = run.stdout[-6000:]
    print(f"\nschemathesis: {took:.0f}s\n{summary}")
    assert run.returncode == 0, f"{summary}\n{run.stderr[-2000:]}\n{procs.log('api')[-3000:]}"
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
