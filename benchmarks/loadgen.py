"""A lean HTTP/1.1 keep-alive client for generating load, so the load is not the bottleneck.

httpx spends about 2.5 ms of CPU per request here (its connection pool, its request
and response models): at 16 concurrent clients it pegs a core of this 2-core machine,
and the requests then queue in the *client*, which made the submit section's
p95 / p50 a measure of httpx. This client writes a prepared request on one
connection per concurrent client and reads the status line, the headers and a
``Content-Length`` body back (every reelgate JSON answer has one), at a tenth of the
cost. It is for the benchmark only: no TLS, no redirects, no chunked bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Answer", "LeanClient"]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LeanClient:
    """Connections to one ``http://host:port`` with fixed headers (e.g. the API key)."""

    def __init__(self, base_url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"LeanClient speaks plain http://host:port only, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port
        fixed = {"Host": f"{self.host}:{self.port}", "Connection": "keep-alive", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._idle: list[_Connection] = []

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[_Connection]:
        """One keep-alive connection, reused by the next caller when this one is done."""
        conn = self._idle.pop() if self._idle else await self._open()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)

    async def request(self, method: str, path: str, body: Any = None) -> Answer:
        async with self.connection() as conn:
            return await conn.request(method, path, body)

    def prepare(self, method: str, path: str, body: Any = None) -> bytes:
        """The request's bytes, made once and sent as often as wanted."""
        head = f"{method} {path} HTTP/1.1\r\n{self._head}"
        if body is None:
            return f"{head}\r\n".encode()
        data = json.dumps(body, separators=(",", ":")).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        return head.encode() + data

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(self, reader, writer)


class _Connection:
    def __init__(
        self, client: LeanClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._client, self._reader, self._writer = client, reader, writer

    async def request(self, method: str, path: str, body: Any = None) -> Answer:
        return await self.send(self._client.prepare(method, path, body))

    async def send(self, prepared: bytes) -> Answer:
        """Write a prepared request and read its whole answer. A connection the server
        closed while it sat idle (uvicorn's keep-alive timeout is 5 s) is opened again
        and the request sent once more, as HTTP clients do: the server never read it."""
        try:
            self._writer.write(prepared)
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            self.close()
            self._reader, self._writer = await asyncio.open_connection(
                self._client.host, self._client.port
            )
            self._writer.write(prepared)
            head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("LeanClient reads Content-Length bodies only, not chunked")
        if length is None:
            raise RuntimeError(f"an answer without Content-Length: {lines[0]!r}")
        return Answer(status, await self._reader.readexactly(length))

    def close(self) -> None:
        self._writer.close()
