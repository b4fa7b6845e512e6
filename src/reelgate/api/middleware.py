"""Two ASGI middlewares that stand between the network and every route.

``ErrorBoundary`` (outermost) gives the request its id (the client's ``X-Request-Id``
when usable, else a new one; ``reelgate.logs``), echoed as ``X-Request-Id`` on the
answer and carried by every log line about it. Whatever a route raises becomes one complete
JSON answer: 503 ``database_unavailable`` with ``Retry-After`` when the
database is out of reach, else 500 with a reference for the log. It never
re-raises, so the server keeps the client's keep-alive connection usable
(Starlette's own catch-all answers and then re-raises, and uvicorn then
drops the connection).

``RequestGuard``: bounded, clean input before any route sees it.
- A body larger than its cap is refused with 413 (from Content-Length when
  sent, else while it streams). JSON bodies are capped at
  ``max_body_bytes``; ``POST /v1/videos`` may add an inline image on top;
  multipart uploads are capped by their part limits plus ``max_body_bytes``.
- A JSON body must parse, nest at most ``MAX_JSON_DEPTH`` deep, carry no
  NaN/Infinity, and hold no control characters or lone surrogates in any
  string (what PostgreSQL cannot store and no prompt needs). The body is
  checked once here and passed on untouched.
- A body sent without a JSON content type (curl's ``-d`` sends a form type)
  that is a JSON object is read as JSON; any other unsupported type is a 415
  that says what to send.
- Control characters in the path or the query string are a 400.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelgate.errors import (
    PayloadTooLarge,
    ReelgateError,
    UnsupportedMediaType,
    ValidationFailed,
)
from reelgate.logs import new_request_id, request_id, usable_request_id
from reelgate.store.db import database_unavailable, is_unavailable
from reelgate.storyboards.model import MAX_SHOTS

__all__ = [
    "MAX_JSON_DEPTH",
    "ErrorBoundary",
    "RequestGuard",
    "bad_text",
    "check_json",
    "text_error",
]

log = logging.getLogger("reelgate.api")

MAX_JSON_DEPTH = 32

# C0 controls but tab, newline and carriage return; DEL; C1 controls; lone surrogates
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_JSON_TYPES = ("application/json",)
_LENIENT_TYPES = ("", "text/plain", "application/x-www-form-urlencoded")


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, exc: ReelgateError) -> None:
    headers: list[tuple[bytes, bytes]] = []
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    await _send_json(send, exc.http_status, json.dumps({"error": exc.to_dict()}).encode(), headers)


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        # the request's id: every log line about it carries it, and so does the answer
        rid = usable_request_id(_header(scope, b"x-request-id") or None)
        token = request_id.set(rid)
        echoed = (b"x-request-id", rid.encode())

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), echoed]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # a stream broke midway: nothing sensible can follow
            await send_error(tracking_send, self._translate(exc))
        finally:
            request_id.reset(token)

    @staticmethod
    def _translate(exc: Exception) -> ReelgateError:
        if isinstance(exc, ReelgateError) and exc.http_status < 500:
            return exc
        if is_unavailable(exc):
            log.warning("database unavailable: %s: %s", type(exc).__name__, str(exc)[:200])
            return database_unavailable()
        if isinstance(exc, ReelgateError):
            return exc
        reference = request_id.get() or new_request_id()
        log.error("unhandled error (request %s)", reference, exc_info=exc)
        return ReelgateError(
            f"reelgate hit an unexpected error. Reference: {reference}. If you sent an "
            "Idempotency-Key, retrying with it is safe.",
            request_id=reference,
        )


def bad_text(value: Any, path: str = "body", depth: int = 0) -> tuple[str, str] | None:
    """Where ``value`` breaks the rules, and how: ``(path, "characters")`` for the first
    string (key or value) holding a forbidden character, ``(path, "depth")`` for a
    value nested deeper than ``MAX_JSON_DEPTH``; None when it is clean."""
    if depth > MAX_JSON_DEPTH:
        return path, "depth"
    if isinstance(value, str):
        return (path, "characters") if _BAD_CHARS.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = key if path == "body" else f"{path}.{key}"
            if _BAD_CHARS.search(key):
                return child, "characters"
            found = bad_text(item, child, depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = bad_text(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
    return None


def text_error(path: str, problem: str) -> ValidationFailed:
    if problem == "depth":
        return ValidationFailed(
            f"The request body nests deeper than {MAX_JSON_DEPTH} levels (at {path}).",
            code="invalid_json",
            param="body",
        )
    return ValidationFailed(
        f"{path}: text may not contain control characters (such as NUL; tab and newline "
        "are fine) or unpaired surrogates.",
        code="invalid_characters",
        param=path,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_json(body: bytes) -> None:
    """Raise a 400 unless ``body`` is JSON that reelgate can store as it is."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise text_error("body", "depth") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, a 5,000-digit number
        raise ValidationFailed(
            f"The request body is not valid JSON ({str(exc)[:120]}).",
            code="invalid_json",
            param="body",
        ) from None
    found = bad_text(value)
    if found is not None:
        raise text_error(*found)


class _TooLarge(Exception):
    pass


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        inline_image_bytes: int,
        upload_bytes: int,
        object_bytes: int = 0,
    ) -> None:
        self.app = app
        self.object_bytes = object_bytes
        """A provider's PUT of a finished video (``api.uploads``): streamed, never read here."""
        self.max_body = max_body_bytes
        # base64 grows an inline image by 4/3
        self.video_body = max_body_bytes + (inline_image_bytes * 4) // 3 + 8
        # a storyboard's shots may each carry an inline start image
        self.storyboard_body = max_body_bytes + MAX_SHOTS * ((inline_image_bytes * 4) // 3 + 8)
        self.upload_body = max_body_bytes + upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_target(scope)
        except ReelgateError as exc:
            await send_error(send, exc)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "PUT" and scope["path"].startswith("/v1/uploads/"):
            declared = _header(scope, b"content-length")
            if declared.isdigit() and int(declared) > self.object_bytes:
                await send_error(send, _too_large(self.object_bytes))
                return
            await self.app(scope, _counting(receive, self.object_bytes), send)
            return
        ctype = _header(scope, b"content-type").split(";")[0].strip().lower()
        multipart = ctype == "multipart/form-data"
        cap = self._cap(scope, multipart)
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > cap:
            await send_error(send, _too_large(cap))
            return
        if multipart:
            if not _is_video_create(scope):
                await send_error(send, _unsupported(ctype))
                return
            await self.app(scope, _counting(receive, cap), send)
            return
        try:
            body = await _read_body(receive, cap)
        except _TooLarge:
            await send_error(send, _too_large(cap))
            return
        try:
            scope = self._check_body(scope, ctype, body)
        except ReelgateError as exc:
            await send_error(send, exc)
            return
        await self.app(scope, _replay(body, receive), send)

    def _cap(self, scope: Scope, multipart: bool) -> int:
        if multipart:
            return self.upload_body
        path = scope["path"].rstrip("/")
        if path == "/v1/videos":
            return self.video_body
        if path == "/v1/storyboards":
            return self.storyboard_body
        return self.max_body

    @staticmethod
    def _check_target(scope: Scope) -> None:
        if _BAD_CHARS.search(scope["path"]):
            raise ValidationFailed(
                "The URL path contains a control character; ids never do.", param="path"
            )
        raw = scope.get("query_string", b"")
        if not raw:
            return
        try:
            pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise ValidationFailed(
                "The query string is not valid UTF-8 after percent-decoding.", param="query"
            ) from None
        for name, value in pairs:
            if _BAD_CHARS.search(name) or _BAD_CHARS.search(value):
                raise ValidationFailed(
                    f"Query parameter {name[:40]!r} contains a control character.",
                    param=name[:40],
                )

    @staticmethod
    def _check_body(scope: Scope, ctype: str, body: bytes) -> Scope:
        if not body.strip():
            return scope
        json_type = ctype in _JSON_TYPES or ctype.endswith("+json")
        if not json_type:
            looks_json = body.lstrip().startswith(b"{")
            if ctype == "application/x-www-form-urlencoded" and not looks_json:
                if _is_video_create(scope):
                    return scope  # a real form post, OpenAI style; its fields are checked there
                raise _unsupported(ctype)
            if ctype not in _LENIENT_TYPES:
                raise _unsupported(ctype)
            # No type, text/plain, or curl's -d default around a JSON object: read it as JSON.
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        check_json(body)
        return scope


def _is_video_create(scope: Scope) -> bool:
    return bool(scope["method"] == "POST" and scope["path"].rstrip("/") == "/v1/videos")


def _unsupported(ctype: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"Content-Type {ctype!r} is not accepted here: send JSON with "
        "'Content-Type: application/json' (POST /v1/videos also takes multipart/form-data).",
        allowed=["application/json", "multipart/form-data"],
    )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _too_large(cap: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {cap} bytes. Send a smaller body; for images, "
        "use image_url instead of inline data.",
        limit=cap,
    )


async def _read_body(receive: Receive, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read once here, then the real channel (for disconnect messages)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _counting(receive: Receive, cap: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > cap:
                raise _too_large(cap)
        return message

    return counted
