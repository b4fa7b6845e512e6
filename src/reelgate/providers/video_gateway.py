"""The upstream video gateway behind the ``media-video-from-text`` service.

The upstream wraps Google Veo: it queues a task in its own video worker pool
and answers a ``job_id`` at once; the status path is polled until the task
is done. Its wire format is known only from the service brief
(``seeds/media-video-from-text.txt``) — see docs/providers/video_gateway.md
for what is confirmed and what is a documented choice:

    POST {base}{create_path}            {"prompt", "model", "resolution": "512P"|"1080P",
                                         "duration": "4s"|"8s", "aspect_ratio": "16:9"|"9:16"}
                                        -> {"job_id"}
    GET  {base}/api/video/status/{id}   -> {"status", ...}; finished: "video_url",
                                           "duration_seconds", "model", "resolution",
                                           "aspect_ratio"

A failure is an HTTP 4xx/5xx *or* a 200 whose body is ``{"status": "error"}``;
both are read by :func:`classify_failure`. The upstream is text-to-video only
and takes no negative prompt or seed, and it ignores unknown fields (Pydantic's
default), so this adapter refuses those inputs instead of letting them vanish.

This module must never log the API key, put it in a URL or a message, or send
it to any host but the configured gateway (a request hook enforces the last,
redirects included).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from reelgate.errors import (
    InvalidRequest,
    ProviderError,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.providers.base import (
    GenerationRequest,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.http import HttpDeployment, new_client, request_json, stream_download
from reelgate.providers.plugin import BuildContext, Capabilities, ProviderPlugin, ProviderSettings

__all__ = [
    "DEFAULT_CREATE_PATH",
    "DEFAULT_STATUS_PATH",
    "PLUGIN",
    "VideoGatewayProvider",
    "VideoGatewaySettings",
    "classify_failure",
    "interpret_status",
    "upstream_body",
]

log = logging.getLogger(__name__)

DEFAULT_CREATE_PATH = "/api/video/generate"
DEFAULT_STATUS_PATH = "/api/video/status/{job_id}"
KEY_SETTING = "REELGATE_VIDEO_GATEWAY_API_KEY"

# Status words. The brief shows "success" in a finished answer; "completed" and
# the other spellings are accepted because the brief never lists the set.
_PENDING = frozenset({"queued", "pending", "waiting", "submitted"})
_RUNNING = frozenset({"processing", "running", "in_progress", "started", "generating"})
_DONE = frozenset({"success", "succeeded", "completed", "complete", "done"})
_FAILED = frozenset({"error", "failed", "failure", "canceled", "cancelled"})

# Veo's safety wording ("... violates Vertex AI's usage guidelines ... Support
# codes: 15236754", "The prompt couldn't be submitted", "it might violate our
# policies") and the generic moderation words a proxy in front of it may use.
_REFUSAL = re.compile(
    r"safety|content[ _-]?polic|usage (?:guidelines|polic)|violat|our policies|"
    r"support codes?|responsible ai|\brai\b|moderat|prohibited|blocked by|"
    r"filtered|inappropriate|couldn't be submitted|"
    r"\b(?:58061214|17301594|29310472|15236754)\b",
    re.IGNORECASE,
)
_QUOTA = re.compile(
    r"quota|rate[ _-]?limit|resource[ _]exhausted|too many requests|\b429\b", re.IGNORECASE
)
_INVALID = re.compile(
    r"input should be|validation|invalid|not supported|unsupported|must be|field required",
    re.IGNORECASE,
)


def upstream_body(request: GenerationRequest) -> dict[str, str]:
    """The create body, in the upstream's exact strings ("4s", "1080P").

    Inputs the upstream has no field for are refused here: it would drop them
    silently and bill for a video that ignored them.
    """
    unsupported = {
        "image": request.image is not None,
        "negative_prompt": bool(request.negative_prompt),
        "seed": request.seed is not None,
    }
    for param, present in unsupported.items():
        if present:
            raise InvalidRequest(
                f"the video gateway (media-video-from-text) takes no {param}: it is "
                "text-to-video with prompt, model, resolution, duration and aspect_ratio only",
                code="unsupported_parameter",
                param=param,
            )
    return {
        "prompt": request.prompt,
        "model": request.upstream_model,
        "resolution": request.resolution.upper(),
        "duration": f"{request.duration_seconds}s",
        "aspect_ratio": request.aspect_ratio,
    }


def _detail_text(body: Any) -> str | None:
    """The human message in an upstream answer: FastAPI's ``detail`` (a string or
    Pydantic's error list), or an envelope's ``error`` / ``message``."""
    if not isinstance(body, Mapping):
        return None
    detail = body.get("detail")
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                msg = str(item.get("msg", "invalid value"))
                parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts) or None
    for name in ("error", "message", "error_message", "reason"):
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping) and isinstance(value.get("message"), str):
            return str(value["message"])
    return None


def classify_failure(message: str, *, upstream_status: int | None = None) -> ProviderError:
    """Classify an upstream failure by what it says (an error envelope, an error body).

    Safety wording -> Refused; quota wording -> QuotaExceeded; validation
    wording -> InvalidRequest; anything else -> TransientError, because an
    unexplained failed run is an upstream fault the engine may retry or fall
    back from, not something the caller can fix by rewording.
    """
    if _REFUSAL.search(message):
        lowered = message.lower()
        if "image" in lowered:
            return Refused(message, upstream_status=upstream_status, flagged="image")
        if "prompt" in lowered:
            return Refused(message, upstream_status=upstream_status, flagged="prompt")
        return Refused(message, upstream_status=upstream_status)
    if _QUOTA.search(message):
        return QuotaExceeded(message, upstream_status=upstream_status)
    if _INVALID.search(message):
        return InvalidRequest(message, upstream_status=upstream_status)
    return TransientError(message, code="upstream_failed", upstream_status=upstream_status)


def _progress(body: Mapping[str, Any]) -> int | None:
    value = body.get("progress")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 <= value <= 100 else None


def interpret_status(body: Any) -> UpstreamStatus:
    """One status answer as an UpstreamStatus; a failed job raises, classified."""
    if not isinstance(body, Mapping) or not isinstance(body.get("status"), str):
        raise TransientError("the video gateway's status answer has no status", code="malformed")
    word = str(body["status"]).strip().lower()
    if word in _FAILED:
        message = _detail_text(body) or f"the video gateway reported status {word!r}"
        failed = classify_failure(message)
        failed.terminal = True  # the upstream job ended failed; polling again cannot help
        raise failed
    if word in _DONE:
        url = body.get("video_url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise TransientError(
                "the video gateway finished without a usable video_url", code="malformed"
            )
        seconds = body.get("duration_seconds")
        extra = {k: body[k] for k in ("model", "resolution", "aspect_ratio") if k in body}
        return UpstreamStatus(
            state=UpstreamState.SUCCEEDED,
            progress=100,
            result=ResultLocation(url=url),
            duration_seconds=float(seconds)
            if isinstance(seconds, int | float) and not isinstance(seconds, bool)
            else None,
            extra=extra,
        )
    if word in _PENDING:
        return UpstreamStatus(state=UpstreamState.PENDING, progress=_progress(body))
    if word not in _RUNNING:
        # A word we do not know is more likely a new intermediate state than a
        # failure; the job's deadline bounds the wait if it is neither.
        log.info("video gateway: unrecognised status word %r treated as running", word)
    return UpstreamStatus(state=UpstreamState.RUNNING, progress=_progress(body))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


class VideoGatewayProvider:
    """One deployment of the upstream video gateway.

    ``auth_header``/``auth_scheme``: the brief does not say how the upstream
    authenticates; the default is ``Authorization: Bearer <key>``. For an
    ``X-API-Key``-style deployment pass ``auth_header="X-API-Key",
    auth_scheme=None``.
    """

    name = "video_gateway"
    route = "default"
    supports_cancel = False
    """The brief documents no cancel endpoint."""
    idempotent_create = False
    """The upstream takes no idempotency key: a re-sent create starts a second job."""

    def __init__(
        self,
        deployment: HttpDeployment,
        *,
        create_path: str = DEFAULT_CREATE_PATH,
        status_path: str = DEFAULT_STATUS_PATH,
        auth_header: str = "Authorization",
        auth_scheme: str | None = "Bearer",
    ) -> None:
        if "{job_id}" not in status_path:
            raise ValueError("status_path must contain {job_id}")
        self._deployment = deployment
        self._key = deployment.api_key
        self._create_path = "/" + create_path.lstrip("/")
        self._status_path = "/" + status_path.lstrip("/")
        self._auth_header = auth_header
        credential = f"{auth_scheme} {self._key}" if auth_scheme else self._key
        self._client = new_client(deployment, {auth_header: credential})
        self._client.event_hooks["request"].append(self._keep_credentials_home)
        self._home = _origin(self._client.base_url)

    def __repr__(self) -> str:
        return f"VideoGatewayProvider(base_url={str(self._client.base_url)!r}, api_key=***)"

    async def create(self, request: GenerationRequest) -> Submitted:
        answer = await self._call("POST", self._create_path, json=upstream_body(request))
        if isinstance(answer, Mapping) and str(answer.get("status", "")).lower() in _FAILED:
            raise self._scrubbed(classify_failure(_detail_text(answer) or "create failed"))
        job_id = answer.get("job_id") if isinstance(answer, Mapping) else None
        if isinstance(job_id, bool) or not isinstance(job_id, str | int) or job_id == "":
            raise TransientError(
                "the video gateway's create answer has no job_id",
                code="malformed",
                ambiguous=True,  # a 2xx: the job may exist upstream
            )
        return Submitted(str(job_id))

    async def status(self, upstream_id: str) -> UpstreamStatus:
        path = self._status_path.format(job_id=quote(upstream_id, safe=""))
        answer = await self._call("GET", path)
        try:
            status = interpret_status(answer)
        except ProviderError as exc:
            raise self._scrubbed(exc) from None
        if status.result is not None and self._key in status.result.url:
            raise InvalidRequest(
                "the video gateway answered a result link that embeds our API key; "
                "it is not stored. Ask the upstream operator to serve results without it",
                code="unsafe_result_url",
                upstream_id=upstream_id,
            )
        return status

    async def cancel(self, upstream_id: str) -> None:
        raise InvalidRequest("the video gateway has no cancel endpoint", code="cancel_unsupported")

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        if not result.url.startswith(("https://", "http://")):
            raise InvalidRequest("not a video gateway result link", code="result_unavailable")
        async for chunk in stream_download(
            self._client,
            result.url,
            rules=self._deployment.downloads,
            classify=self._classify_download,
        ):
            yield chunk

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _keep_credentials_home(self, request: httpx.Request) -> None:
        """Runs before every request, redirects included: result links on an
        object store or CDN must never receive the gateway's key."""
        if _origin(request.url) != self._home:
            request.headers.pop(self._auth_header, None)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        details: list[str] = []

        def classify(status: int, body: Any) -> ProviderError | None:
            specific = self._classify(status, body)
            if specific is None and (text := _detail_text(body)):
                details.append(text)
            return specific

        try:
            return await request_json(
                self._client,
                method,
                path,
                classify=classify,
                **kwargs,
            )
        except (QuotaExceeded, TransientError) as exc:
            if details and exc.upstream_status is not None:
                # The shared defaults keep Retry-After but not FastAPI's "detail".
                raise type(exc)(
                    self._scrub(f"{details[0]} (HTTP {exc.upstream_status})"),
                    upstream_status=exc.upstream_status,
                    retry_after=exc.retry_after,
                ) from None
            raise

    def _classify(self, status: int, body: Any) -> ProviderError | None:
        if status in (401, 403):
            return InvalidRequest(
                f"the video gateway rejected our credentials (HTTP {status}); check "
                f"{KEY_SETTING} (sent as the {self._auth_header} header)",
                code="upstream_auth",
                upstream_status=status,
            )
        text = _detail_text(body)
        if text is None:
            return None
        text = self._scrub(text)
        if _REFUSAL.search(text):
            return classify_failure(text, upstream_status=status)
        if status == 429 or status in (408, 409, 425):
            return None  # the shared defaults honour Retry-After
        if _QUOTA.search(text):
            # Veo's RESOURCE_EXHAUSTED passed through under another status.
            return QuotaExceeded(text, upstream_status=status)
        if status >= 500:
            return None
        return InvalidRequest(text, upstream_status=status)

    def _classify_download(self, status: int, body: Any) -> ProviderError | None:
        if status in (401, 403, 404, 410):
            return InvalidRequest(
                f"the result link answered HTTP {status}: it has expired or was removed upstream",
                code="result_unavailable",
                upstream_status=status,
            )
        return None

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _scrubbed(self, exc: ProviderError) -> ProviderError:
        if not self._key or self._key not in exc.message:
            return exc
        return exc.with_message(self._scrub(exc.message))


class VideoGatewaySettings(ProviderSettings):
    """A generic async video gateway (the service brief's upstream)."""

    video_gateway_api_key: SecretStr | None = None
    video_gateway_base_url: str = ""
    video_gateway_create_path: str = DEFAULT_CREATE_PATH
    video_gateway_auth_header: str = "Authorization"
    video_gateway_auth_scheme: str = "Bearer"
    """"" sends the bare key (for ``X-API-Key``-style upstreams)."""


def build(settings: VideoGatewaySettings, context: BuildContext) -> VideoGatewayProvider | None:
    """The configured deployment, or None unless both the key and the base URL are set."""
    key = settings.video_gateway_api_key
    secret = key.get_secret_value() if key is not None else ""
    if not secret or not settings.video_gateway_base_url:
        return None
    deployment = HttpDeployment(
        base_url=settings.video_gateway_base_url,
        api_key=secret,
        timeout_seconds=context.timeout_seconds,
        downloads=context.downloads,
    )
    return VideoGatewayProvider(
        deployment,
        create_path=settings.video_gateway_create_path,
        auth_header=settings.video_gateway_auth_header,
        auth_scheme=settings.video_gateway_auth_scheme or None,
    )


PLUGIN = ProviderPlugin(
    kind="video_gateway",
    settings=VideoGatewaySettings,
    build=build,
    setup_hint="set REELGATE_VIDEO_GATEWAY_API_KEY and REELGATE_VIDEO_GATEWAY_BASE_URL",
    capabilities=Capabilities(cancel=False, idempotent_create=False),
    key_setting="video_gateway_api_key",
    base_url_setting="video_gateway_base_url",
    emulator="reelgate.emulators.video_gateway",
)
