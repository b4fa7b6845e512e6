"""The light client as a user installs it: ``reelgate-client[cli]`` alone in a fresh venv
(none of the server's heavy dependencies come with it), and its ``reelgate-client
generate`` against a real ``reelgate serve``.

pip fetches httpx, typer and rich from the package index, so this takes a while. It
skips only when no venv can be made here; under CI=true it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelgate.media.probe import probe_video
from tests.acceptance.conftest import Procs, process_env
from tests.acceptance.test_processes import _wait_healthy
from tests.conftest import free_port

pytestmark = pytest.mark.slow

CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "python"
KEY = "rg_client_package_key_abcdefghijklmnopqrstuvw"
SERVER_ONLY = ("av", "sqlalchemy", "asyncpg", "fastapi", "uvicorn", "alembic", "reelgate")


def _outside_env() -> dict[str, str]:
    """This process's environment without anything that would let the venv see our
    packages (or point it at a gateway)."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("REELGATE_")}


@dataclass(frozen=True)
class ClientVenv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.root / "bin" / "reelgate-client"


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> ClientVenv:
    tmp = tmp_path_factory.mktemp("client-venv")
    venv = ClientVenv(tmp / "venv")
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv.root)],
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if made.returncode != 0 or not venv.python.exists():
        reason = f"cannot create a venv here: {made.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    # pip builds a local project in place (build/, *.egg-info): build a copy instead,
    # which is also what a user's checkout looks like (no editable leftovers).
    source = tmp / "reelgate-client"
    shutil.copytree(
        CLIENT_SOURCE,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    installed = subprocess.run(
        [
            str(venv.python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{source}[cli]",
        ],
        env=_outside_env(),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real ``reelgate serve``; yields the environment a client process runs with."""
    tmp = tmp_path_factory.mktemp("client-package-serve")
    procs = Procs(env=process_env(data_dir=str(tmp / "data"), dev_api_key=KEY), logs=tmp)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs.start("serve", "--port", str(port), "--log-level", "warning", name="serve")
    try:
        _wait_healthy(url, procs, "serve")
        env = _outside_env()
        env.update(REELGATE_URL=url, REELGATE_API_KEY=KEY, COLUMNS="200")
        yield env
    finally:
        procs.stop_all()


_IMPORTS = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        found[name] = True
    except ImportError:
        found[name] = False
print(json.dumps(found))
"""


def _importable(venv: ClientVenv, cwd: Path, *names: str) -> dict[str, bool]:
    done = subprocess.run(
        [str(venv.python), "-c", _IMPORTS, *names],
        env=_outside_env(),
        cwd=cwd,  # not the repository: its folders must not be importable
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found: dict[str, bool] = json.loads(done.stdout)
    return found


def test_the_client_alone_brings_none_of_the_server(
    client_venv: ClientVenv, tmp_path: Path
) -> None:
    found = _importable(client_venv, tmp_path, *SERVER_ONLY, "reelgate_client", "typer", "rich")
    assert found == {
        **dict.fromkeys(SERVER_ONLY, False),
        "reelgate_client": True,
        "typer": True,  # the cli extra
        "rich": True,
    }
    assert not (client_venv.root / "bin" / "reelgate").exists()

    # The SDK itself loads neither typer nor rich (so it works without the extra).
    sdk = subprocess.run(
        [
            str(client_venv.python),
            "-c",
            "import sys, reelgate_client; "
            "print(reelgate_client.__version__, "
            "sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'rich', 'click'}))",
        ],
        env=_outside_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sdk.returncode == 0, sdk.stderr
    assert sdk.stdout.split() == ["0.1.0", "[]"]


def test_its_generate_saves_a_video_from_a_real_server(
    client_venv: ClientVenv, served: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "x.mp4"
    done = subprocess.run(
        [
            str(client_venv.cli),
            "generate",
            "a red fox running through snow",
            "--model",
            "local",
            "--duration",
            "1",
            "--resolution",
            "360p",
            "--out",
            str(out),
        ],
        env=served,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"saved {out}" in done.stdout
    assert "1 s, 640x360, 1.000 credits ($0.01), by local" in done.stdout
    info = probe_video(out)
    assert info.container == "mp4" and info.video_codec == "h264"
    assert abs(info.duration_seconds - 1.0) <= 0.1
