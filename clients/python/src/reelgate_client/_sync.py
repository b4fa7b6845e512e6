"""``reelgate_client.Client``: the blocking client (httpx). Rules live in ``_core``."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from reelgate_client import _core as core
from reelgate_client._sse import SSEDecoder
from reelgate_client.errors import APIConnectionError, WaitTimeout
from reelgate_client.models import (
    Balance,
    Model,
    Page,
    Storyboard,
    UsageRow,
    UsageSummary,
    Video,
    VideoEvent,
)

__all__ = ["Client", "Usage"]

ProgressCallback = Callable[[Video], object]


class Usage:
    """``client.usage``: the recent-requests log and the daily summary."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def recent(
        self,
        *,
        limit: int = 20,
        status: str | None = None,
        model: str | None = None,
        after: str | None = None,
    ) -> Page[UsageRow]:
        params = {"limit": limit, "status": status, "model": model, "after": after}
        body = self._client._json("GET", "/v1/usage/recent", params=params)
        return Page(
            data=tuple(UsageRow.from_wire(r) for r in body.get("data", [])),
            has_more=bool(body.get("has_more")),
            last_id=body.get("last_id"),
        )

    def summary(
        self, start: date | str | None = None, end: date | str | None = None
    ) -> UsageSummary:
        """Per UTC day and delivering model; the last 30 days unless told otherwise."""
        params = core.summary_range(start, end)
        return UsageSummary.from_wire(self._client._json("GET", "/v1/usage/summary", params=params))

    def export_csv(self, start: date | str | None = None, end: date | str | None = None) -> str:
        """The usage lines (one per job, newest first) as CSV text; the last 30 days
        unless told otherwise (``GET /v1/usage/export.csv``)."""
        params = core.summary_range(start, end)
        return self._client._send("GET", "/v1/usage/export.csv", params=params).text


class Client:
    """A blocking reelgate client.

    ``base_url`` and ``api_key`` default to ``REELGATE_URL`` (else
    http://127.0.0.1:8000) and ``REELGATE_API_KEY``. Connection errors and 5xx
    are retried ``max_retries`` times with backoff (429 after its Retry-After);
    other 4xx raise at once. Pass ``http_client`` to bring your own
    ``httpx.Client`` (proxies, transports); it is then yours to close.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = core.DEFAULT_TIMEOUT,
        max_retries: int = core.DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._config = core.ClientConfig.resolve(base_url, api_key, timeout, max_retries)
        self._http = http_client or httpx.Client(timeout=self._config.timeout)
        self._owns_http = http_client is None
        self._events_supported: bool | None = None
        self.usage = Usage(self)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport ---------------------------------------------------------

    def _url(self, path: str) -> str:
        return self._config.base_url + path

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        headers = self._config.headers()
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, self._url(path), params=query, json=json, headers=headers
                )
            except httpx.TransportError as exc:
                delay = core.retry_delay(attempt, self._config.max_retries, error=exc)
                if delay is None:
                    raise APIConnectionError(
                        f"Could not reach reelgate at {self.base_url}: {exc!r}"
                    ) from exc
            else:
                if response.status_code < 400:
                    return response
                delay = core.retry_delay(attempt, self._config.max_retries, response=response)
                if delay is None:
                    raise core.api_error(response)
            time.sleep(delay)
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = self._send(method, path, **kwargs).json()
        return body if isinstance(body, dict) else {}

    # -- the API -----------------------------------------------------------

    def models(
        self,
        *,
        modality: str | None = "video",
        search: str | None = None,
        provider: str | None = None,
        capability: str | Sequence[str] | None = None,
        max_duration_gte: int | None = None,
        max_duration_lte: int | None = None,
        price_gte: int | None = None,
        price_lte: int | None = None,
        source: str | None = None,
        priced: bool | None = None,
        limit: int | None = None,
    ) -> builtins.list[Model]:
        """Every model matching the filters, following the pages (``limit`` is the page
        size). ``search``: each word must occur in the id, name, provider or upstream
        model; ``capability`` (one or several: ``image_input``, ``audio``,
        ``negative_prompt``, ``seed``, ``text_to_video``) must all be there;
        ``max_duration_*`` in seconds, ``price_*`` in millicredits per second;
        ``source``: ``builtin`` or ``synced``. A gateway from before these filters
        ignores them and answers every model."""
        found: builtins.list[Model] = []
        after: str | None = None
        while True:
            page = self.models_page(
                modality=modality,
                search=search,
                provider=provider,
                capability=capability,
                max_duration_gte=max_duration_gte,
                max_duration_lte=max_duration_lte,
                price_gte=price_gte,
                price_lte=price_lte,
                source=source,
                priced=priced,
                limit=limit,
                after=after,
            )
            found.extend(page.data)
            if not page.has_more or not page.next_cursor or page.next_cursor == after:
                return found
            after = page.next_cursor

    def models_page(
        self,
        *,
        modality: str | None = "video",
        search: str | None = None,
        provider: str | None = None,
        capability: str | Sequence[str] | None = None,
        max_duration_gte: int | None = None,
        max_duration_lte: int | None = None,
        price_gte: int | None = None,
        price_lte: int | None = None,
        source: str | None = None,
        priced: bool | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[Model]:
        """One page of models (the filters of ``models``); ``after`` = the previous
        page's ``next_cursor``. ``total`` counts the matches across all pages."""
        params = core.models_query(
            modality=modality,
            search=search,
            provider=provider,
            capability=capability,
            max_duration_gte=max_duration_gte,
            max_duration_lte=max_duration_lte,
            price_gte=price_gte,
            price_lte=price_lte,
            source=source,
            priced=priced,
            limit=limit,
            after=after,
        )
        return core.models_page(self._json("GET", "/v1/models", params=params))

    def model(self, model_id: str) -> Model:
        """One model by id (``GET /v1/models/{id}``; ids such as ``fal:fal-ai/veo3.1``
        are fine as they are)."""
        return Model.from_wire(self._json("GET", core.model_path(model_id)))

    def submit(
        self,
        model: str,
        prompt: str,
        *,
        fallback: str | Sequence[str] | None = None,
        duration_seconds: int | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        image: core.ImageInput | None = None,
        image_url: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        metadata: Mapping[str, str] | None = None,
        audio: bool | None = None,
        provider_params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Video:
        """Queue a video job; returns at once (status "queued").

        ``image`` is a path, raw bytes or a ``data:`` URI, sent inline;
        ``image_url`` is fetched by the gateway. ``audio`` asks for a soundtrack
        (models with the ``audio`` capability); ``provider_params`` are a synced
        model's own inputs (``Model.synced.provider_params``). Retries reuse one
        Idempotency-Key, so a retried submit never makes a second job; pass
        your own ``idempotency_key`` to extend that across restarts of your
        program (the gateway keeps keys 24 h).
        """
        body = core.submit_body(
            model,
            prompt,
            fallback=fallback,
            duration_seconds=duration_seconds,
            resolution=resolution,
            aspect_ratio=aspect_ratio,
            image=image,
            image_url=image_url,
            negative_prompt=negative_prompt,
            seed=seed,
            metadata=metadata,
            audio=audio,
            provider_params=provider_params,
        )
        key = idempotency_key or core.new_idempotency_key()
        return Video.from_wire(self._json("POST", "/v1/videos", json=body, idempotency_key=key))

    def extend(
        self,
        video_id: str,
        prompt: str,
        *,
        duration_seconds: int | None = None,
        model: str | None = None,
        fallback: str | Sequence[str] | None = None,
        resolution: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Video:
        """Continue a completed video by ``duration_seconds`` (``prompt``: what happens
        next). A new job like any other; its video is the whole, longer video, and it is
        billed for the seconds added. ``model`` defaults to the one that made the video."""
        body = core.edit_body(
            prompt,
            model=model,
            fallback=fallback,
            duration_seconds=duration_seconds,
            resolution=resolution,
            metadata=metadata,
        )
        path = core.job_path(video_id, "/extend")
        key = idempotency_key or core.new_idempotency_key()
        return Video.from_wire(self._json("POST", path, json=body, idempotency_key=key))

    def remix(
        self,
        video_id: str,
        prompt: str,
        *,
        model: str | None = None,
        fallback: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Video:
        """Re-make a completed video to a new ``prompt``, on a model whose provider
        remixes (others are a ``remix_not_supported`` error naming those that can)."""
        body = core.edit_body(prompt, model=model, fallback=fallback, metadata=metadata)
        path = core.job_path(video_id, "/remix")
        key = idempotency_key or core.new_idempotency_key()
        return Video.from_wire(self._json("POST", path, json=body, idempotency_key=key))

    def get(self, video_id: str) -> Video:
        return Video.from_wire(self._json("GET", core.job_path(video_id)))

    def list(
        self,
        *,
        status: str | None = None,
        limit: int = 20,
        after: str | None = None,
        order: str = "desc",
    ) -> Page[Video]:
        """One page of jobs, newest first; ``after`` = the previous page's ``last_id``."""
        params = {"status": status, "limit": limit, "after": after, "order": order}
        body = self._json("GET", "/v1/videos", params=params)
        return Page(
            data=tuple(Video.from_wire(v) for v in body.get("data", [])),
            has_more=bool(body.get("has_more")),
            last_id=body.get("last_id"),
        )

    def iter_videos(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Video]:
        """Every job, page after page."""
        after: str | None = None
        while True:
            page = self.list(status=status, limit=page_size, after=after)
            yield from page.data
            if not page.has_more or not page.last_id:
                return
            after = page.last_id

    def cancel(self, video_id: str) -> Video:
        path = core.job_path(video_id, "/cancel")
        key = core.new_idempotency_key()
        return Video.from_wire(self._json("POST", path, idempotency_key=key))

    def retry_mirror(self, video_id: str) -> Video:
        """Copy a finished video into the gateway's storage again (after mirror_status "failed")."""
        path = core.job_path(video_id, "/mirror")
        key = core.new_idempotency_key()
        return Video.from_wire(self._json("POST", path, idempotency_key=key))

    def balance(self) -> Balance:
        return Balance.from_wire(self._json("GET", "/v1/balance"))

    # -- live events and waiting ---------------------------------------------

    @contextlib.contextmanager
    def _open_events(
        self, video_id: str, last_event_id: str, remaining: float | None
    ) -> Iterator[httpx.Response]:
        with self._http.stream(
            "GET",
            self._url(core.job_path(video_id, "/events")),
            headers=core.events_headers(self._config, last_event_id),
            timeout=core.stream_timeout(self._config, remaining),
        ) as response:
            if not core.is_event_stream(response):
                response.read()
                core.check_events_response(response)
            self._events_supported = True
            yield response

    def _follow(
        self, video_id: str, state: core.WaitState, last_event_id: str = "0"
    ) -> Generator[VideoEvent, None, None]:
        """The job's events until its final one, reconnecting with Last-Event-ID."""
        decoder = SSEDecoder(last_event_id)
        failures = 0
        while True:
            if state.expired():
                raise state.timeout_error()
            try:
                with self._open_events(video_id, decoder.last_event_id, state.remaining()) as resp:
                    for line in resp.iter_lines():
                        sse = decoder.feed(line)
                        event = core.parse_event(sse) if sse is not None else None
                        if event is None:
                            continue
                        failures = 0
                        yield event
                        if event.is_final:
                            return
                        if state.expired():
                            raise state.timeout_error()
            except (httpx.TransportError, core.StreamBroken) as exc:
                if state.expired():
                    raise state.timeout_error() from None
                error: Exception = exc
            else:
                error = core.StreamBroken("the events stream ended before the job did")
            failures += 1
            if failures > self._config.max_retries:
                raise APIConnectionError(f"Lost the events stream of {video_id}: {error}")
            time.sleep(state.sleep_for(core.reconnect_delay(decoder.retry_ms, failures)))

    def events(self, video_id: str, *, after: int = 0) -> Iterator[VideoEvent]:
        """The job's live events (Server-Sent Events) after event number ``after``,
        ending with its final event."""
        try:
            yield from self._follow(video_id, core.WaitState(video_id, None), str(after))
        except core.EventsUnsupported:
            raise core.events_unsupported_error(video_id) from None

    def wait(
        self,
        video_id: str | Video,
        *,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.5,
    ) -> Video:
        """Block until the job is final; return the completed video.

        Follows the live events stream when the gateway offers it, else polls
        (``poll_interval``, growing 1.5-fold up to 5 s). ``on_progress`` gets the video
        each time its status or progress changes. A failed or canceled job
        raises its typed error (RefusedError, QuotaError, JobTimeoutError, ...);
        running out of ``timeout`` raises WaitTimeout and leaves the job running.
        """
        vid = core.video_id_of(video_id)
        state = core.WaitState(vid, timeout)
        if self._events_supported is not False:
            try:
                with contextlib.closing(self._follow(vid, state)) as events:
                    for event in events:
                        video = self._report(state, event.video or self.get(vid), on_progress)
                        if event.is_final and not video.is_final:
                            video = self._report(state, self.get(vid), on_progress)
                        if video.is_final:
                            return core.outcome(video)
            except core.EventsUnsupported:
                self._events_supported = False
            except APIConnectionError:
                pass  # the stream keeps breaking: polling retries (and raises) on its own
        return core.outcome(self._poll(vid, state, on_progress, poll_interval))

    @staticmethod
    def _report(state: core.WaitState, video: Video, on_progress: ProgressCallback | None) -> Video:
        if state.observe(video) and on_progress is not None:
            on_progress(video)
        return video

    def _poll(
        self,
        video_id: str,
        state: core.WaitState,
        on_progress: ProgressCallback | None,
        poll_interval: float,
    ) -> Video:
        for delay in core.poll_delays(poll_interval):
            video = self._report(state, self.get(video_id), on_progress)
            if video.is_final:
                return video
            if state.expired():
                raise state.timeout_error()
            time.sleep(state.sleep_for(delay))
        raise AssertionError("unreachable")  # pragma: no cover

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        fallback: str | Sequence[str] | None = None,
        duration_seconds: int | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        image: core.ImageInput | None = None,
        image_url: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        metadata: Mapping[str, str] | None = None,
        audio: bool | None = None,
        provider_params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> Video:
        """``submit`` then ``wait``: the completed video, or the job's typed error."""
        video = self.submit(
            model,
            prompt,
            fallback=fallback,
            duration_seconds=duration_seconds,
            resolution=resolution,
            aspect_ratio=aspect_ratio,
            image=image,
            image_url=image_url,
            negative_prompt=negative_prompt,
            seed=seed,
            metadata=metadata,
            audio=audio,
            provider_params=provider_params,
            idempotency_key=idempotency_key,
        )
        return self.wait(video.id, on_progress=on_progress, timeout=timeout)

    # -- storyboards -------------------------------------------------------

    def create_storyboard(
        self,
        shots: Sequence[Mapping[str, Any]],
        *,
        continue_from_previous: bool = False,
        crossfade_seconds: float = 0.0,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Storyboard:
        """Queue a storyboard: ``shots`` are dicts of the video body's fields (``model``,
        ``prompt``, ``duration_seconds``, ``resolution``, ``aspect_ratio``, ``image``...).
        They run as jobs (at once, or each from the previous one's last frame with
        ``continue_from_previous``) and are joined into one video."""
        body = core.storyboard_body(
            shots,
            continue_from_previous=continue_from_previous,
            crossfade_seconds=crossfade_seconds,
            metadata=metadata,
        )
        key = idempotency_key or core.new_idempotency_key()
        answer = self._json("POST", "/v1/storyboards", json=body, idempotency_key=key)
        return Storyboard.from_wire(answer)

    def get_storyboard(self, storyboard_id: str) -> Storyboard:
        return Storyboard.from_wire(self._json("GET", core.storyboard_path(storyboard_id)))

    def retry_shot(self, storyboard_id: str, shot: int, **changes: Any) -> Storyboard:
        """Make shot number ``shot`` (from 1) of a failed storyboard again, with
        ``changes`` to its fields (``prompt="..."``, ``model="..."``); the others stay."""
        path = core.storyboard_path(storyboard_id, f"/shots/{shot}/retry")
        key = core.new_idempotency_key()
        answer = self._json("POST", path, json=changes or None, idempotency_key=key)
        return Storyboard.from_wire(answer)

    def cancel_storyboard(self, storyboard_id: str) -> Storyboard:
        path = core.storyboard_path(storyboard_id, "/cancel")
        key = core.new_idempotency_key()
        return Storyboard.from_wire(self._json("POST", path, idempotency_key=key))

    def wait_storyboard(
        self,
        storyboard_id: str | Storyboard,
        *,
        on_progress: Callable[[Storyboard], None] | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.5,
    ) -> Storyboard:
        """Poll until the storyboard is completed, failed or canceled, and return it (a
        failed one names its failed shot in ``error``: ``retry_shot`` it)."""
        sid = storyboard_id.id if isinstance(storyboard_id, Storyboard) else storyboard_id
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[str, int] | None = None
        for delay in core.poll_delays(poll_interval):
            board = self.get_storyboard(sid)
            if on_progress is not None and (board.status, board.progress) != seen:
                on_progress(board)
            seen = (board.status, board.progress)
            if board.is_final or board.status == "failed":
                return board
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"Gave up waiting for storyboard {sid} ({board.status}, "
                    f"{board.progress}%); it is still running on the gateway.",
                    video_id=sid,
                )
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def download_storyboard(
        self, storyboard: Storyboard | str, path: str | os.PathLike[str]
    ) -> Path:
        """Save the joined video to ``path`` (a file, or a folder for ``<id>.mp4``)."""
        sid = storyboard.id if isinstance(storyboard, Storyboard) else storyboard
        target = core.download_target(path, sid)
        content = core.storyboard_path(sid, "/content")
        return self._download_to(sid, content, target, sid, 1 << 20)

    # -- download ----------------------------------------------------------

    def download(
        self,
        video: Video | str,
        path: str | os.PathLike[str],
        *,
        variant: str = "video",
        chunk_size: int = 1 << 20,
    ) -> Path:
        """Stream the job's video to ``path`` (a file, or a folder for ``<id>.mp4``); with
        ``variant="thumbnail"`` its poster (WebP), with ``"spritesheet"`` its sprite sheet
        (JPEG; ``video.result.spritesheet`` gives the layout), as OpenAI names them.

        Written to a temp file beside it and renamed into place only when whole,
        so ``path`` never holds half a file. Pass the ``Video`` (not just its
        id) to have a video's size and sha256 checked too.
        """
        vid = core.video_id_of(video)
        content = core.content_path(vid, variant)
        expected = video if variant == "video" else vid
        target = core.download_target(path, vid, variant)
        return self._download_to(vid, content, target, expected, chunk_size)

    def _download_to(
        self, vid: str, content: str, target: Path, expected: Video | str, chunk_size: int
    ) -> Path:
        attempt = 0
        while True:
            part, fd = core.open_part_file(target)
            try:
                with os.fdopen(fd, "wb") as fh:
                    delay = self._download_once(vid, content, fh, chunk_size, attempt, expected)
                if delay is None:
                    os.replace(part, target)
                    return target
            finally:
                part.unlink(missing_ok=True)
            time.sleep(delay)
            attempt += 1

    def _download_once(
        self,
        vid: str,
        content: str,
        fh: Any,
        chunk_size: int,
        attempt: int,
        expected: Video | str,
    ) -> float | None:
        """Write the video into ``fh``; None when done, else the delay before a retry."""
        max_retries = self._config.max_retries
        headers = {**self._config.headers(), **core.DOWNLOAD_HEADERS}
        url = self._url(content)
        try:
            with self._http.stream("GET", url, headers=headers, follow_redirects=True) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    delay = core.retry_delay(attempt, max_retries, response=resp)
                    if delay is None:
                        raise core.api_error(resp)
                    return delay
                digest, size = hashlib.sha256(), 0
                for chunk in resp.iter_bytes(chunk_size):
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except httpx.TransportError as exc:
            delay = core.retry_delay(attempt, max_retries, error=exc)
            if delay is None:
                raise APIConnectionError(f"Download of {vid} failed: {exc!r}") from exc
            return delay
        fh.flush()
        os.fsync(fh.fileno())
        core.verify_download(expected, size, digest.hexdigest())
        return None
