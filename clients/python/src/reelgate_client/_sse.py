"""A Server-Sent Events decoder (the WHATWG event-stream format), fed line by line.

It only parses: the sync and async clients feed it the lines of a streamed
httpx response, so one decoder serves both. Comments (keep-alives) are skipped;
``id`` is remembered across events so a reconnect can send ``Last-Event-ID``;
``retry`` sets the reconnect delay the server asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str


class SSEDecoder:
    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line ending); return an event when a blank
        line completes one that carried data."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            event=self._event or "message", data="\n".join(self._data), id=self.last_event_id
        )
        self._event = ""
        self._data = []
        return event
