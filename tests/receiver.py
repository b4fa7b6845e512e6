"""A webhook receiver on loopback: records every request (headers, raw body) and
answers as the test scripts it, to drive reelgate's outbound webhooks end to end."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.emulators.base import EmulatorServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> dict[str, Any]:
        """Check the signature with the Standard Webhooks library (raises if it fails)."""
        parsed: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return parsed


Script = Callable[[Request, int], int | tuple[int, dict[str, str]]]
"""(request, how many times this webhook-id was seen before) -> status [, headers]."""


@dataclass
class Receiver:
    script: Script = lambda _request, _seen: 204
    delay_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: EmulatorServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        msg_id = request.headers.get("webhook-id", "")
        with self._lock:
            seen = sum(1 for r in self.received if r.headers.get("webhook-id") == msg_id)
        answer = self.script(request, seen)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        with self._lock:
            self.received.append(
                Received(
                    request.url.path,
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                    status,
                )
            )
        return Response(status_code=status, headers=headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])])

    def events(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def accepted(self, path: str | None = None) -> list[Received]:
        return [r for r in self.events(path) if 200 <= r.answered < 300]


@contextmanager
def running_receiver(receiver: Receiver | None = None) -> Iterator[Receiver]:
    receiver = receiver or Receiver()
    server = EmulatorServer(receiver.app(), name="webhook-receiver")
    receiver.server = server
    server.start()
    try:
        yield receiver
    finally:
        server.stop()


async def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)
