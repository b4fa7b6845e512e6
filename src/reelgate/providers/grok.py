"""xAI Grok Imagine video (``grok-imagine-video``) over xAI's REST API.

The wire format, as xAI's own SDKs speak it (``xai-org/xai-sdk-ts``:
``spec/openapi.json`` and ``src/resources/videos.ts``; ``xai-org/xai-sdk-python``:
``proto/v6/video_pb2.pyi``; sources and open points in ``docs/providers/grok.md``)::

    POST /videos/generations   {"model", "prompt", "duration", "resolution",
                                "aspect_ratio" (text-to-video only),
                                "image": {"url": https URL or data URI} (image-to-video)}
                               -> 200 {"request_id"}
    GET  /videos/{request_id}  -> 202 while pending: {"status": "pending", "progress": 0-99}
                                  or an empty body
                               -> 200 {"status": "done", "progress": 100, "model", "usage",
                                       "video": {"url", "duration", "respect_moderation"}}
                               -> 200 {"status": "failed", "error": {"code", "message"}}

Errors come as ``{"code": "<gRPC status text>", "error": "<message>"}``. A wrong
key is a *400* ("Incorrect API key provided: xa***yz ..."), exhausted credits a
429 or a 403, moderation either a 4xx at create or a finished video with
``respect_moderation: false`` and no URL. The result URL is public (no
credentials) and lives about 24 hours. xAI has no cancel endpoint for videos
and does not dedupe creates.

Zero Data Retention teams must send ``output.upload_url`` ("a signed URL to upload
the generated video via HTTP PUT", xAI's OpenAPI ``VideoOutput``), or every create
answers 400 "Zero Data Retention teams must provide output.upload_url for video
generation.". The engine gives this adapter a PUT link into reelgate's own storage
with every request (``takes_output_upload``); it is sent when
``REELGATE_XAI_ZERO_DATA_RETENTION`` is set, and after that 400 (the create is sent
again once with it, and every later one carries it). The result is then the object
xAI uploaded (``UPLOADED``), mirrored from reelgate's storage.

This module must never log the key, put it in a URL, or copy an upstream auth
message (xAI echoes a fragment of the key) into an error.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from reelgate.errors import (
    InvalidRequest,
    ModelGone,
    ProviderError,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.providers.base import (
    UPLOADED,
    GenerationRequest,
    ImageInput,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.http import (
    HttpDeployment,
    accepted_credential,
    new_client,
    request_json,
    stream_download,
)
from reelgate.providers.plugin import BuildContext, Capabilities, ProviderPlugin, ProviderSettings

log = logging.getLogger(__name__)
_ZDR = re.compile(r"Zero Data Retention.*output\.upload_url", re.IGNORECASE)
"""xAI's 400 for a create without output.upload_url from a ZDR team."""

__all__ = [
    "PLUGIN",
    "RESULT_URL_TTL",
    "GrokProvider",
    "GrokSettings",
]

RESULT_URL_TTL = timedelta(hours=24)
"""xai-sdk-python ``VideoResponse.url``: "The returned URL is valid for 24 hours"."""

KEY_SETTING = "REELGATE_XAI_API_KEY"

# Status words. "pending"/"done"/"failed" are in xAI's OpenAPI spec, "expired" in the
# SDK's DeferredStatus; "processing"/"completed" are aliases one xai-sdk-python REST
# client accepts, tolerated here so a rename upstream does not strand jobs.
_PENDING = frozenset({"pending", "processing", "queued"})
_DONE = frozenset({"done", "completed"})
_FAILED = "failed"
_EXPIRED = "expired"

# VideoErrorCode (spec): what a failed job's error.code means for the engine.
_TRANSIENT_CODES = frozenset({"service_unavailable", "internal_error"})
_INVALID_CODES = frozenset({"invalid_argument", "failed_precondition", "permission_denied"})

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
"""ImageUrl (spec): "Public URL or base64-encoded data URL of the image (JPEG, PNG, or WebP)"."""

_MODERATION = re.compile(r"moderation|content polic|usage polic", re.IGNORECASE)
"""How xAI words a safety block ("Generated image rejected by content moderation.")."""
_BILLING = re.compile(r"credits|spending limit|licenses", re.IGNORECASE)
"""xAI answers an out-of-credits team with 403 or 429 and this wording: a quota, not auth."""
_BAD_KEY = re.compile(r"api key", re.IGNORECASE)

_EDITING_MODELS = frozenset({"grok-imagine-video"})
_EXTEND_SECONDS = (2, 10)
"""``POST /v1/videos/extensions`` ``duration``: "the extension segment ... (2-10)"."""
_EXTEND_SOURCE_SECONDS = (2.0, 15.0)
"""docs.x.ai Video Extension: "The input video duration must be between 2 and 15 seconds"."""


class GrokProvider:
    """One xAI deployment. Downloads use a second client that carries no credentials:
    xAI's result links are public, and the key must not travel to another host."""

    name = "grok"
    route = "xai"
    takes_output_upload = True
    supports_cancel = False
    idempotent_create = False
    """xAI takes no idempotency key: its official SDK retries a create only after a 429."""

    def __init__(
        self,
        deployment: HttpDeployment,
        *,
        result_ttl: timedelta = RESULT_URL_TTL,
        zero_data_retention: bool = False,
    ):
        self._deployment = deployment
        self._zdr = zero_data_retention
        """Send ``output.upload_url`` (set, or learnt from xAI's 400)."""
        self._result_ttl = result_ttl
        auth = {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
        self._client = new_client(deployment, auth)
        self._files = new_client(deployment, {})

    def __repr__(self) -> str:
        return f"GrokProvider({self._deployment!r})"

    async def create(self, request: GenerationRequest) -> Submitted:
        # x-client-request-id is the header xai-sdk-ts sends for tracing; xAI does not
        # dedupe on it, but it lets an operator find this attempt in xAI's logs.
        upload = request.output_upload_url
        try:
            try:
                data = await self._send_create(request, with_upload=self._zdr)
            except InvalidRequest as exc:
                if self._zdr or upload is None or not _ZDR.search(exc.message):
                    raise
                log.warning(
                    "xAI says this team keeps no data: sending output.upload_url from now "
                    "on; set REELGATE_XAI_ZERO_DATA_RETENTION=true to skip the refused create"
                )
                self._zdr = True
                data = await self._send_create(request, with_upload=True)
        except InvalidRequest as exc:
            if exc.upstream_status == 404:
                # "model-not-found ... errors are returned as HTTP errors" (xAI's spec):
                # the create path names no request, so the model is what is missing
                raise ModelGone(exc.message, upstream_status=404) from None
            raise
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise TransientError(
                "xAI accepted the video request but answered no request_id", ambiguous=True
            )
        return Submitted(request_id)

    async def verify(self) -> None:
        """The credential check of ``reelgate providers check``: a request id that does
        not exist answers 404 once the key is accepted."""
        try:
            await self.status("00000000-0000-0000-0000-000000000000")
        except ProviderError as exc:
            if not accepted_credential(exc):
                raise

    def edits_natively(
        self, edit: str, upstream_model: str, duration_seconds: int, source_seconds: float
    ) -> bool:
        """``/videos/extensions`` continues a 2-15 s MP4 by 2-10 s and returns the whole
        video; ``/videos/edits`` re-makes one to a new prompt. Only
        ``grok-imagine-video`` extends (xAI's REST reference, "Videos": the extension
        ranges; Vercel AI Gateway "Video Extension": "Only xai/grok-imagine-video
        supports extension. The xai/grok-imagine-video-1.5 ... support image-to-video
        only")."""
        if upstream_model not in _EDITING_MODELS:
            return False
        if edit == "extend":
            return (
                _EXTEND_SECONDS[0] <= duration_seconds <= _EXTEND_SECONDS[1]
                and _EXTEND_SOURCE_SECONDS[0] <= source_seconds <= _EXTEND_SOURCE_SECONDS[1]
            )
        return edit == "remix"

    async def _send_create(self, request: GenerationRequest, *, with_upload: bool) -> Any:
        path, body = "/videos/generations", None
        if request.source is not None:
            path, body = edit_request(request)
        body = body or create_body(request)
        if with_upload:
            if request.output_upload_url is None:
                raise InvalidRequest(
                    "xAI needs output.upload_url for this team and reelgate has none to give",
                    code="no_upload_url",
                )
            body["output"] = {"upload_url": request.output_upload_url}
        return await self._call(
            "POST",
            path,
            json=body,
            headers={"x-client-request-id": request.idempotency_key},
        )

    async def status(self, upstream_id: str) -> UpstreamStatus:
        data = await self._call("GET", f"/videos/{quote(upstream_id, safe='')}")
        return self._status_from(data, upstream_id)

    async def cancel(self, upstream_id: str) -> None:
        """Never called (``supports_cancel`` is False): xAI has no cancel for videos."""
        raise InvalidRequest(
            "xAI offers no way to cancel a video generation",
            code="cancel_unsupported",
            upstream_id=upstream_id,
        )

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        async for chunk in stream_download(
            self._files,
            result.url,
            rules=self._deployment.downloads,
            classify=_classify_download,
        ):
            yield chunk

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._files.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request_json`` with xAI's envelope read into the message.

        The shared defaults turn 429 and 5xx into classified errors (honouring
        Retry-After, which a classifier cannot see) but cannot read xAI's
        ``{"code", "error": "<text>"}`` body, so they say "HTTP 429". The text
        seen by the classifier replaces that.
        """
        seen: list[str] = []

        def classify(status: int, body: Any) -> ProviderError | None:
            seen.append(_error_text(body))
            return _classify(status, body)

        try:
            return await request_json(self._client, method, path, classify=classify, **kwargs)
        except (QuotaExceeded, TransientError) as exc:
            if seen and seen[-1] and exc.message.startswith("HTTP "):
                exc.message = f"{seen[-1]} ({exc.message})"
                exc.args = (exc.message,)
            raise

    def _status_from(self, data: Any, upstream_id: str) -> UpstreamStatus:
        if data is None:  # a 202 without a body: still pending (xai-sdk-ts videos.ts)
            return UpstreamStatus(UpstreamState.PENDING)
        if not isinstance(data, dict):
            raise TransientError("xAI answered a video status that is not a JSON object")
        status = data.get("status")
        if status is None:
            # Older answers carried a finished video without a status, and a pending
            # request may echo only its request_id.
            video = data.get("video")
            status = "done" if isinstance(video, dict) and video.get("url") else "pending"
        if status in _PENDING:
            progress = _progress(data.get("progress"))
            state = UpstreamState.RUNNING if progress else UpstreamState.PENDING
            return UpstreamStatus(state, progress=progress)
        if status in _DONE:
            return self._finished(data, upstream_id)
        if status == _FAILED:
            raise _failure(data.get("error"), upstream_id)
        if status == _EXPIRED:
            # The SDKs end here too (xai-sdk-python "Deferred request expired.", Vercel's
            # XAI_VIDEO_GENERATION_EXPIRED): the request is gone, polling cannot revive it
            raise TransientError(
                "xAI expired the video request before it finished",
                code="upstream_expired",
                upstream_id=upstream_id,
                terminal=True,
            )
        raise TransientError(f"xAI answered an unknown video status {status!r}")

    def _finished(self, data: Mapping[str, Any], upstream_id: str) -> UpstreamStatus:
        video = data.get("video")
        if not isinstance(video, dict):
            raise TransientError("xAI finished the video but answered no video object")
        if video.get("respect_moderation") is False:
            # The spec: false means the output broke moderation rules and the URL is
            # empty. xAI does not say whether the prompt or the image caused it.
            refused = Refused(
                "xAI's moderation withheld the generated video (respect_moderation: false)",
                upstream_id=upstream_id,
            )
            # a relay of xAI's list price says a withheld render is still billed
            # (docs.apiyi.com grok-imagine-video overview): keep xAI's own figure
            refused.cost_usd = _cost_usd(data)
            raise refused
        storage_error = data.get("storage_error")
        if storage_error:
            raise TransientError(
                f"xAI could not upload the video to reelgate's storage: {storage_error}",
                code="upload_failed",
                upstream_id=upstream_id,
                terminal=True,
            )
        url = video.get("url")
        duration = video.get("duration")
        if self._zdr:
            # written to the upload URL every create carries in this mode: read it back
            # from our storage (after a restart that forgot a learnt mode, set
            # REELGATE_XAI_ZERO_DATA_RETENTION so this holds from the first poll)
            return UpstreamStatus(
                UpstreamState.SUCCEEDED,
                progress=100,
                result=ResultLocation(url=UPLOADED),
                duration_seconds=float(duration) if isinstance(duration, int | float) else None,
                extra=_usage(data),
                cost_usd=_cost_usd(data),
            )
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise TransientError("xAI finished the video but answered no video URL")
        return UpstreamStatus(
            UpstreamState.SUCCEEDED,
            progress=100,
            result=ResultLocation(url=url, expires_at=datetime.now(UTC) + self._result_ttl),
            duration_seconds=float(duration) if isinstance(duration, int | float) else None,
            extra=_usage(data),
            cost_usd=_cost_usd(data),
        )


class GrokSettings(ProviderSettings):
    """xAI's API."""

    xai_api_key: SecretStr | None = None
    xai_base_url: str = "https://api.x.ai/v1"
    xai_zero_data_retention: bool = False
    """The team keeps no data: send every create an ``output.upload_url`` into
    reelgate's storage (learnt from xAI's 400 too, but that costs one refused create)."""


def build(settings: GrokSettings, context: BuildContext) -> GrokProvider | None:
    """The configured deployment, or None when ``REELGATE_XAI_API_KEY`` is unset."""
    key = settings.xai_api_key.get_secret_value().strip() if settings.xai_api_key else ""
    if not key:
        return None
    return GrokProvider(
        HttpDeployment(
            base_url=settings.xai_base_url,
            api_key=key,
            timeout_seconds=context.timeout_seconds,
            downloads=context.downloads,
        ),
        zero_data_retention=settings.xai_zero_data_retention,
    )


PLUGIN = ProviderPlugin(
    kind="grok",
    settings=GrokSettings,
    build=build,
    setup_hint="set REELGATE_XAI_API_KEY",
    capabilities=Capabilities(cancel=False, idempotent_create=False),
    default_base_url="https://api.x.ai/v1",
    key_setting="xai_api_key",
    base_url_setting="xai_base_url",
    emulator="reelgate.emulators.grok",
    emulator_base_path="/v1",
)


def create_body(request: GenerationRequest) -> dict[str, Any]:
    """The JSON body of ``POST /videos/generations`` for ``request``.

    Raises InvalidRequest for what xAI cannot take: a negative prompt (no such
    field) or an image type other than JPEG, PNG or WebP. A seed is dropped: the
    API has none and a seed does not change what the user asked for.
    """
    if request.negative_prompt:
        raise InvalidRequest(
            "xAI Grok video takes no negative_prompt; describe what you want instead",
            code="unsupported_parameter",
        )
    body: dict[str, Any] = {
        "model": request.upstream_model,
        "prompt": request.prompt,
        "duration": request.duration_seconds,
        "resolution": request.resolution.lower(),
    }
    if request.image is None:
        body["aspect_ratio"] = request.aspect_ratio
    else:
        # For image-to-video xAI ignores aspect_ratio and takes the image's own.
        body["image"] = {"url": _image_url(request.image)}
    return body


def edit_request(request: GenerationRequest) -> tuple[str, dict[str, Any]]:
    """The path and JSON body of an extension or an edit (xAI's REST reference,
    "Videos": ``video`` is "a public URL, a base64-encoded data URL, or a file_id";
    extensions take ``duration``, "the extension segment ... (2-10)")."""
    source = request.source
    assert source is not None
    video = {"url": f"data:{source.mime_type};base64,{base64.b64encode(source.data).decode()}"}
    body: dict[str, Any] = {"model": request.upstream_model, "prompt": request.prompt}
    body["video"] = video
    if source.edit == "extend":
        body["duration"] = request.duration_seconds
        return "/videos/extensions", body
    return "/videos/edits", body


def _image_url(image: ImageInput) -> str:
    """Inline bytes as a data URI (what reelgate validated is what xAI sees), else the URL."""
    if image.data is not None:
        mime = (image.mime_type or "").lower().replace("image/jpg", "image/jpeg")
        if mime not in _IMAGE_TYPES:
            raise InvalidRequest(
                f"xAI takes JPEG, PNG or WebP images, not {mime or 'an untyped image'}",
                code="invalid_image",
            )
        return f"data:{mime};base64,{base64.b64encode(image.data).decode('ascii')}"
    if image.url:
        return image.url
    raise InvalidRequest("the image has neither bytes nor a URL", code="invalid_image")


def _error_text(body: Any) -> str:
    """The human text of xAI's envelope, ``{"code", "error": "..."}``, or an OpenAI-style one."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    message = body.get("message")
    return message if isinstance(message, str) else ""


def _classify(status: int, body: Any) -> ProviderError | None:
    """xAI's own signals first; None hands 429, 5xx and timeouts to the shared defaults."""
    text = _error_text(body)
    if status == 401 or (status == 400 and _BAD_KEY.search(text)):
        return _auth_error(status)
    if status == 403:
        if _BILLING.search(text):
            return QuotaExceeded(text, code="upstream_credits", upstream_status=status)
        return _auth_error(status)
    if status == 429 or status >= 500 or status in (408, 409, 425):
        return None
    if 400 <= status < 500:
        if _MODERATION.search(text):
            return _refusal(text, status)
        return InvalidRequest(
            text or f"xAI rejected the request (HTTP {status})", upstream_status=status
        )
    return None


def _classify_download(status: int, body: Any) -> ProviderError | None:
    if status in (403, 404, 410):
        return InvalidRequest(
            f"the xAI video link has expired or is gone (HTTP {status})",
            code="result_expired",
            upstream_status=status,
        )
    return None


def _auth_error(status: int) -> InvalidRequest:
    return InvalidRequest(
        f"xAI rejected the API key (HTTP {status}); check {KEY_SETTING} "
        "and that its team may use grok-imagine-video",
        code="upstream_auth",
        upstream_status=status,
    )


def _refusal(text: str, status: int | None) -> Refused:
    lowered = text.lower()
    if "image" in lowered and "generated image" not in lowered:
        return Refused(text, upstream_status=status, flagged="image")
    if "prompt" in lowered:
        return Refused(text, upstream_status=status, flagged="prompt")
    return Refused(text, upstream_status=status)


def _failure(error: Any, upstream_id: str) -> ProviderError:
    """A job that ended ``failed``: its VideoErrorCode decides the class."""
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    text = message if isinstance(message, str) and message else "xAI could not generate the video"
    if _MODERATION.search(text):
        return _refusal(text, None)
    if code in _INVALID_CODES:
        return InvalidRequest(text, upstream_id=upstream_id, upstream_code=code)
    kind = "unknown" if code is None else str(code)
    return TransientError(text, upstream_id=upstream_id, upstream_code=kind, terminal=True)


def _progress(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(0, min(99, int(value)))


USD_TICKS = 10_000_000_000
"""xAI's MediaUsage: ``cost_in_usd_ticks``, 10^10 ticks to the US dollar (the CometAPI
sample in tests/fixtures/wire/grok/poll-done-with-usage.json: 500000000 = $0.05 for 1 s
at 480p)."""


def _cost_usd(data: Mapping[str, Any]) -> str | None:
    """xAI's own cost figure for the job as an exact USD decimal string, if it gave one."""
    usage = data.get("usage")
    ticks = usage.get("cost_in_usd_ticks") if isinstance(usage, dict) else None
    if isinstance(ticks, bool) or not isinstance(ticks, int) or ticks < 0:
        return None
    return str(Decimal(ticks) / USD_TICKS)


def _usage(data: Mapping[str, Any]) -> dict[str, object]:
    usage = data.get("usage")
    ticks = usage.get("cost_in_usd_ticks") if isinstance(usage, dict) else None
    extra: dict[str, object] = {}
    if isinstance(ticks, int):
        extra["cost_in_usd_ticks"] = ticks
    if isinstance(data.get("model"), str):
        extra["upstream_model"] = data["model"]
    return extra
