"""Acceptance tests drive real ``reelgate`` processes and signal them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REELGATE = [sys.executable, "-m", "reelgate.cli.main"]


class Procs:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [*REELGATE, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def process_env(**settings: str) -> dict[str, str]:
    # nor the metrics directory this test process may have chosen (``reelgate.metrics``)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REELGATE_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update({f"REELGATE_{k.upper()}": v for k, v in settings.items()})
    return env


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(env={}, logs=tmp_path)
    yield p
    p.stop_all()
