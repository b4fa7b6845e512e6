"""What every emulator shares: configuration, fault keywords, job timing, real MP4s,
and a loopback server for tests.

Faults are chosen per job by keywords in the prompt, ``[fault:NAME]`` (every
emulator) or ``[fault:NAME@kind]`` (only the emulator of that provider kind):

    refuse         the provider's real safety-refusal signal (at create or at the end)
    refuse-image   the same, attributed to the input image where the provider says so
    quota          HTTP 429 with Retry-After at create
    slow-create    the job is created at once, but the create's answer comes only
                   after ``slow_create_seconds`` (a lost answer, for a client with a
                   shorter timeout or a worker killed meanwhile)
    5xx            the first two calls for the job answer 503 (a burst)
    malformed      the first status poll answers a body that is not JSON
    never          the job never finishes
    expire         the result URL works once, then answers 404/403 like an expired link
    slow           the download trickles (small chunks with pauses)
    truncate       the download stops halfway while announcing the full length
    notvideo       the result bytes are not a video

Every emulator checks the API key the way its provider does, so a missing or
wrong key gets the provider's own 401/403 answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.responses import Response

from reelgate.media.render import RenderSpec, render_video

__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "VideoSource",
    "answer_late",
    "faults_in",
    "run_emulator",
    "trickle",
]

log = logging.getLogger("reelgate.emulators")
_RENDER = re.compile(r"\[render:([0-9]+(?:\.[0-9]+)?)\]")
_FAULT = re.compile(r"\[fault:([a-z0-9-]+)(?:@([a-z_]+))?\]")


def faults_in(prompt: str, kind: str | None = None) -> frozenset[str]:
    """The faults a prompt asks of this emulator: ``[fault:NAME]`` for every
    emulator, ``[fault:NAME@kind]`` (e.g. ``[fault:quota@veo]``) for one provider
    only — so a fallback chain can fail at its first model and succeed at the next."""
    return frozenset(name for name, only in _FAULT.findall(prompt) if not only or only == kind)


class Refusal(Exception):
    """A request the real API would refuse, carrying the answer it gives (an emulator
    raises it from deep in its checks and its route returns ``response``)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass
class VideoSource:
    """Real MP4s rendered once per (width, height, seconds) and kept for reuse."""

    cache_dir: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def path_for(self, width: int, height: int, seconds: int, prompt: str = "emulated") -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{width}x{height}-{seconds}s.mp4"
        with self._lock:
            if not path.exists():
                spec = RenderSpec(
                    prompt=prompt[:80],
                    seed=0,
                    duration_seconds=seconds,
                    width=width,
                    height=height,
                    fps=12,
                )
                render_video(spec, path)
        return path

    async def get(self, width: int, height: int, seconds: int, prompt: str = "emulated") -> Path:
        return await asyncio.to_thread(self.path_for, width, height, seconds, prompt)


@dataclass
class EmulatorConfig:
    api_key: str = "emulator-key"
    job_seconds: float = 2.0
    """How long a normal job takes from create to done."""
    video_dir: Path = Path("data/emulator-videos")
    public_url: str = ""
    """This emulator's own base URL (for result links); set by the server once bound."""
    retry_after_seconds: int = 30
    slow_create_seconds: float = 5.0
    """How long the ``slow-create`` fault holds back a create's answer."""
    still_served: frozenset[str] = frozenset()
    """Retired model ids this emulator serves anyway, as for an account the retirement has
    not reached yet (by default a retired id gets the provider's own "gone" answer)."""
    zero_data_retention: bool = False
    """xAI: the team is a Zero Data Retention team (every create must carry
    ``output.upload_url``)."""
    token_seconds: int = 3599
    """Lifetime of the OAuth access tokens a token endpoint issues (Google: 3599)."""

    def seconds_for(self, prompt: str) -> float:
        """How long a job with this prompt renders: ``[render:SECONDS]`` in the prompt
        (benchmarks draw a spread of times this way), else ``job_seconds``."""
        found = _RENDER.search(prompt)
        return float(found.group(1)) if found else self.job_seconds

    def videos(self) -> VideoSource:
        return VideoSource(self.video_dir)


async def answer_late(faults: frozenset[str], config: EmulatorConfig) -> None:
    """The ``slow-create`` fault: the job exists already; its answer waits."""
    if "slow-create" in faults:
        await asyncio.sleep(config.slow_create_seconds)


def elapsed_fraction(created: float, job_seconds: float) -> float:
    return min(1.0, (time.monotonic() - created) / max(job_seconds, 0.001))


async def trickle(data: bytes, faults: frozenset[str]) -> AsyncIterator[bytes]:
    """The body of a result download, with the slow/truncate faults applied."""
    if "truncate" in faults:
        data = data[: len(data) // 2]
    step = 16 * 1024 if "slow" in faults else 256 * 1024
    for i in range(0, len(data), step):
        yield data[i : i + step]
        if "slow" in faults:
            await asyncio.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_THREAD_PREFIX = "emulator-"


class _QuietEmulators(logging.Filter):
    """uvicorn logs through shared loggers, at the level the gateway's own server set:
    keep the emulators' routine lines (started, shutting down, each request) out, so a
    ``serve --emulators`` log says each thing once."""

    def filter(self, record: logging.LogRecord) -> bool:
        thread = record.threadName or ""
        return record.levelno >= logging.WARNING or not thread.startswith(_THREAD_PREFIX)


_quiet = _QuietEmulators()
for _name in ("uvicorn.error", "uvicorn.access"):
    logging.getLogger(_name).addFilter(_quiet)


class EmulatorServer:
    """An ASGI app on a loopback port, served by uvicorn on a background thread."""

    def __init__(self, app: Any, port: int = 0, *, name: str = "app") -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            log_config=None,  # the process's own logging (reelgate.logs) writes its lines
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, daemon=True, name=f"{_THREAD_PREFIX}{name}"
        )

    @property
    def app(self) -> Any:
        """The emulator's ASGI app (tests read what it recorded from its state)."""
        return self._server.config.app

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"emulator did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        log.info("emulator %s stopped", self.name)


@contextmanager
def run_emulator(kind: str, config: EmulatorConfig, port: int = 0) -> Iterator[EmulatorServer]:
    """Start the emulator for ``kind`` on loopback; yields the running server (``.url``)."""
    from reelgate.emulators import emulator_app

    server = EmulatorServer(None, port, name=kind)
    config.public_url = server.url
    server._server.config.app = emulator_app(kind, config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
