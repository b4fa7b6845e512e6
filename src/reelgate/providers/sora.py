"""OpenAI Sora 2 through the Videos API, on api.openai.com or an Azure OpenAI v1 endpoint.

Wire format (openai-python ``resources/videos.py``, ``types/video*.py``; see
``docs/providers/sora.md`` for every source):

    POST   /videos                JSON, or multipart with an ``input_reference`` file
    GET    /videos/{id}           status queued | in_progress | completed | failed,
                                  progress 0-100, error {code, message, param?}
    GET    /videos/{id}/content   the MP4 (``?variant=video``), with the same credential
    GET    /videos                the project's recent videos (``after``/``limit``/``order``):
                                  where a create whose answer was lost is looked for
    DELETE /videos/{id}           documented for completed or failed videos only

Sora has no idempotency header and no way to stop a running render, so
``idempotent_create`` and ``supports_cancel`` are both False. OpenAI shut this API
down on 2026-09-24 and Azure retired sora-2 on 2026-10-15 (the catalog's routes say
so); the same shape is served by OpenAI-compatible upstreams (``compatible``: a
bearer key, any base URL). Azure sends the key in ``api-key``. A 404 or 410 to a
create (the path names no video, so the model or deployment is what is missing:
``model_not_found``, Azure's "The API deployment ... does not exist", Azure's 410
for a retired model) is ``ModelGone``: the job falls back. A 429's
``retry-after-ms`` is read before ``Retry-After`` (``providers.http``).

This module must never log, return or format the API key: the upstream's own
401 message quotes part of the key, so it is never passed on.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import Field, SecretStr

from reelgate.errors import (
    InvalidRequest,
    ModelGone,
    ProviderError,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.providers import standard_webhooks
from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
    WebhookCall,
    WebhookRejected,
)
from reelgate.providers.http import (
    Classifier,
    HttpDeployment,
    new_client,
    request_json,
    request_json_answer,
    stream_download,
)
from reelgate.providers.plugin import BuildContext, Capabilities, ProviderPlugin, ProviderSettings

__all__ = [
    "MODERATION_CODES",
    "PLUGIN",
    "ApiStyle",
    "SoraProvider",
    "SoraSettings",
]

ApiStyle = Literal["openai", "azure", "compatible"]

MODERATION_CODES = frozenset(
    {
        "moderation_blocked",  # OpenAI's safety system (create 400, or a failed video's error)
        "content_policy_violation",  # older OpenAI media endpoints
        "content_filter",  # Azure OpenAI content filtering
        "ResponsibleAIPolicyViolation",  # Azure's innererror code for the same
    }
)
VIDEO_EVENTS = frozenset({"video.completed", "video.failed"})
"""The webhook events about a video (openai-python ``webhook_create_params.py``)."""
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_*.\-]{3,}|[A-Za-z0-9]{3}\*{3,}[A-Za-z0-9]{2,})")
_IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


class SoraProvider:
    """One Videos API deployment (OpenAI or Azure OpenAI)."""

    name = "sora"
    supports_cancel = False
    """The API documents DELETE for completed or failed videos only; a render cannot be stopped."""
    idempotent_create = False
    """The API takes no idempotency key: a create re-sent after a crash starts a second video."""

    per_job_callbacks = False
    """OpenAI sends ``video.completed`` / ``video.failed`` to the project's webhook
    endpoints (set in its dashboard or with ``POST /v1/webhooks``), never per request."""

    def __init__(
        self,
        deployment: HttpDeployment,
        *,
        api_style: ApiStyle = "openai",
        webhook_secret: str = "",
    ) -> None:
        self._deployment = deployment
        self._style = api_style
        self._webhook_secret = webhook_secret
        self.receives_webhooks = bool(webhook_secret)
        """Only once the operator has registered reelgate's endpoint and set its secret."""
        self.route: str = api_style
        self._base = deployment.base_url.rstrip("/")
        auth = (
            {"api-key": deployment.api_key}
            if api_style == "azure"
            else {"Authorization": f"Bearer {deployment.api_key}"}
        )
        self._client = new_client(deployment, auth)
        self._client.event_hooks = {"request": [self._strip_foreign_credentials]}

    def __repr__(self) -> str:
        return f"SoraProvider({self._deployment!r}, api_style={self._style!r})"

    async def create(self, request: GenerationRequest) -> Submitted:
        if request.negative_prompt:
            raise InvalidRequest("Sora takes no negative_prompt", code="unsupported_parameter")
        if request.seed is not None:
            raise InvalidRequest("Sora takes no seed", code="unsupported_parameter")
        fields = {
            "model": request.upstream_model,
            "prompt": request.prompt,
            "seconds": str(request.duration_seconds),
            "size": f"{request.width}x{request.height}",
        }
        kwargs: dict[str, Any] = {"json": fields}
        if request.image is not None:
            kwargs = await _with_image(fields, request.image, request.width, request.height)
        classify = self._classifier(has_image=request.image is not None)
        body = await self._call("POST", "/videos", classify, **kwargs)
        video_id = body.get("id")
        if not isinstance(video_id, str) or not video_id:
            # a 2xx: the video may exist, we just cannot name it
            raise TransientError(
                "the create answer carries no video id", code="malformed", ambiguous=True
            )
        if body.get("status") == "failed":
            raise _failure(body.get("error"), video_id)
        return Submitted(video_id)

    async def verify(self) -> None:
        """The credential check of ``reelgate providers check``: list one video."""
        await self._call("GET", "/videos", self._classify, params={"limit": 1})

    async def status(self, upstream_id: str) -> UpstreamStatus:
        body, headers = await request_json_answer(
            self._client, "GET", f"/videos/{quote(upstream_id, safe='')}", classify=self._classify
        )
        if not isinstance(body, dict):
            raise TransientError("the answer is not a JSON object", code="malformed")
        state = body.get("status")
        progress = _progress(body.get("progress"))
        # openai-python's ``videos.poll`` waits what ``openai-poll-after-ms`` says
        # (``resources/videos.py``): the engine does the same
        after = _poll_after(headers.get("openai-poll-after-ms"))
        if state == "queued":
            return UpstreamStatus(
                UpstreamState.PENDING, progress=progress, poll_after_seconds=after
            )
        if state == "in_progress":
            return UpstreamStatus(
                UpstreamState.RUNNING, progress=progress, poll_after_seconds=after
            )
        if state == "completed":
            return UpstreamStatus(
                UpstreamState.SUCCEEDED,
                progress=100,
                result=ResultLocation(
                    url=self._content_url(upstream_id),
                    expires_at=_timestamp(body.get("expires_at")),
                ),
                duration_seconds=_seconds(body.get("seconds")),
                extra={"size": body.get("size"), "model": body.get("model")},
            )
        if state == "failed":
            raise _failure(body.get("error"), upstream_id)
        raise TransientError(f"unknown video status {state!r}", code="malformed")

    async def find_created(
        self, request: GenerationRequest, since: datetime, exclude: frozenset[str]
    ) -> list[str]:
        """Videos created since ``since`` that match ``request``: ``GET /videos`` newest
        first, 100 a page, paged by ``after`` (openai-python ``videos.list``; the API has
        no time or model filter, and no client reference to match on). A match has the
        same model (or a dated snapshot of it), prompt, seconds and size."""
        floor = since.timestamp()
        seconds, size = str(request.duration_seconds), f"{request.width}x{request.height}"
        found: list[tuple[float, str]] = []
        after: str | None = None
        for _page in range(_LIST_PAGES):
            params = {"order": "desc", "limit": "100", **({"after": after} if after else {})}
            body = await self._call("GET", "/videos", self._classify, params=params)
            items = body.get("data")
            if not isinstance(items, list):
                raise TransientError("the video list carries no data", code="malformed")
            oldest = None
            for item in items:
                if not isinstance(item, dict):
                    continue
                created = item.get("created_at")
                oldest = created if isinstance(created, int | float) else oldest
                if not (
                    isinstance(created, int | float)
                    and created >= floor
                    and isinstance(item.get("id"), str)
                    and item["id"] not in exclude
                    and _same_model(item.get("model"), request.upstream_model)
                    and item.get("seconds") == seconds
                    and item.get("size") == size
                ):
                    continue
                if item.get("prompt") is None:
                    # the field is optional: a candidate we cannot tell apart is never
                    # taken for "not there" (that would re-send the create)
                    raise TransientError(
                        "a listed video shows no prompt; looking again later",
                        code="lookup_pending",
                    )
                if item["prompt"] == request.prompt:
                    found.append((float(created), item["id"]))
            after = body.get("last_id") if isinstance(body.get("last_id"), str) else None
            if not body.get("has_more") or after is None or oldest is None or oldest < floor:
                return [video_id for _created, video_id in sorted(found)]
        raise TransientError(
            f"more than {_LIST_PAGES * 100} videos since the lost create; not searched to the end",
            code="lookup_incomplete",
        )

    async def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookCall:
        """An OpenAI webhook event (Standard Webhooks, openai-python ``lib/_webhooks.py``;
        events per the API reference "Webhook Events": ``{"id": "evt_…", "object":
        "event", "created_at", "type": "video.completed" | "video.failed", "data": {"id":
        "video_…"}}``). It names the video only, so the job is polled at once for it."""
        signed = standard_webhooks.verify(
            self._webhook_secret, headers, body, now, raw_allowed=True
        )
        try:
            event = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise WebhookRejected("the webhook body is not JSON") from None
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise WebhookRejected("the webhook body is not an OpenAI event")
        return WebhookCall(
            upstream_id=data["id"],
            delivery_id=signed.delivery_id,
            sent_at=signed.sent_at,
            final=event.get("type") in VIDEO_EVENTS,
        )

    async def cancel(self, upstream_id: str) -> None:
        """Delete the video upstream. The API documents this for completed or failed
        videos only, so for a running one it frees nothing and answers an error."""
        await self._call("DELETE", f"/videos/{quote(upstream_id, safe='')}", self._classify)

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        if not _same_deployment(result.url, self._base):
            # Our client carries the key in its default headers: never point it elsewhere.
            raise InvalidRequest("not a result of this Sora deployment", code="foreign_result")
        async for chunk in stream_download(
            self._client,
            result.url,
            rules=self._deployment.downloads,
            classify=_classify_download,
        ):
            yield chunk

    async def aclose(self) -> None:
        await self._client.aclose()

    def _content_url(self, upstream_id: str) -> str:
        return f"{self._base}/videos/{quote(upstream_id, safe='')}/content?variant=video"

    async def _call(
        self, method: str, path: str, classify: Classifier, **kwargs: Any
    ) -> dict[str, Any]:
        body = await request_json(self._client, method, path, classify=classify, **kwargs)
        if not isinstance(body, dict):
            raise TransientError("the answer is not a JSON object", code="malformed")
        return body

    def _classifier(self, *, has_image: bool) -> Classifier:
        """A create's answers: also "the model is not served here" (ModelGone)."""

        def classify(status: int, body: Any) -> ProviderError | None:
            if status in (404, 410):
                error = _error_fields(body)
                said = str(error.get("message") or f"HTTP {status}")
                gone = ModelGone(_scrub(said, self._deployment.api_key), upstream_status=status)
                if error.get("code"):
                    gone.details["upstream_code"] = str(error["code"])
                return gone
            return _classify(status, body, self._style, self._deployment.api_key, has_image)

        return classify

    def _classify(self, status: int, body: Any) -> ProviderError | None:
        return _classify(status, body, self._style, self._deployment.api_key, None)

    async def _strip_foreign_credentials(self, request: httpx.Request) -> None:
        """A redirect to another host (a CDN link, say) must not carry our key; httpx
        drops ``Authorization`` across origins itself, but not Azure's ``api-key``."""
        if not _same_origin(str(request.url), self._base):
            request.headers.pop("authorization", None)
            request.headers.pop("api-key", None)


_LIST_PAGES = 10
"""At most 1,000 recent videos are searched for a lost create."""


def _same_model(listed: object, sent: str) -> bool:
    """The list may name a dated snapshot (``sora-2-2025-12-08``) of the model sent."""
    return isinstance(listed, str) and (listed == sent or listed.startswith(f"{sent}-"))


class SoraSettings(ProviderSettings):
    """OpenAI's Videos API, or an Azure OpenAI deployment of it (``openai_api_style``)."""

    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_style: str = Field(default="openai", pattern="^(openai|azure|compatible)$")
    """The route: ``openai`` (api.openai.com, shut down 2026-09-24), ``azure`` (the key in
    the ``api-key`` header; sora-2 retired 2026-10-15) or ``compatible`` (any upstream
    that serves the Videos API shape with a bearer key)."""
    openai_webhook_secret: SecretStr | None = None
    """The signing secret of a webhook endpoint registered with the upstream project for
    ``video.completed`` and ``video.failed`` at ``{REELGATE_PUBLIC_URL}/v1/provider-hooks/sora``
    (``whsec_…``). Set, jobs are polled only as a safety net; unset, they are polled."""


def build(settings: SoraSettings, context: BuildContext) -> SoraProvider | None:
    """The configured deployment, or None when ``REELGATE_OPENAI_API_KEY`` is unset."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    if not key:
        return None
    deployment = HttpDeployment(
        base_url=settings.openai_base_url,
        api_key=key,
        timeout_seconds=context.timeout_seconds,
        downloads=context.downloads,
    )
    styles: dict[str, ApiStyle] = {"azure": "azure", "compatible": "compatible"}
    secret = (
        settings.openai_webhook_secret.get_secret_value().strip()
        if settings.openai_webhook_secret
        else ""
    )
    return SoraProvider(
        deployment,
        api_style=styles.get(settings.openai_api_style, "openai"),
        webhook_secret=secret,
    )


PLUGIN = ProviderPlugin(
    kind="sora",
    settings=SoraSettings,
    build=build,
    setup_hint="set REELGATE_OPENAI_API_KEY",
    capabilities=Capabilities(
        cancel=False, idempotent_create=False, finds_lost_creates=True, inbound_webhooks=True
    ),
    default_base_url="https://api.openai.com/v1",
    key_setting="openai_api_key",
    base_url_setting="openai_base_url",
    emulator="reelgate.emulators.sora",
    emulator_base_path="/v1",
    emulator_extra={"openai_api_style": "compatible"},
    emulator_webhook_setting="openai_webhook_secret",
)


async def _with_image(
    fields: Mapping[str, str], image: ImageInput, width: int, height: int
) -> dict[str, Any]:
    """The multipart form for image-to-video. The API rejects a reference whose size
    differs from ``size``, so the image is cropped and scaled to it first."""
    if image.data is None:
        if not image.url:
            raise InvalidRequest(
                "the input image has neither bytes nor a URL", code="invalid_image"
            )
        return {"json": {**fields, "input_reference": {"image_url": image.url}}}
    data, mime = await asyncio.to_thread(_fit_image, image.data, image.mime_type, width, height)
    extension = mime.split("/")[1].replace("jpeg", "jpg")
    return {
        "data": dict(fields),
        "files": {"input_reference": (f"reference.{extension}", data, mime)},
    }


def _fit_image(data: bytes, mime: str | None, width: int, height: int) -> tuple[bytes, str]:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            source_format = opened.format or ""
            picture = ImageOps.exif_transpose(opened)
            picture.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidRequest(
            "the input image is not a readable image", code="invalid_image"
        ) from exc
    mime = mime if mime in _IMAGE_FORMATS else "image/png"
    if picture.size == (width, height) and source_format == _IMAGE_FORMATS[mime]:
        return data, mime
    fitted = ImageOps.fit(picture, (width, height), method=Image.Resampling.LANCZOS)
    if mime == "image/jpeg" and fitted.mode != "RGB":
        fitted = fitted.convert("RGB")
    out = io.BytesIO()
    fitted.save(out, format=_IMAGE_FORMATS[mime])
    return out.getvalue(), mime


def _error_fields(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return dict(body["error"])
    return {}


def _scrub(message: str, api_key: str) -> str:
    """Drop the key, and anything shaped like a key or a masked key, from a message."""
    if api_key:
        message = message.replace(api_key, "***")
    return _KEYLIKE.sub("***", message)


def _classify(
    status: int, body: Any, style: ApiStyle, api_key: str, has_image: bool | None
) -> ProviderError | None:
    """The Videos API's own signals; None leaves 429/5xx/other 4xx to the shared defaults."""
    error = _error_fields(body)
    code = str(error.get("code") or "")
    inner = error.get("innererror")
    inner_code = str(inner.get("code") or "") if isinstance(inner, dict) else ""
    message = _scrub(str(error.get("message") or f"HTTP {status}"), api_key)
    if status == 401:
        return InvalidRequest(
            _auth_message(style, status), code="upstream_auth", upstream_status=401
        )
    if status == 403:
        return InvalidRequest(
            f"{_auth_message(style, status)} Upstream said: {message}",
            code="upstream_auth",
            upstream_status=403,
        )
    if code in MODERATION_CODES or inner_code in MODERATION_CODES:
        return Refused(
            message,
            upstream_status=status,
            upstream_code=code or inner_code,
            **_flagged(error.get("param"), has_image),
        )
    if code in _QUOTA_CODES and status != 429:  # a 429 keeps the defaults' Retry-After
        return QuotaExceeded(message, upstream_status=status, upstream_code=code)
    return None


def _classify_download(status: int, body: Any) -> ProviderError | None:
    if status in (401, 403):
        return InvalidRequest(
            "the upstream refused the result download; check REELGATE_OPENAI_API_KEY",
            code="upstream_auth",
            upstream_status=status,
        )
    if status in (404, 410):
        return InvalidRequest(
            "the upstream result is gone (Sora keeps generated files for a limited time)",
            code="result_expired",
            upstream_status=status,
        )
    return None


def _auth_message(style: ApiStyle, status: int) -> str:
    if style == "azure":
        return (
            f"Azure OpenAI rejected the credential (HTTP {status}): check REELGATE_OPENAI_API_KEY "
            "and that REELGATE_OPENAI_BASE_URL is the resource's .../openai/v1 endpoint."
        )
    return (
        f"OpenAI rejected the API key (HTTP {status}): check REELGATE_OPENAI_API_KEY "
        "(and that its project may use the Sora models)."
    )


def _flagged(param: Any, has_image: bool | None) -> dict[str, Any]:
    """Which input the refusal is about, when the upstream says so, or when the prompt
    was the only input there was."""
    if param == "input_reference":
        return {"flagged": "image"}
    if param == "prompt" or has_image is False:
        return {"flagged": "prompt"}
    return {}


def _failure(error: Any, video_id: str) -> ProviderError:
    """A video that ended ``failed``: a moderation code is a refusal; anything else is
    the upstream's own failure, which another model (or a resubmission) may get past."""
    fields = dict(error) if isinstance(error, dict) else {}
    code = str(fields.get("code") or "")
    message = str(fields.get("message") or "the video generation failed upstream")
    if code in MODERATION_CODES:
        return Refused(
            message, upstream_code=code, upstream_id=video_id, **_flagged(fields.get("param"), None)
        )
    return TransientError(
        message,
        code="upstream_failed",
        upstream_code=code or None,
        upstream_id=video_id,
        terminal=True,
    )


def _poll_after(value: str | None) -> float | None:
    """``openai-poll-after-ms``: whole milliseconds (anything else is no hint)."""
    if value is None or not re.fullmatch(r"[0-9]{1,9}", value.strip()):
        return None
    return int(value.strip()) / 1000


def _progress(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(0, min(100, int(value)))


def _seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _same_deployment(url: str, base: str) -> bool:
    return _same_origin(url, base) and urlsplit(url).path.startswith(urlsplit(base).path + "/")
