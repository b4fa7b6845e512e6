"""What the sync and async clients share, with no I/O: configuration, the retry
decision, request bodies, error mapping, and the bookkeeping of ``wait()``.

Each client module only moves bytes; every rule lives here once.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote

import httpx

from reelgate_client._sse import ServerSentEvent
from reelgate_client._version import __version__
from reelgate_client.errors import (
    DownloadError,
    ReelgateAPIError,
    WaitTimeout,
    error_from_response,
    job_error,
    parse_retry_after,
)
from reelgate_client.models import Model, Page, Video, VideoEvent

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DOWNLOAD_HEADERS",
    "ClientConfig",
    "EventsUnsupported",
    "ImageInput",
    "StreamBroken",
    "WaitState",
    "api_error",
    "backoff",
    "check_events_response",
    "download_target",
    "encode_image",
    "events_headers",
    "events_unsupported",
    "events_unsupported_error",
    "is_event_stream",
    "job_path",
    "model_path",
    "models_page",
    "models_query",
    "new_idempotency_key",
    "open_part_file",
    "outcome",
    "parse_event",
    "poll_delays",
    "raise_for_status",
    "reconnect_delay",
    "retry_delay",
    "stream_timeout",
    "submit_body",
    "summary_range",
    "verify_download",
    "video_id_of",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0
"""A 429 asking for longer than this is raised at once rather than slept through."""

SSE_READ_TIMEOUT = 45.0
"""The server sends a keep-alive every 15 s; three missed ones mean a dead stream."""

ImageInput: TypeAlias = "str | os.PathLike[str] | bytes"


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str | None
    timeout: httpx.Timeout
    max_retries: int

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
    ) -> ClientConfig:
        """Explicit arguments win; otherwise ``REELGATE_URL`` / ``REELGATE_API_KEY``
        (read here, at construction: the SDK's edge)."""
        url = base_url or os.environ.get("REELGATE_URL") or DEFAULT_BASE_URL
        key = api_key if api_key is not None else os.environ.get("REELGATE_API_KEY")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        return cls(
            base_url=url.rstrip("/"),
            api_key=key or None,
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            max_retries=max_retries,
        )

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"reelgate-python/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based)."""
    ceiling = min(MAX_BACKOFF, INITIAL_BACKOFF * 2.0**attempt)
    # jitter only spreads clients apart; it needs no cryptographic randomness
    return ceiling * (0.5 + random.random() / 2)  # noqa: S311


def retry_delay(
    attempt: int,
    max_retries: int,
    *,
    response: httpx.Response | None = None,
    error: Exception | None = None,
) -> float | None:
    """How long to wait before sending the request again, or None to stop.

    Connection errors and 5xx are retried with backoff, 429 after its
    ``Retry-After``, and a 409 saying our own Idempotency-Key is still being
    handled; other 4xx never. Re-sending a POST is safe because every POST
    carries an Idempotency-Key that stays the same across its retries.
    """
    if attempt >= max_retries:
        return None
    if error is not None:
        return backoff(attempt) if isinstance(error, httpx.TransportError) else None
    if response is None:
        return None
    status = response.status_code
    in_progress = status == 409 and _error_code(response) == "idempotency_in_progress"
    if status != 429 and status < 500 and not in_progress:
        return None
    asked = parse_retry_after(response.headers.get("retry-after"))
    if asked is not None:
        return asked if asked <= MAX_RETRY_AFTER else None
    return backoff(attempt)


def _error_code(response: httpx.Response) -> str | None:
    try:
        err = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return str(err.get("code")) if isinstance(err, dict) else None


def new_idempotency_key() -> str:
    return f"rg-sdk-{uuid.uuid4().hex}"


def api_error(response: httpx.Response) -> ReelgateAPIError:
    """The typed error for an error answer (its body must have been read)."""
    try:
        body: object = response.json()
    except ValueError:
        body = None
    return error_from_response(
        response.status_code, body, dict(response.headers), fallback_text=response.text
    )


def raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise api_error(response)


def storyboard_path(storyboard_id: str, suffix: str = "") -> str:
    if not storyboard_id:
        raise ValueError("a storyboard id is required")
    return f"/v1/storyboards/{quote(storyboard_id, safe='')}{suffix}"


def storyboard_body(
    shots: Sequence[Mapping[str, Any]],
    *,
    continue_from_previous: bool,
    crossfade_seconds: float,
    metadata: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/storyboards``; each shot's ``image`` (a path, bytes or
    a data: URI) is sent inline."""
    out = []
    for shot in shots:
        one = {k: v for k, v in shot.items() if v is not None}
        if "image" in one:
            one["image"] = encode_image(one["image"])
        out.append(one)
    body: dict[str, Any] = {"shots": out, "continue_from_previous": continue_from_previous}
    if crossfade_seconds:
        body["crossfade_seconds"] = crossfade_seconds
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def model_path(model_id: str) -> str:
    """``/v1/models/{id}``: a model id keeps its ``/`` and ``:`` (``fal:fal-ai/veo3.1``);
    anything else unsafe in a path is percent-encoded."""
    if not model_id:
        raise ValueError("a model id is required")
    return f"/v1/models/{quote(model_id, safe='/:')}"


def models_query(
    *,
    modality: str | None,
    search: str | None,
    provider: str | None,
    capability: str | Sequence[str] | None,
    max_duration_gte: int | None,
    max_duration_lte: int | None,
    price_gte: int | None,
    price_lte: int | None,
    source: str | None,
    priced: bool | None,
    limit: int | None,
    after: str | None,
) -> dict[str, Any]:
    """The query of ``GET /v1/models``; None leaves a filter out, ``capability``
    repeats (a model must have every one)."""
    if limit is not None and not 1 <= limit <= 500:
        raise ValueError("limit must be between 1 and 500")
    capabilities = [capability] if isinstance(capability, str) else list(capability or ())
    return {
        "modality": modality,
        "search": search or None,
        "provider": provider,
        "capability": capabilities or None,
        "max_duration_gte": max_duration_gte,
        "max_duration_lte": max_duration_lte,
        "price_gte": price_gte,
        "price_lte": price_lte,
        "source": source,
        "priced": None if priced is None else ("true" if priced else "false"),
        "limit": limit,
        "after": after,
    }


def models_page(body: Mapping[str, Any]) -> Page[Model]:
    """A page of ``GET /v1/models``. A gateway from before pagination sends only
    ``data``: that is then the one and only page."""
    data = body.get("data")
    rows = data if isinstance(data, list) else []
    cursor = body.get("next_cursor")
    total = body.get("total")
    return Page(
        data=tuple(Model.from_wire(m) for m in rows),
        has_more=bool(body.get("has_more")),
        last_id=None,
        next_cursor=str(cursor) if cursor else None,
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def job_path(video_id: str, suffix: str = "") -> str:
    if not video_id:
        raise ValueError("a video id is required")
    return f"/v1/videos/{quote(video_id, safe='')}{suffix}"


def _sniff_mime(data: bytes, name: str | None) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    guessed = mimetypes.guess_type(name)[0] if name else None
    return guessed or "image/png"


def encode_image(image: ImageInput) -> str:
    """A ``data:`` URI for an image given as a path, raw bytes, or a ``data:`` URI."""
    if isinstance(image, bytes):
        data, name = image, None
    elif isinstance(image, str) and image.startswith("data:"):
        return image
    else:
        path = Path(image)
        data, name = path.read_bytes(), path.name
    if not data:
        raise ValueError("the image is empty")
    mime = _sniff_mime(data, name)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def submit_body(
    model: str,
    prompt: str,
    *,
    fallback: str | Sequence[str] | None,
    duration_seconds: int | None,
    resolution: str | None,
    aspect_ratio: str | None,
    image: ImageInput | None,
    image_url: str | None,
    negative_prompt: str | None,
    seed: int | None,
    metadata: Mapping[str, str] | None,
    audio: bool | None = None,
    provider_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/videos``; unset options are left to the model's defaults.
    ``provider_params`` are a synced model's own inputs (the gateway checks them against
    its schema)."""
    if image is not None and image_url is not None:
        raise ValueError("pass either image or image_url, not both")
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if fallback:
        body["fallback"] = [fallback] if isinstance(fallback, str) else list(fallback)
    optional: dict[str, Any] = {
        "duration_seconds": duration_seconds,
        "resolution": resolution,
        "aspect_ratio": aspect_ratio,
        "image_url": image_url,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "audio": audio,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if image is not None:
        body["image"] = encode_image(image)
    if provider_params is not None:
        body["provider_params"] = dict(provider_params)
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def edit_body(
    prompt: str,
    *,
    model: str | None,
    fallback: str | Sequence[str] | None,
    duration_seconds: int | None = None,
    resolution: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/videos/{id}/extend`` or ``/remix``."""
    body: dict[str, Any] = {"prompt": prompt}
    optional = {"model": model, "duration_seconds": duration_seconds, "resolution": resolution}
    body.update({k: v for k, v in optional.items() if v is not None})
    if fallback:
        body["fallback"] = [fallback] if isinstance(fallback, str) else list(fallback)
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def summary_range(start: date | str | None, end: date | str | None) -> dict[str, str]:
    """Query for ``/v1/usage/summary``: the last 30 UTC days unless told otherwise."""
    end_day = date.fromisoformat(end) if isinstance(end, str) else end
    end_day = end_day or datetime.now(UTC).date()
    start_day = date.fromisoformat(start) if isinstance(start, str) else start
    start_day = start_day or end_day - timedelta(days=29)
    return {"start": start_day.isoformat(), "end": end_day.isoformat()}


def poll_delays(initial: float, maximum: float = 5.0) -> Iterator[float]:
    """Polling intervals: ``initial``, then 1.5 times longer each time, capped at ``maximum``."""
    delay = max(0.05, initial)
    while True:
        yield delay
        delay = min(maximum, delay * 1.5)


def events_unsupported(response: httpx.Response) -> bool:
    """True when the gateway does not offer the events stream (an older gateway):
    the caller falls back to polling. A 404 naming the job (``param: id``) is a
    missing job, not a missing route, and is raised instead."""
    if response.status_code in (405, 406, 501):
        return True
    if response.status_code == 404:
        try:
            err = response.json().get("error", {})
        except (ValueError, AttributeError):
            return True
        return not (isinstance(err, dict) and err.get("param") == "id")
    content_type = response.headers.get("content-type", "")
    return response.status_code == 200 and not content_type.startswith("text/event-stream")


def stream_timeout(config: ClientConfig, remaining: float | None) -> httpx.Timeout:
    """The events stream waits longer than a request between bytes (keep-alives),
    but never much past the caller's own deadline."""
    read = SSE_READ_TIMEOUT if remaining is None else max(0.1, min(SSE_READ_TIMEOUT, remaining))
    return httpx.Timeout(
        connect=config.timeout.connect,
        read=read,
        write=config.timeout.write,
        pool=config.timeout.pool,
    )


class WaitState:
    """The bookkeeping of one ``wait()``: the deadline, the last state seen, and
    whether a new state is worth reporting (status or progress changed)."""

    def __init__(self, video_id: str, timeout: float | None) -> None:
        self.video_id = video_id
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.last: Video | None = None
        self._reported: tuple[str, int] | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def observe(self, video: Video) -> bool:
        """Record ``video``; True if the caller should report it."""
        self.last = video
        key = (video.status, video.progress)
        changed = key != self._reported
        self._reported = key
        return changed

    def timeout_error(self) -> WaitTimeout:
        last = self.last
        state = f" (last seen: {last.status}, {last.progress}%)" if last else ""
        return WaitTimeout(
            f"Gave up waiting for video job {self.video_id}{state}; it is still running on "
            "the gateway.",
            video_id=self.video_id,
            video=last,
        )

    def sleep_for(self, delay: float) -> float:
        remaining = self.remaining()
        return delay if remaining is None else max(0.0, min(delay, remaining))


def outcome(video: Video) -> Video:
    """A completed job's video; any other final state is raised as its typed error."""
    if video.status == "completed":
        return video
    raise job_error(video)


def parse_event(sse: ServerSentEvent) -> VideoEvent | None:
    """A ``VideoEvent`` from one SSE event, or None for data that is not one."""
    try:
        payload = json.loads(sse.data)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    return VideoEvent.from_wire(payload, event_type=sse.event, event_id=sse.id)


class EventsUnsupported(Exception):
    """The gateway has no events stream for this job: poll instead."""


class StreamBroken(Exception):
    """The events stream answered a retryable error or ended early: reconnect."""


def events_headers(config: ClientConfig, last_event_id: str) -> dict[str, str]:
    return {
        **config.headers(),
        "Accept": "text/event-stream",
        "Cache-Control": "no-cache",
        "Last-Event-ID": last_event_id or "0",
    }


def check_events_response(response: httpx.Response) -> None:
    """After reading the body of a response that is not an open event stream:
    raise EventsUnsupported, StreamBroken or the typed error."""
    if events_unsupported(response):
        raise EventsUnsupported
    if response.status_code == 429 or response.status_code >= 500:
        raise StreamBroken(f"events stream answered HTTP {response.status_code}")
    raise_for_status(response)


def is_event_stream(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.headers.get("content-type", "").startswith(
        "text/event-stream"
    )


def reconnect_delay(retry_ms: int | None, failures: int) -> float:
    """The server's ``retry:`` when it sent one, else backoff."""
    if retry_ms is not None:
        return retry_ms / 1000
    return backoff(max(0, failures - 1))


def events_unsupported_error(video_id: str) -> ReelgateAPIError:
    return ReelgateAPIError(
        f"This gateway does not offer live events for video job {video_id}; poll with get().",
        code="events_unsupported",
        status=404,
    )


def video_id_of(video: Video | str) -> str:
    return video.id if isinstance(video, Video) else video


VARIANTS = {"video": ".mp4", "thumbnail": ".thumbnail.webp", "spritesheet": ".spritesheet.jpg"}
"""What ``GET /v1/videos/{id}/content?variant=`` serves (OpenAI's names), and the file
ending a download into a folder gets."""


def content_path(video_id: str, variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, not {variant!r}")
    suffix = "/content" if variant == "video" else f"/content?variant={variant}"
    return job_path(video_id, suffix)


def download_target(path: str | os.PathLike[str], video_id: str, variant: str = "video") -> Path:
    """The file to write: ``path`` itself, or ``<id>.mp4`` (``<id>.thumbnail.webp``,
    ``<id>.spritesheet.jpg``) inside it if it is a folder."""
    target = Path(path)
    if target.is_dir():
        target = target / f"{video_id}{VARIANTS[variant]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def open_part_file(target: Path) -> tuple[Path, int]:
    """A fresh hidden temp file beside ``target`` (same filesystem, so the final
    ``os.replace`` is atomic), created with the usual umask-governed mode."""
    part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    return part, fd


def verify_download(expected: Video | str, size: int, sha256: str) -> None:
    """Check the bytes against the job's result, when the caller passed the job."""
    result = expected.result if isinstance(expected, Video) else None
    if result is None:
        return
    if result.bytes is not None and result.bytes != size:
        raise DownloadError(
            f"Downloaded {size} bytes for video job {video_id_of(expected)}, "
            f"expected {result.bytes}."
        )
    if result.sha256 and result.sha256 != sha256:
        raise DownloadError(
            f"The download of video job {video_id_of(expected)} does not match its sha256."
        )


DOWNLOAD_HEADERS = {"Accept": "video/*, */*"}
