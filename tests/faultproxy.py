"""A TCP proxy on loopback that cuts, refuses and freezes: real network faults for tests.

Put it between reelgate and PostgreSQL (or any TCP service) and break the
connection the way networks and databases break:

- ``reset()``: every open connection is closed with a TCP RST (SO_LINGER 0),
  as when the server process dies or a firewall drops state; new
  connections are still accepted.
- ``refuse()``: the listening socket closes, so new connections get
  ECONNREFUSED (the server is down); ``restore()`` listens again on the
  same port.
- ``freeze()``: bytes stop flowing both ways on every connection, open or
  new, with no error at all (a partition, a hung server, a full disk);
  ``restore()`` lets the bytes that waited go through.

The proxy runs its own event loop on a thread, so a test (or a probe
script) can break the database while the code under test is blocked on it.
``python -m tests.faultproxy TARGET_PORT LISTEN_PORT`` runs it standalone
with commands on stdin (reset, refuse, freeze, restore, down).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["FaultProxy"]


class _Pipe:
    def __init__(
        self, proxy: FaultProxy, client: asyncio.StreamWriter, server: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server

    def reset(self) -> None:
        for writer in (self.client, self.server):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = listen_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._pipes: set[_Pipe] = set()
        self.connections = 0
        """How many client connections the proxy has accepted (to prove reconnects)."""

    # -- control (any thread) ---------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._init())
        self._call(self._listen())
        return self

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> int:
        """RST every open connection; returns how many were cut."""
        return self._call(self._reset())

    def refuse(self) -> None:
        """Stop listening: new connections are refused (existing ones are untouched)."""
        self._call(self._unlisten())

    def freeze(self) -> None:
        """Stop moving bytes on every connection, silently."""
        self._call(self._set_flowing(False))

    def down(self) -> None:
        """The server died: open connections reset, new ones refused."""
        self.refuse()
        self.reset()

    def restore(self) -> None:
        """Back to normal: listening, bytes flowing."""
        self._call(self._listen())
        self._call(self._set_flowing(True))

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.restore()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the loop's side --------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _init(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _reset(self) -> int:
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.reset()
        self._pipes.clear()
        return len(pipes)

    async def _close(self) -> None:
        await self._unlisten()
        await self._reset()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pipe = _Pipe(self, writer, up_writer)
        self._pipes.add(pipe)
        try:
            await asyncio.gather(self._copy(reader, up_writer), self._copy(up_reader, writer))
        finally:
            self._pipes.discard(pipe)
            for w in (writer, up_writer):
                w.transport.abort()

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                # a freeze that began while we read holds this chunk back too
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError):
                if writer.can_write_eof():
                    writer.write_eof()


def _main() -> None:  # pragma: no cover - a manual probe tool
    target, listen = int(sys.argv[1]), int(sys.argv[2])
    proxy = FaultProxy("127.0.0.1", target, listen_port=listen).start()
    print(f"proxy 127.0.0.1:{proxy.port} -> 127.0.0.1:{target}; commands: {_COMMANDS}")
    for line in sys.stdin:
        command = line.strip()
        if command in _COMMANDS:
            getattr(proxy, command)()
            print(f"{command}: done", flush=True)


_COMMANDS = ("reset", "refuse", "freeze", "restore", "down")

if __name__ == "__main__":
    _main()
