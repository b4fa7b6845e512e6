"""fal.ai's model APIs over its queue (``https://queue.fal.run``), with signed webhooks.

The wire format, as fal's own clients and docs speak it (sources and open points in
``docs/providers/fal.md``; wire examples in ``tests/fixtures/wire/fal/``)::

    POST {queue}/{app_id}[?fal_webhook=<url>]      body = the app's own input
        -> 200 {"request_id", "response_url", "status_url", "cancel_url"}
    GET  {queue}/{owner}/{alias}/requests/{id}/status?logs=1
        -> 202 {"status": "IN_QUEUE", "queue_position", ...}
           202 {"status": "IN_PROGRESS", "logs": [...], ...}
           200 {"status": "COMPLETED", "logs", "metrics", "error"?, "error_type"?}
    GET  {queue}/{owner}/{alias}/requests/{id}     -> the app's output
                                                      ({"video": {"url", ...}, "seed"...})
                                                      or the request's own error answer
    PUT  {queue}/{owner}/{alias}/requests/{id}/cancel
        -> 202 {"status": "CANCELLATION_REQUESTED"} | 400 {"status": "ALREADY_COMPLETED"}

- Paths: the queue docs (https://docs.fal.ai/model-apis/model-endpoints/queue.md, copied
  in the public code index, file id 34723797799): "The subpath ... should be used when
  making the request, but not when getting request status or results". fal_client
  (fal-ai/fal@c6f0afaaceec981d2461474a81467552adb0b084
  ``projects/fal_client/src/fal_client/client.py``, ``AppId.from_endpoint_id`` and
  ``AsyncRequestHandle.from_request_id``) builds the status, result and cancel URLs from
  ``{namespace/}{owner}/{alias}/requests/{id}``; so does this adapter, and its upstream
  id is that path (``fal-ai/kling-video/requests/<uuid>``).
- ``Authorization: Key <FAL_KEY>`` (fal_client ``auth.py``; the queue docs' curl).
- Status words ``IN_QUEUE`` (with ``queue_position``), ``IN_PROGRESS`` (``logs`` when
  ``logs=1``), ``COMPLETED`` (fal_client ``_parse_status``; a finished request that
  failed carries ``error`` and ``error_type``); fal gives no progress percentage.
  "The API returns 202 while the request is in the queue or in progress, and 200 when it
  is complete" (https://fal.ai/docs/api-reference/inference-api).
- Errors (fal_client ``_raise_for_status`` reads ``detail`` and ``error_type``, or the
  ``X-Fal-Error-Type`` header): model errors are 422 with ``detail`` a list of
  ``{"loc", "msg", "type", ...}``; a safety refusal is the type
  ``content_policy_violation`` (https://fal.ai/docs/documentation/model-apis/errors.md);
  infrastructure errors are ``{"detail": "<text>", "error_type"}`` (504
  ``request_timeout``, 503 ``runner_disconnected``...:
  https://fal.ai/docs/documentation/model-apis/request-errors.md). A wrong key is 401
  ``{"detail": "No user found for Key ID and Secret"}``; an exhausted balance 403
  ``{"detail": "User is locked. Reason: Exhausted balance. Top up your balance at
  fal.ai/dashboard/billing"}`` (both quoted in public projects, see the docs page);
  a concurrency limit is a 429 the queue itself retries
  (https://docs.fal.ai/model-apis/model-endpoints/reliability).
- Webhooks (https://docs.fal.ai/model-apis/model-endpoints/webhooks.md): ``fal_webhook``
  query parameter at submit; fal POSTs ``{"request_id", "gateway_request_id", "status":
  "OK"|"ERROR", "payload", "error"?, "payload_error"?}`` and signs it with ED25519 over
  ``request_id \\n user_id \\n timestamp \\n sha256hex(body)`` (headers
  ``X-Fal-Webhook-Request-Id``, ``-User-Id``, ``-Timestamp``, ``-Signature`` in hex), with
  the public keys of the JWKS at ``https://rest.alpha.fal.ai/.well-known/jwks.json``
  ("Do not cache longer than 24 hours"), a timestamp within ±300 s, and *every* key of
  the set tried in turn: fal's headers name no key id.

fal takes no idempotency key (``idempotent_create`` is False). This module never logs
the key, never puts it in a URL and never sends it to a result host.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
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
    GenerationRequest,
    ImageInput,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
    WebhookCall,
    WebhookRejected,
    WebhookUnverifiable,
    signed_at,
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

__all__ = [
    "APPS",
    "FAL_JWKS_URL",
    "FAL_PLATFORM_URL",
    "FAL_QUEUE_URL",
    "PLUGIN",
    "FalApp",
    "FalEndpoint",
    "FalProvider",
    "FalSettings",
    "app_base",
    "input_for",
]

FAL_QUEUE_URL = "https://queue.fal.run"
FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
"""The webhook keys (fal's webhook docs; their Python and JavaScript samples)."""
FAL_PLATFORM_URL = "https://api.fal.ai"
"""fal's Platform API (``GET /v1/models``: every endpoint, its metadata and, with
``expand=openapi-3.0``, its OpenAPI document)."""
JWKS_TTL = timedelta(hours=24)
""""Do not cache longer than 24 hours since they can change" (fal's webhook docs)."""
JWKS_MIN_REFETCH_SECONDS = 60.0
"""A call no cached key verifies refetches the set once, at most this often (a stream
of forged calls must not turn into a stream of fetches)."""
KEY_SETTING = "REELGATE_FAL_API_KEY"
APP_NAMESPACES = ("workflows", "comfy")
"""fal_client ``APP_NAMESPACES``: ids under these carry one more path part."""

DurationFormat = Literal["string", "int", "seconds_suffix", "frames", "none"]


@dataclass(frozen=True)
class FalEndpoint:
    """One fal app's input, as its OpenAPI schema gives it (fal-ai/fal-js
    ``libs/client/src/types/endpoints.ts``, generated from those schemas)."""

    app_id: str
    durations: tuple[int, ...]
    """Seconds the app takes (for ``frames``: the seconds reelgate offers)."""
    duration_format: DurationFormat = "string"
    """``"5"`` (string enum), ``5`` (integer), ``"8s"``, ``num_frames`` at ``fps``, or
    no duration field at all."""
    resolutions: tuple[str, ...] = ()
    """The app's own resolution words (``"768P"``, ``"4k"``); empty: no such field."""
    aspect_ratios: tuple[str, ...] = ()
    """Empty: no ``aspect_ratio`` field (the image decides, or the app has one shape)."""
    negative_prompt: bool = False
    seed: bool = False
    image_field: str | None = None
    """The image input of an image-to-video app; None for text-to-video."""
    fps: int = 24
    """For ``frames``: frames per second of the app's output (its ``frame_rate``)."""
    max_frames: int = 1441


@dataclass(frozen=True)
class FalApp:
    """A model on fal: its text-to-video app, its image-to-video app, its price."""

    name: str
    t2v: FalEndpoint
    i2v: FalEndpoint | None
    usd_per_second: float | None
    """At the default shape; None where no fal price page was found (see the docs)."""
    price_note: str
    source: str
    date: str


_SEEDANCE_RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
_SEEDANCE_SECONDS = tuple(range(2, 13))
_LUMA_RATIOS = ("16:9", "9:16", "4:3", "3:4", "21:9", "9:21")
_PAGE = "https://fal.ai/models/{}/llms.txt; "
_FALJS = "fal-ai/fal-js@381105e138b85502b528fb8f6c16d909e30e462a libs/client/src/types/endpoints.ts"

APPS: dict[str, FalApp] = {
    app.t2v.app_id: app
    for app in (
        FalApp(
            name="Kling 2.5 Turbo Pro",
            t2v=FalEndpoint(
                "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
                durations=(5, 10),
                aspect_ratios=("16:9", "9:16", "1:1"),
                negative_prompt=True,
            ),
            i2v=FalEndpoint(
                "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
                durations=(5, 10),
                negative_prompt=True,
                image_field="image_url",
            ),
            usd_per_second=0.07,
            price_note="$0.35 for 5 s, $0.07 each further second",
            source=_PAGE.format("fal-ai/kling-video/v2.5-turbo/pro/image-to-video") + _FALJS,
            date="2026-08-02",
        ),
        FalApp(
            name="Seedance 1.0 Pro",
            t2v=FalEndpoint(
                "fal-ai/bytedance/seedance/v1/pro/text-to-video",
                durations=_SEEDANCE_SECONDS,
                resolutions=("480p", "720p", "1080p"),
                aspect_ratios=_SEEDANCE_RATIOS,
                seed=True,
            ),
            i2v=FalEndpoint(
                "fal-ai/bytedance/seedance/v1/pro/image-to-video",
                durations=_SEEDANCE_SECONDS,
                resolutions=("480p", "720p", "1080p"),
                aspect_ratios=(*_SEEDANCE_RATIOS, "auto"),
                seed=True,
                image_field="image_url",
            ),
            usd_per_second=0.124,
            price_note="~$0.62 per 1080p 5 s clip; $2.5 per million video tokens, "
            "tokens = height x width x fps x seconds / 1024",
            source=_PAGE.format("fal-ai/bytedance/seedance/v1/pro/image-to-video") + _FALJS,
            date="2026-08-02",
        ),
        FalApp(
            name="MiniMax Hailuo 02 Standard",
            t2v=FalEndpoint(
                "fal-ai/minimax/hailuo-02/standard/text-to-video",
                durations=(6, 10),
            ),
            i2v=FalEndpoint(
                "fal-ai/minimax/hailuo-02/standard/image-to-video",
                durations=(6, 10),
                resolutions=("512P", "768P"),
                image_field="image_url",
            ),
            usd_per_second=0.045,
            price_note="$0.045/s at 768P, ~$0.017/s at 512P; $0.27 per 6 s 768P clip",
            source=_PAGE.format("fal-ai/minimax/hailuo-02/standard/image-to-video") + _FALJS,
            date="2026-08-02",
        ),
        FalApp(
            name="Luma Ray 2",
            t2v=FalEndpoint(
                "fal-ai/luma-dream-machine/ray-2",
                durations=(5, 9),
                duration_format="seconds_suffix",
                resolutions=("540p", "720p", "1080p"),
                aspect_ratios=_LUMA_RATIOS,
            ),
            i2v=FalEndpoint(
                "fal-ai/luma-dream-machine/ray-2/image-to-video",
                durations=(5, 9),
                duration_format="seconds_suffix",
                resolutions=("540p", "720p", "1080p"),
                aspect_ratios=_LUMA_RATIOS,
                image_field="image_url",
            ),
            usd_per_second=0.10,
            price_note="$0.50 per 5 s at 540p (third-party); the schema: 9 s costs 2x, "
            "720p 2x, 1080p 4x",
            source=_FALJS + "; keigit.com KeiSeiKit api-fal-ai.md (third-party price)",
            date="2026-08-02",
        ),
        FalApp(
            name="LTX Video 13B 0.9.8 distilled",
            t2v=FalEndpoint(
                "fal-ai/ltxv-13b-098-distilled",
                durations=(5,),
                duration_format="frames",
                resolutions=("480p", "720p"),
                aspect_ratios=("9:16", "1:1", "16:9"),
                negative_prompt=True,
                seed=True,
            ),
            i2v=FalEndpoint(
                "fal-ai/ltxv-13b-098-distilled/image-to-video",
                durations=(5,),
                duration_format="frames",
                resolutions=("480p", "720p"),
                aspect_ratios=("9:16", "1:1", "16:9", "auto"),
                negative_prompt=True,
                seed=True,
                image_field="image_url",
            ),
            usd_per_second=None,
            price_note="no fal price page in the sources",
            source=_FALJS,
            date="2026-08-02",
        ),
        FalApp(
            name="PixVerse v5",
            t2v=FalEndpoint(
                "fal-ai/pixverse/v5/text-to-video",
                durations=(5, 8),
                resolutions=("360p", "540p", "720p", "1080p"),
                aspect_ratios=("16:9", "4:3", "1:1", "3:4", "9:16"),
                negative_prompt=True,
                seed=True,
            ),
            i2v=FalEndpoint(
                "fal-ai/pixverse/v5/image-to-video",
                durations=(5, 8),
                resolutions=("360p", "540p", "720p", "1080p"),
                negative_prompt=True,
                seed=True,
                image_field="image_url",
            ),
            usd_per_second=None,
            price_note="no fal price page in the sources; 8 s costs double, 1080p 5 s only",
            source=_FALJS,
            date="2026-08-02",
        ),
        FalApp(
            name="Wan 2.5 (preview)",
            t2v=FalEndpoint(
                "fal-ai/wan-25-preview/text-to-video",
                durations=(5, 10),
                resolutions=("480p", "720p", "1080p"),
                aspect_ratios=("16:9", "9:16", "1:1"),
                negative_prompt=True,
                seed=True,
            ),
            i2v=FalEndpoint(
                "fal-ai/wan-25-preview/image-to-video",
                durations=(5, 10),
                resolutions=("480p", "720p", "1080p"),
                negative_prompt=True,
                seed=True,
                image_field="image_url",
            ),
            usd_per_second=None,
            price_note="no fal price page in the sources",
            source=_FALJS,
            date="2026-08-02",
        ),
        FalApp(
            name="Veo 3.1",
            t2v=FalEndpoint(
                "fal-ai/veo3.1",
                durations=(4, 6, 8),
                duration_format="seconds_suffix",
                resolutions=("720p", "1080p", "4k"),
                aspect_ratios=("16:9", "9:16"),
                negative_prompt=True,
                seed=True,
            ),
            i2v=FalEndpoint(
                "fal-ai/veo3.1/image-to-video",
                durations=(4, 6, 8),
                duration_format="seconds_suffix",
                resolutions=("720p", "1080p", "4k"),
                aspect_ratios=("auto", "16:9", "9:16"),
                negative_prompt=True,
                seed=True,
                image_field="image_url",
            ),
            usd_per_second=0.40,
            price_note="$0.40/s with audio (the default), $0.20/s without, at 720p/1080p; "
            "4k $0.60/s with audio, $0.40/s without",
            source="https://fal.ai/models/fal-ai/veo3.1/llms.txt; " + _FALJS,
            date="2026-08-02",
        ),
        FalApp(
            name="Veo 3.1 Fast",
            t2v=FalEndpoint(
                "fal-ai/veo3.1/fast",
                durations=(4, 6, 8),
                duration_format="seconds_suffix",
                resolutions=("720p", "1080p", "4k"),
                aspect_ratios=("16:9", "9:16"),
                negative_prompt=True,
                seed=True,
            ),
            i2v=FalEndpoint(
                "fal-ai/veo3.1/fast/image-to-video",
                durations=(4, 6, 8),
                duration_format="seconds_suffix",
                resolutions=("720p", "1080p", "4k"),
                aspect_ratios=("auto", "16:9", "9:16"),
                negative_prompt=True,
                seed=True,
                image_field="image_url",
            ),
            usd_per_second=0.15,
            price_note="$0.15/s with audio, $0.10/s without at 720p/1080p; 4k $0.35/$0.30 "
            "(the price of fal-ai/veo3.1/fast/first-last-frame-to-video: the text-to-video "
            "page was not in the sources)",
            source="https://fal.ai/models/fal-ai/veo3.1/fast/first-last-frame-to-video/llms.txt; "
            + _FALJS,
            date="2026-08-02",
        ),
    )
}
"""Every model this adapter knows, by its text-to-video app id (the catalog's upstream
model id). Input names and values from each app's schema; prices from fal's model pages
(dated by the snapshot they were read from)."""


def _generic(app_id: str) -> FalEndpoint:
    """An app not in ``APPS``: the field names most of fal's video apps share."""
    return FalEndpoint(
        app_id,
        durations=(),
        resolutions=("*",),
        aspect_ratios=("*",),
        image_field="image_url",
    )


def endpoint_for(request: GenerationRequest) -> FalEndpoint:
    """The app that serves ``request``: the model's image-to-video app when an image is
    given, else its text-to-video app."""
    app = APPS.get(request.upstream_model)
    if app is None:
        return _generic(request.upstream_model)
    if request.image is None:
        return app.t2v
    if app.i2v is None:
        raise InvalidRequest(f"{app.name} on fal takes no image", code="unsupported_parameter")
    return app.i2v


def input_for(request: GenerationRequest, endpoint: FalEndpoint) -> dict[str, Any]:
    """The app's input for ``request``, in the app's own names and value formats. A
    parameter the app lacks is not sent (the catalog refuses it before the job exists)."""
    body: dict[str, Any] = {"prompt": request.prompt}
    seconds = request.duration_seconds
    if endpoint.duration_format == "string":
        body["duration"] = str(seconds)
    elif endpoint.duration_format == "int":
        body["duration"] = seconds
    elif endpoint.duration_format == "seconds_suffix":
        body["duration"] = f"{seconds}s"
    elif endpoint.duration_format == "frames":
        # LTX counts frames (8k + 1; its default 121 is 5 s at 24 fps)
        body["num_frames"] = min(seconds * endpoint.fps + 1, endpoint.max_frames)
    if endpoint.resolutions:
        body["resolution"] = _resolution(request.resolution, endpoint.resolutions)
    if endpoint.aspect_ratios:
        body["aspect_ratio"] = request.aspect_ratio
    if endpoint.negative_prompt and request.negative_prompt:
        body["negative_prompt"] = request.negative_prompt
    if endpoint.seed and request.seed is not None:
        body["seed"] = request.seed
    if request.image is not None:
        if endpoint.image_field is None:
            raise InvalidRequest(f"{endpoint.app_id} takes no image", code="unsupported_parameter")
        body[endpoint.image_field] = _image_value(request.image)
    return body


def _resolution(asked: str, offered: tuple[str, ...]) -> str:
    """The app's own spelling of a resolution (``768P``, ``4k``), matched without case."""
    for word in offered:
        if word.lower() == asked.lower():
            return word
    return asked.lower()


def _image_value(image: ImageInput) -> str:
    """Inline bytes as a data URI (fal's apps take one wherever a URL goes: fal_client
    ``encode`` / the Wan 2.5 schema "publicly accessible or base64 data URI"), else the URL."""
    if image.data is not None:
        mime = (image.mime_type or "image/png").lower().replace("image/jpg", "image/jpeg")
        return f"data:{mime};base64,{base64.b64encode(image.data).decode('ascii')}"
    if image.url:
        return image.url
    raise InvalidRequest("the image has neither bytes nor a URL", code="invalid_image")


def app_base(app_id: str) -> str:
    """``{namespace/}{owner}/{alias}``: where an app's requests live (fal_client
    ``AppId.from_endpoint_id``; "The status, result, and cancel URLs use only the owner
    and the app", fal's Inference API page)."""
    parts = [p for p in app_id.strip("/").split("/") if p]
    if len(parts) < 2:
        raise InvalidRequest(
            f"{app_id!r} is not a fal app id (owner/app[/path])", code="unknown_model"
        )
    if parts[0] in APP_NAMESPACES and len(parts) >= 3:
        return "/".join(parts[:3])
    return "/".join(parts[:2])


_UPSTREAM_ID = re.compile(r"(?P<base>[\w.-]+(?:/[\w.-]+){1,2})/requests/(?P<id>[\w-]+)")


def request_id_of(upstream_id: str) -> str:
    """fal's own request id (the last part of this adapter's upstream id): what its
    webhooks and ``X-Fal-Webhook-Request-Id`` carry."""
    return upstream_id.rsplit("/", 1)[-1]


class FalProvider:
    """One fal deployment. Downloads use a second client that carries no credentials:
    fal's result files (fal.media) are public links, and the key must not travel there."""

    name = "fal"
    route = "fal"
    supports_cancel = True
    idempotent_create = False
    """fal takes no idempotency key: a re-sent submit is a second request."""
    receives_webhooks = True
    per_job_callbacks = True

    def __init__(
        self,
        deployment: HttpDeployment,
        *,
        jwks_url: str = FAL_JWKS_URL,
        jwks_ttl: timedelta = JWKS_TTL,
        jwks_min_refetch_seconds: float = JWKS_MIN_REFETCH_SECONDS,
    ) -> None:
        self._deployment = deployment
        auth = {"Authorization": f"Key {deployment.api_key}"} if deployment.api_key else {}
        self._client = new_client(deployment, auth)
        self._files = new_client(deployment, {})
        self._jwks = _Jwks(jwks_url, jwks_ttl.total_seconds(), jwks_min_refetch_seconds)

    def __repr__(self) -> str:
        return f"FalProvider({self._deployment!r})"

    # -- the queue ------------------------------------------------------------------

    async def create(self, request: GenerationRequest) -> Submitted:
        if request.native_input is not None:
            # a synced model: its own input, checked against its schema at submit
            endpoint = _generic(request.upstream_model)
            body = dict(request.native_input)
            if request.image is not None and request.native_image_field:
                body[request.native_image_field] = _image_value(request.image)
        else:
            endpoint = endpoint_for(request)
            body = input_for(request, endpoint)
        params = {"fal_webhook": request.callback_url} if request.callback_url else None
        try:
            data = await _call(
                self._client, "POST", "/" + _path(endpoint.app_id), json=body, params=params
            )
        except InvalidRequest as exc:
            if exc.upstream_status in (404, 410) and exc.code != "upstream_auth":
                # the submit path names nothing but the app: the app is what is missing
                raise ModelGone(
                    f"fal serves no app {endpoint.app_id!r} ({exc.message})",
                    upstream_status=exc.upstream_status,
                ) from None
            raise
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if not isinstance(request_id, str) or not re.fullmatch(r"[\w-]+", request_id):
            raise TransientError(
                "fal accepted the request but answered no usable request_id", ambiguous=True
            )
        return Submitted(f"{app_base(endpoint.app_id)}/requests/{request_id}")

    async def status(self, upstream_id: str) -> UpstreamStatus:
        path = _request_path(upstream_id)
        data = await _call(self._client, "GET", f"{path}/status", params={"logs": "1"})
        if not isinstance(data, dict):
            raise TransientError("fal answered a request status that is not a JSON object")
        word = data.get("status")
        extra: dict[str, object] = {}
        if word == "IN_QUEUE":
            position = data.get("queue_position")
            if isinstance(position, int) and not isinstance(position, bool):
                extra["queue_position"] = position
            return UpstreamStatus(UpstreamState.PENDING, extra=extra)
        if word == "IN_PROGRESS":
            logs = data.get("logs")
            if isinstance(logs, list) and logs:
                last = logs[-1]
                if isinstance(last, dict) and isinstance(last.get("message"), str):
                    extra["last_log"] = last["message"][:200]
            return UpstreamStatus(UpstreamState.RUNNING, extra=extra)
        if word == "COMPLETED":
            return await self._completed(data, upstream_id)
        raise TransientError(f"fal answered an unknown request status {word!r}")

    async def _completed(self, status: Mapping[str, Any], upstream_id: str) -> UpstreamStatus:
        """A finished request: its result, or its own failure (always final)."""
        failed = bool(status.get("error") or status.get("error_type"))
        if failed and "cancel" in f"{status.get('error')} {status.get('error_type')}".lower():
            raise _status_failure(status, upstream_id)
        path = _request_path(upstream_id)
        try:
            result = await _call(self._client, "GET", path)
        except ProviderError as exc:
            if failed or exc.error_class.value in ("refused", "invalid"):
                if exc.code == "upstream_auth":
                    raise
                raise _final(exc, status, upstream_id) from None
            raise
        if failed:
            raise _status_failure(status, upstream_id)
        return _finished(result, status, upstream_id)

    async def cancel(self, upstream_id: str) -> None:
        """Best effort: fal cancels only a request still in the queue; one that already
        started or finished answers 400 ``ALREADY_COMPLETED`` (nothing left to cancel)."""
        path = _request_path(upstream_id)
        try:
            await _call(self._client, "PUT", f"{path}/cancel")
        except InvalidRequest as exc:
            if exc.upstream_status == 400 and "ALREADY_COMPLETED" in exc.message:
                return
            raise

    async def verify(self) -> None:
        """The credential check of ``reelgate providers check``: the status of a request
        that does not exist answers 404 once the key is accepted."""
        try:
            await self.status("fal-ai/veo3.1/requests/00000000-0000-0000-0000-000000000000")
        except ProviderError as exc:
            if not accepted_credential(exc):
                raise

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
        await self._jwks.aclose()

    # -- webhooks -------------------------------------------------------------------

    async def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookCall:
        """fal's verification, step by step as its webhook docs give it; then the body
        must be fal's webhook body about the same request."""
        names = ("request-id", "user-id", "timestamp", "signature")
        values = [headers.get(f"x-fal-webhook-{n}", "").strip() for n in names]
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise WebhookRejected(f"missing X-Fal-Webhook-{'/'.join(missing)} header")
        request_id, user_id, stamp, signature_hex = values
        sent_at = signed_at(stamp, now, "X-Fal-Webhook-Timestamp")
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise WebhookRejected("X-Fal-Webhook-Signature is not hexadecimal") from None
        if len(signature) != 64:
            raise WebhookRejected("X-Fal-Webhook-Signature is not an ED25519 signature")
        digest = hashlib.sha256(body).hexdigest()
        message = "\n".join((request_id, user_id, stamp, digest)).encode("utf-8")
        if not await self._jwks.verify(signature, message):
            raise WebhookRejected("no key of fal's JWKS verifies the webhook signature")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise WebhookRejected("the webhook body is not JSON") from None
        if not isinstance(data, dict) or data.get("request_id") != request_id:
            raise WebhookRejected("the webhook body is about another request")
        state = data.get("status")
        if state not in ("OK", "ERROR"):
            raise WebhookRejected("the webhook body has no OK/ERROR status")
        result = None
        if state == "OK":
            try:
                result = _finished(data.get("payload"), {}, request_id)
            except ProviderError:
                result = None  # the poll reads (and classifies) what is there
        return FalWebhookCall(
            upstream_id=request_id,
            # one per signed delivery, however its hex is spelt (a replay in upper case
            # or with spaces is still the same delivery)
            delivery_id=f"{request_id}:{stamp}:{signature.hex()[:32]}",
            sent_at=sent_at,
            final=True,
            result=result,
        )


@dataclass(frozen=True)
class FalWebhookCall(WebhookCall):
    """fal's call names the bare request id; reelgate stores ``{app base}/requests/{id}``
    (the status, result and cancel paths need the app)."""

    def is_about(self, upstream_id: str) -> bool:
        return upstream_id == self.upstream_id or upstream_id.endswith(
            f"/requests/{self.upstream_id}"
        )


@dataclass
class _Jwks:
    """fal's webhook keys, cached ``ttl`` seconds; refetched early (once, at most every
    ``min_refetch`` seconds) when no cached key verifies a call."""

    url: str
    ttl: float
    min_refetch: float
    keys: list[Ed25519PublicKey] = field(default_factory=list)
    fetched_at: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _client: httpx.AsyncClient | None = None

    async def verify(self, signature: bytes, message: bytes) -> bool:
        now = time.monotonic()
        if self.fetched_at is None or now - self.fetched_at > self.ttl:
            await self._fetch(self.fetched_at)
        if _any_verifies(self.keys, signature, message):
            return True
        if self.fetched_at is not None and time.monotonic() - self.fetched_at < self.min_refetch:
            return False
        await self._fetch(self.fetched_at)
        return _any_verifies(self.keys, signature, message)

    async def _fetch(self, seen: float | None) -> None:
        """Fetch the keys, unless another call did while this one waited for the lock
        (``seen``: the fetch time this call found stale)."""
        async with self._lock:
            if self.fetched_at is not None and self.fetched_at != seen:
                return
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
            try:
                resp = await self._client.get(self.url)
                resp.raise_for_status()
                data = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise WebhookUnverifiable(
                    f"fal's webhook keys could not be fetched ({type(exc).__name__})"
                ) from None
            self.keys = _parse_jwks(data)
            self.fetched_at = time.monotonic()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _parse_jwks(data: Any) -> list[Ed25519PublicKey]:
    """Each key's ``x``, base64url (fal's own sample decodes it with
    ``base64.urlsafe_b64decode``; padding is added here when it is left out)."""
    raw = data.get("keys") if isinstance(data, dict) else None
    keys: list[Ed25519PublicKey] = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("x"), str):
            continue
        if entry.get("crv", "Ed25519") != "Ed25519":
            continue
        x: str = entry["x"]
        try:
            material = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(material))
        except (binascii.Error, ValueError):
            continue
    return keys


def _any_verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


# -- answers -------------------------------------------------------------------------


def _path(app_id: str) -> str:
    return "/".join(quote(part, safe="-_.") for part in app_id.strip("/").split("/"))


def _request_path(upstream_id: str) -> str:
    if _UPSTREAM_ID.fullmatch(upstream_id) is None:
        raise InvalidRequest(f"{upstream_id!r} is not a fal request path", code="bad_upstream_id")
    return "/" + upstream_id


async def _call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    """``request_json`` with fal's error bodies read: the defaults would only say
    "HTTP 429"; fal's own ``detail`` text replaces that."""
    seen: list[str] = []

    def classify(status: int, body: Any) -> ProviderError | None:
        seen.append(_detail_text(body))
        return _classify(status, body)

    try:
        return await request_json(client, method, path, classify=classify, **kwargs)
    except (QuotaExceeded, TransientError) as exc:
        if seen and seen[-1] and exc.message.startswith("HTTP "):
            exc.message = f"{seen[-1]} ({exc.message})"
            exc.args = (exc.message,)
        raise


_BILLING = re.compile(r"balance|locked|billing|credit", re.IGNORECASE)


def _details(body: Any) -> list[dict[str, Any]]:
    detail = body.get("detail") if isinstance(body, dict) else None
    return [d for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []


def _detail_text(body: Any) -> str:
    """The human text of fal's answers: ``detail`` as a string, or the first ``msg`` of a
    ``detail`` list (with the field it is about), or a cancel's ``status`` word."""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    for item in _details(body):
        msg = item.get("msg")
        if isinstance(msg, str):
            loc = [str(p) for p in item.get("loc", ()) if p != "body"]
            return f"{'.'.join(loc)}: {msg}" if loc else msg
    if isinstance(body.get("status"), str):
        return str(body["status"])
    return ""


def _classify(status: int, body: Any) -> ProviderError | None:
    """fal's own signals first; None hands 429, 5xx and timeouts to the shared defaults."""
    text = _detail_text(body)
    refusal = _refusal(body, status)
    if refusal is not None:
        return refusal
    if status == 401:
        return _auth_error(status)
    if status in (402, 403):
        if _BILLING.search(text) or status == 402:
            return QuotaExceeded(
                text or "fal refused the request for billing reasons",
                code="upstream_credits",
                upstream_status=status,
            )
        return _auth_error(status)
    if status == 429 or status >= 500 or status in (408, 409, 425):
        return None
    if 400 <= status < 500:
        kinds = [str(d.get("type")) for d in _details(body)]
        error = InvalidRequest(
            text or f"fal rejected the request (HTTP {status})", upstream_status=status
        )
        if kinds:
            error.details["upstream_code"] = kinds[0]
        return error
    return None


def _refusal(body: Any, status: int | None) -> Refused | None:
    """A ``content_policy_violation`` in a ``detail`` list, naming what was flagged."""
    for item in _details(body):
        if item.get("type") != "content_policy_violation":
            continue
        loc = [str(p) for p in item.get("loc", ()) if p != "body"]
        msg = item.get("msg") if isinstance(item.get("msg"), str) else None
        text = msg or "fal's content checker flagged the request"
        extra: dict[str, Any] = {}
        if loc and "image" in loc[0]:
            extra["flagged"] = "image"
        elif loc and loc[0] in ("prompt", "negative_prompt"):
            extra["flagged"] = "prompt"
        categories = item.get("categories")
        if isinstance(categories, list):
            extra["categories"] = [str(c) for c in categories]
        return Refused(text, upstream_status=status, **extra)
    return None


def _auth_error(status: int) -> InvalidRequest:
    return InvalidRequest(
        f"fal rejected the API key (HTTP {status}); check {KEY_SETTING}",
        code="upstream_auth",
        upstream_status=status,
    )


def _classify_download(status: int, body: Any) -> ProviderError | None:
    if status in (403, 404, 410):
        return InvalidRequest(
            f"the fal result file has expired or is gone (HTTP {status})",
            code="result_expired",
            upstream_status=status,
        )
    return None


def _final(exc: ProviderError, status: Mapping[str, Any], upstream_id: str) -> ProviderError:
    """The request's own failure read from its result answer: final, never polled again."""
    error = exc.with_message(exc.message)
    error.terminal = True
    error.details.setdefault("upstream_id", upstream_id)
    kind = status.get("error_type")
    if isinstance(kind, str):
        error.details.setdefault("upstream_code", kind)
    return error


def _status_failure(status: Mapping[str, Any], upstream_id: str) -> ProviderError:
    error = status.get("error")
    kind = status.get("error_type")
    text = error if isinstance(error, str) and error else "fal could not finish the request"
    code = kind if isinstance(kind, str) else "unknown"
    if "cancel" in text.lower() or "cancel" in code:
        return TransientError(
            text, code="upstream_canceled", upstream_id=upstream_id, terminal=True
        )
    return TransientError(text, upstream_id=upstream_id, upstream_code=code, terminal=True)


def _finished(result: Any, status: Mapping[str, Any], upstream_id: str) -> UpstreamStatus:
    """The app's output: ``video.url`` (fal's ``File``: url, content_type, file_name,
    file_size) and, for some apps, the ``seed`` used."""
    video = result.get("video") if isinstance(result, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        payload_error = result.get("payload_error") if isinstance(result, dict) else None
        raise TransientError(
            "fal finished the request but its output has no video URL"
            + (f" ({payload_error})" if isinstance(payload_error, str) else ""),
            upstream_id=upstream_id,
            terminal=True,
        )
    assert isinstance(video, dict)
    assert isinstance(result, dict)
    extra: dict[str, object] = {}
    seed = result.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        extra["seed"] = seed
    if isinstance(video.get("file_size"), int):
        extra["file_size"] = video["file_size"]
    metrics = status.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("inference_time"), int | float):
        extra["inference_time"] = float(metrics["inference_time"])
    content_type = video.get("content_type")
    return UpstreamStatus(
        UpstreamState.SUCCEEDED,
        progress=100,
        result=ResultLocation(
            url=url,
            content_type=content_type if isinstance(content_type, str) else "video/mp4",
        ),
        extra=extra,
    )


# -- settings and plug-in --------------------------------------------------------------


class FalSettings(ProviderSettings):
    """fal's queue API."""

    fal_api_key: SecretStr | None = None
    fal_queue_url: str = FAL_QUEUE_URL
    fal_jwks_url: str | None = None
    """Where fal's webhook keys are (None: fal's own, ``FAL_JWKS_URL``)."""
    fal_platform_url: str = FAL_PLATFORM_URL
    """fal's Platform API, whose model list ``reelgate catalog sync`` reads."""


def build(settings: FalSettings, context: BuildContext) -> FalProvider | None:
    """The configured deployment, or None when ``REELGATE_FAL_API_KEY`` is unset."""
    key = settings.fal_api_key.get_secret_value().strip() if settings.fal_api_key else ""
    if not key:
        return None
    return FalProvider(
        HttpDeployment(
            base_url=settings.fal_queue_url,
            api_key=key,
            timeout_seconds=context.timeout_seconds,
            downloads=context.downloads,
        ),
        jwks_url=settings.fal_jwks_url or FAL_JWKS_URL,
    )


PLUGIN = ProviderPlugin(
    kind="fal",
    settings=FalSettings,
    build=build,
    setup_hint="set REELGATE_FAL_API_KEY",
    capabilities=Capabilities(cancel=True, idempotent_create=False, inbound_webhooks=True),
    default_base_url=FAL_QUEUE_URL,
    key_setting="fal_api_key",
    base_url_setting="fal_queue_url",
    emulator="reelgate.emulators.fal",
    emulator_base_path="",
    emulator_url_settings={"fal_jwks_url": "/.well-known/jwks.json", "fal_platform_url": ""},
)
