"""The client commands as a person runs them: the real ``reelgate`` CLI in a
subprocess against a real ``reelgate serve``, and Ctrl-C at a real terminal (a pty)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from reelgate.media.probe import probe_video
from reelgate_client import Client, JobCanceledError
from tests.acceptance.conftest import REELGATE, Procs, process_env
from tests.acceptance.test_processes import _wait_healthy
from tests.conftest import free_port

KEY = "rg_cli_client_key_abcdefghijklmnopqrstuvwxyz"
JOB_ID = re.compile(r"video_[0-9a-f]{32}")


@dataclass(frozen=True)
class Served:
    url: str
    env: dict[str, str]
    """For CLI processes: REELGATE_URL and REELGATE_API_KEY point at the server."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("cli-serve")
    procs = Procs(env=process_env(data_dir=str(tmp / "data"), dev_api_key=KEY), logs=tmp)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs.start("serve", "--port", str(port), "--log-level", "warning", name="serve")
    try:
        _wait_healthy(url, procs, "serve")
        env = process_env(url=url, api_key=KEY)
        env["COLUMNS"] = "200"  # wide tables: ids are never cut
        yield Served(url=url, env=env)
    finally:
        procs.stop_all()


def _run(served: Served, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*REELGATE, *args], env=served.env, capture_output=True, text=True, timeout=120
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_generate_saves_a_playable_video_and_prints_seconds_and_cost(
    served: Served, tmp_path: Path
) -> None:
    still = tmp_path / "still.png"
    Image.new("RGB", (320, 180), (200, 40, 40)).save(still)
    out = tmp_path / "fox.mp4"
    done = _run(
        served,
        "generate",
        "a red fox running through snow",
        "--model",
        "local",
        "--duration",
        "1",
        "--aspect",
        "16:9",
        "--resolution",
        "360p",
        "--image",
        str(still),
        "--out",
        str(out),
    )
    assert f"saved {out}" in done.stdout
    assert "1 s, 640x360, 1.000 credits ($0.01), by local" in done.stdout
    job_id = JOB_ID.search(done.stdout)
    assert job_id is not None and "100%" in done.stderr  # the progress bar's last state
    info = probe_video(out)
    assert info.video_codec == "h264" and abs(info.duration_seconds - 1.0) <= 0.1
    with Client(served.url, KEY) as client:
        assert client.get(job_id.group()).params.image is True


def test_reading_commands_show_tables_and_json(served: Served) -> None:
    with Client(served.url, KEY) as client:
        video = client.generate("local", "listed by the cli", duration_seconds=1, resolution="360p")

    models = json.loads(_run(served, "models", "--json").stdout)
    local = next(m for m in models if m["id"] == "local")
    assert local["usable"] is True and "360p" in local["allowedParams"]["resolution"]

    assert video.id in _run(served, "jobs", "--limit", "5").stdout
    assert json.loads(_run(served, "jobs", "--status", "failed", "--json").stdout) == []

    shown = _run(served, "job", video.id).stdout
    assert "completed (100%)" in shown and "1.000 credits ($0.01) for 1 s" in shown

    usage = _run(served, "usage").stdout
    assert video.id in usage and "balance" in usage
    assert "credits = $" in usage and "($0.01)" in usage  # credits and the money beside
    balance = json.loads(_run(served, "balance", "--json").stdout)
    assert balance["available"] == balance["balance"]  # nothing in flight
    assert balance["money"]["currency"] == "USD"
    assert "$" in _run(served, "balance").stdout
    exported = _run(served, "usage-export").stdout
    assert exported.startswith("job_id,created_at,") and video.id in exported


def test_models_search_and_one_model_by_id(served: Served) -> None:
    found = json.loads(_run(served, "models", "--search", "KLING", "--json").stdout)
    ids = [m["id"] for m in found]
    assert "kling-2-5-turbo" in ids
    assert "local" not in ids
    assert all(m["source"] in ("builtin", "synced") for m in found)
    assert "kling-2-5-turbo" in _run(served, "models", "--search", "kling").stdout
    none = _run(served, "models", "--search", "kling", "--max-duration-lte", "1")
    assert "no models match" in none.stderr

    local = json.loads(_run(served, "model", "local", "--json").stdout)
    assert local["id"] == "local"
    assert local["source"] == "builtin"
    assert local["synced"] is None
    assert "local" in _run(served, "model", "local").stdout
    missing = _run(served, "model", "no-such-model", ok=False)
    assert missing.returncode == 1
    assert "HTTP 404" in missing.stderr


def test_download_saves_the_video_its_poster_and_its_sprite_sheet(
    served: Served, tmp_path: Path
) -> None:
    with Client(served.url, KEY) as client:
        video = client.generate("local", "saved by the cli", duration_seconds=2, resolution="360p")
    names = []
    for variant in ("video", "thumbnail", "spritesheet"):
        done = _run(served, "download", video.id, "--variant", variant, "--out", str(tmp_path))
        names.append(done.stdout.split("saved ", 1)[1].strip().rsplit("/", 1)[1])
    assert names == [f"{video.id}.mp4", f"{video.id}.thumbnail.webp", f"{video.id}.spritesheet.jpg"]
    assert probe_video(tmp_path / names[0]).width == 640
    with Image.open(tmp_path / names[1]) as poster, Image.open(tmp_path / names[2]) as sheet:
        assert (poster.format, sheet.format, sheet.size) == ("WEBP", "JPEG", (320, 90))
    wrong = _run(served, "download", video.id, "--variant", "gif", ok=False)
    assert wrong.returncode == 2 and "thumbnail" in wrong.stderr


def test_extend_saves_the_longer_video_and_remix_explains_a_refusal(
    served: Served, tmp_path: Path
) -> None:
    with Client(served.url, KEY) as client:
        video = client.generate("local", "a kite on the cli", duration_seconds=1, resolution="360p")
    out = tmp_path / "longer.mp4"
    done = _run(served, "extend", video.id, "the kite climbs", "--duration", "2", "--out", str(out))
    assert f"saved {out}" in done.stdout
    assert "2 s, 640x360, 2.000 credits ($0.02), by local" in done.stdout  # the seconds added
    assert "100%" in done.stderr and abs(probe_video(out).duration_seconds - 3.0) < 0.1
    refused = _run(served, "remix", video.id, "a balloon", ok=False)
    assert refused.returncode == 1 and "remix_not_supported" in refused.stdout + refused.stderr


def test_storyboard_joins_the_shots_and_saves_one_video(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "board.mp4"
    done = _run(
        served,
        "storyboard",
        "a boat leaves",
        "the boat sails",
        "the boat arrives",
        "--model",
        "local",
        "--duration",
        "1",
        "--resolution",
        "360p",
        "--continue",
        "--out",
        str(out),
    )
    assert f"saved {out}" in done.stdout
    assert "3 shots, 3.0 s, 3.000 credits for 3 s" in done.stdout
    assert "100%" in done.stderr and "storyboard_" in done.stdout
    assert abs(probe_video(out).duration_seconds - 3.0) < 0.1
    board = tmp_path / "board.json"
    board.write_text(
        json.dumps({"shots": [{"model": "local", "prompt": "x", "duration_seconds": 99}]})
    )
    refused = _run(served, "storyboard", "--file", str(board), ok=False)
    assert (
        refused.returncode == 1 and "shots[0].duration_seconds" in refused.stdout + refused.stderr
    )
    assert _run(served, "storyboard", ok=False).returncode == 2


def test_cancel_stops_a_running_job(served: Served) -> None:
    with Client(served.url, KEY) as client:
        # long enough that it is still rendering when the command runs, even on a busy machine
        video = client.submit("local", "cancel me", duration_seconds=20, resolution="480p")
        done = _run(served, "cancel", video.id)
        assert re.search(rf"(canceled|cancel requested for) {video.id}", done.stdout), done.stdout
        with pytest.raises(JobCanceledError):
            client.wait(video.id, timeout=60)


def test_errors_print_the_gateway_code_and_message_and_exit_1(served: Served) -> None:
    bad = _run(served, "generate", "a fox", "--model", "local", "--resolution", "4k", ok=False)
    assert bad.returncode == 1
    assert "invalid_parameter" in bad.stderr and "allowed: 360p, 480p, 720p, 1080p" in bad.stderr

    denied = _run(
        served, "balance", "--url", served.url, "--api-key", "rg_wrong", "--json", ok=False
    )
    assert denied.returncode == 1 and "invalid_api_key" in denied.stderr
    assert denied.stdout == ""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """A CLI process on a pseudo-terminal: what a person at a shell would see."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            # A shell's background job (nohup … &) starts with SIGINT ignored, and a
            # child inherits that: Python then installs no KeyboardInterrupt handler.
            # A person's terminal has it on; so does this one.
            preexec_fn=_default_sigint,
        )
        os.close(slave)
        self.raw = ""

    @property
    def screen(self) -> str:
        """What was shown, without colours and cursor moves."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.raw)

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.screen)) is None:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {pattern!r}; screen:\n{self.screen}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.raw += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the process closed the terminal
                    pytest.fail(f"exited before {pattern!r}; screen:\n{self.screen}")
        return found

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return code


def test_ctrl_c_asks_whether_to_cancel_and_leave_keeps_the_job_running(
    served: Served, tmp_path: Path
) -> None:
    out = tmp_path / "interrupted.mp4"
    args = [*REELGATE, "generate", "interrupted, then left running", "--model", "local"]
    args += ["--duration", "12", "--resolution", "720p", "--out", str(out)]
    term = Terminal(args, served.env)
    try:
        job_id = term.expect(r"video job (video_[0-9a-f]{32}) queued").group(1)
        term.expect(r"\d+%")  # the live progress bar is up: wait() is under way
        term.proc.send_signal(signal.SIGINT)
        term.expect(r"Cancel the job, or leave it running\? \[cancel/leave\] \(leave\)")
        term.type("leave\n")
        term.expect(rf"left {job_id} running")
    finally:
        code = term.close()
    assert code == 130
    assert not out.exists()
    with Client(served.url, KEY) as client:
        assert client.wait(job_id, timeout=60).status == "completed"
