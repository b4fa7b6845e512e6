"""The JavaScript client (``clients/js``) against a real gateway, through Node's test runner.

Starts ``reelgate serve`` (API + worker) and, beside it, ``reelgate api`` alone
(no worker, so its jobs stay queued: cancel-while-queued and wait timeouts are
certain), then runs ``node --test`` on ``clients/js/test/`` with REELGATE_URL,
REELGATE_API_KEY and REELGATE_NO_WORKER_URL set. Node is found on PATH, or at
REELGATE_TEST_NODE. Without Node (or with one older than 18.15) the test skips
on a laptop and fails under CI=true: CI must never skip it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from reelgate.config import Settings
from reelgate.store import migrate
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
JS_CLIENT = ROOT / "clients" / "js"
REELGATE = [sys.executable, "-m", "reelgate.cli.main"]
KEY = "rg_js_client_key_abcdefghijklmnopqrstuvwxyz"
MIN_NODE = (18, 15)  # fetch, node:test and --test-reporter


@pytest.fixture
def node() -> str:
    path = shutil.which(os.environ.get("REELGATE_TEST_NODE") or "node")
    problem = None
    if path is None:
        problem = "node is not on PATH (nor at REELGATE_TEST_NODE)"
    else:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        match = re.match(r"v(\d+)\.(\d+)", out.stdout.strip())
        if match is None or (int(match[1]), int(match[2])) < MIN_NODE:
            found = out.stdout.strip() or "an unknown version"
            problem = f"{path} is {found}; the JS client needs Node {'.'.join(map(str, MIN_NODE))}+"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {problem}: the JS client tests must run")
        pytest.skip(problem)
    assert path is not None
    return path


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(settings)
    return env


@dataclass
class Gateways:
    url: str
    no_worker_url: str
    logs: list[Path]

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in self.logs)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never became healthy:\n{log.read_text()}")


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, data_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"
        env = _env(REELGATE_DATA_DIR=str(data_dir), REELGATE_DEV_API_KEY=KEY)
        with log.open("wb") as out:
            proc = subprocess.Popen([*REELGATE, *args], env=env, stdout=out, stderr=out)
        procs.append(proc)
        return proc, log

    serve_port, api_port = free_port(), free_port()
    try:
        serve, serve_log = start("serve", tmp_path / "serve", "serve", "--port", str(serve_port))
        # `reelgate api` does not migrate by itself (serve does): upgrade its database
        # here, as `reelgate db upgrade` would, while serve boots.
        api_data = tmp_path / "api"
        migrate.upgrade(Settings(data_dir=api_data).resolved_database_url())
        api, api_log = start("api", api_data, "api", "--port", str(api_port))
        gw = Gateways(
            url=f"http://127.0.0.1:{serve_port}",
            no_worker_url=f"http://127.0.0.1:{api_port}",
            logs=[serve_log, api_log],
        )
        _wait_healthy(gw.url, serve, serve_log)
        _wait_healthy(gw.no_worker_url, api, api_log)
        yield gw
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_js_client_passes_its_node_tests_against_a_running_gateway(
    node: str, gateways: Gateways
) -> None:
    files = sorted(p.relative_to(JS_CLIENT).as_posix() for p in JS_CLIENT.glob("test/*.test.mjs"))
    assert files, f"no tests in {JS_CLIENT / 'test'}"
    env = _env(
        REELGATE_URL=gateways.url,
        REELGATE_API_KEY=KEY,
        REELGATE_NO_WORKER_URL=gateways.no_worker_url,
    )
    run = subprocess.run(
        # Node 18/20 take directories, 22+ globs: name the files, valid for both.
        [node, "--test", "--test-reporter=tap", *files],
        cwd=JS_CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = f"{run.stdout}\n{run.stderr}\n{gateways.log_text()}"
    assert run.returncode == 0, report
    counts = {k: int(v) for k, v in re.findall(r"^# (\w+) (\d+)$", run.stdout, re.MULTILINE)}
    assert counts.get("pass", 0) > 0, report
    # A skip here would be a live test (or the whole live suite) that silently did not run.
    for outcome in ("fail", "cancelled", "skipped"):
        assert counts.get(outcome) == 0, f"{outcome}: {counts}\n{report}"
    assert "# SKIP" not in run.stdout, report
    # The live tests that must have run (and passed) against the gateway, by name.
    for name in (
        r"generate\(\) reports rising progress",
        r"models\(\) follows cursors: source=builtin, limit=3",
        r"models\(\) with search and capability filters",
        r"model\(id\) gets one model",
        r"submit\(\) with audio or providerParams to a builtin model",
    ):
        assert re.search(rf"^\s*ok \d+ - {name}", run.stdout, re.M), f"{name}\n{report}"
