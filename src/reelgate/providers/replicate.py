"""Replicate's predictions API: official video models (Kling, Seedance, Hailuo, Pixverse,
Wan, Veo, LTX...) behind one HTTP interface.

The wire format, as Replicate documents it (its OpenAPI schema, copied at
``tryAGI/Replicate@1625ee75 src/libs/Replicate/openapi.json``, 2026-03-16) and its
official client speaks it (``replicate/replicate-python@0110c2c5``
``replicate/prediction.py``, ``replicate/webhook.py``, ``replicate/exceptions.py``;
sources and open points in ``docs/providers/replicate.md``)::

    POST /models/{owner}/{name}/predictions  {"input", "webhook"?, "webhook_events_filter"?}
                                             official models ("models.predictions.create")
    POST /predictions                        {"version": "<64 hex>", "input", ...}
                                             a model version ("predictions.create"): how a
                                             community model runs (see ``target_of``)
                                             -> 201 (or 202) a prediction object
    GET  /predictions/{id}                   -> 200 the prediction object
    POST /predictions/{id}/cancel            -> 200 the prediction object
    GET  /predictions?created_after=...      -> {"next", "previous", "results": [...]},
                                                newest first, 100 a page, ``next`` a URL
                                                carrying a ``cursor``
    GET  /webhooks/default/secret            -> {"key": "whsec_..."}

A prediction is ``{"id", "model", "version", "input", "logs", "output", "error",
"status", "created_at", "started_at", "completed_at", "urls": {"get", "cancel",
"stream", "web"}, "metrics": {"predict_time", "total_time"}, "data_removed"}`` with
``status`` one of starting, processing, succeeded, failed, canceled (and, since 2026,
``aborted``: "terminated before it started running", OpenAPI). ``output`` is whatever
the model returns: one URL for most video models, a list for some (LTX Video).

``Prefer: wait`` (hold the create up to 60 s) is never sent: reelgate never waits on a
create. Replicate takes no idempotency key (``idempotent_create`` is False); a create
whose answer was lost is looked for in ``GET /predictions`` (``find_created``).

Errors are RFC 7807 problem details, ``{"title", "detail", "status"}``
(``application/problem+json``; ``ReplicateError.from_response``): 401 "Unauthenticated",
402 "Insufficient credit", 404 "The requested resource could not be found." (a model
that is not there), 422 "Input validation failed" with ``invalid_fields`` (and "Invalid
version or not permitted" for a version that does not exist), 429 "Request was
throttled ..." with ``retry_after`` and a ``Retry-After`` header. A safety refusal is a
prediction that ends ``failed`` with ``error`` "The input or output was flagged as
sensitive. Please try again with different inputs. (E005)".

"All input parameters, output values, and logs are automatically removed after an hour
... for predictions created through the API" (OpenAPI, ``predictions.get``): a result
link lives one hour from ``completed_at``. Output files are served by
``replicate.delivery``; the OpenAPI says to pass the Authorization header to fetch them,
so downloads send it there (and to the API's own origin) and nowhere else.

Webhooks (``replicate.com/docs/topics/webhooks/verify-webhook``; ``replicate/webhook.py``
``Webhooks.validate``): headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` (space-separated ``v1,<base64>``); the signature is
HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{raw body}"`` keyed with the
base64-decoded part of the ``whsec_`` secret. The secret is
``REELGATE_REPLICATE_WEBHOOK_SECRET``, or ``GET /webhooks/default/secret`` read once and
cached.

This module must never log the token, put it in a URL, or echo it in an error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from pydantic import SecretStr

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
    WebhookUnverifiable,
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
    "GENERIC",
    "MODELS",
    "PLUGIN",
    "RESULT_TTL",
    "WAN_SIZES",
    "ModelMap",
    "ReplicateProvider",
    "ReplicateSettings",
    "create_input",
    "sign_webhook",
]

DEFAULT_BASE_URL = "https://api.replicate.com/v1"
KEY_SETTING = "REELGATE_REPLICATE_API_TOKEN"
RESULT_TTL = timedelta(hours=1)
"""OpenAPI ``predictions.get``: inputs, outputs and logs are removed after an hour."""

_LIST_PAGES = 20
"""``GET /predictions`` answers 100 a page (OpenAPI): 2000 predictions are searched."""
_SECRET_REFETCH_SECONDS = 300.0
"""A fetched signing secret that stops matching is read again at most this often."""

_RUNNING = {"starting": UpstreamState.PENDING, "processing": UpstreamState.RUNNING}
_FINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
_VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".m4v")
_SENSITIVE = re.compile(r"flagged as sensitive|\(E005\)|\bNSFW\b|content polic", re.IGNORECASE)
"""How a Replicate model words a safety refusal ("... flagged as sensitive ... (E005)")."""
_BILLING = re.compile(r"insufficient credit|billing|payment", re.IGNORECASE)
_VERSION = re.compile(r"[0-9a-f]{64}")
_PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*\d+/\d+")
"""A tqdm progress line in the logs (replicate-python ``Prediction.Progress._pattern``)."""
_FRACTION = re.compile(r"(\.\d{6})\d+")


# -- the models --------------------------------------------------------------------


@dataclass(frozen=True)
class ModelMap:
    """How reelgate's one request shape maps onto one Replicate model's own input.

    A field that is None is one the model does not have: it is not sent (the catalog
    refuses a request that needs it before it gets here). Values come from each
    model's Replicate API page (``replicate.com/<owner>/<name>/versions/<id>/api``);
    see docs/providers/replicate.md for the sources, dates and open points.
    """

    i2v: str | None = None
    """A separate Replicate model for image-to-video ("owner/name"), if the model
    splits them (Wan 2.5)."""
    duration_field: str | None = "duration"
    durations: tuple[int, ...] = ()
    """Allowed seconds (empty: any value within ``duration_range``)."""
    duration_range: tuple[int, int] | None = None
    resolution_field: str | None = None
    resolutions: tuple[str, ...] = ()
    resolution_as_size: bool = False
    """Wan 2.5 text-to-video takes ``size`` as ``"1280*720"`` instead of a tier."""
    aspect_field: str | None = "aspect_ratio"
    aspect_ratios: tuple[str, ...] = ()
    aspect_with_image: bool = False
    """Send the aspect ratio along with an image (most models take the image's own)."""
    negative_prompt: bool = False
    seed: bool = False
    image_field: str | None = "image"
    usd_per_second: float | None = None
    """From Replicate's model page when confirmed; None: unverified (see the docs)."""
    source: str = ""


MODELS: dict[str, ModelMap] = {
    "kwaivgi/kling-v2.5-turbo-pro": ModelMap(
        durations=(5, 10),
        aspect_ratios=("16:9", "9:16", "1:1"),
        negative_prompt=True,
        image_field="start_image",
        source="https://replicate.com/kwaivgi/kling-v2.5-turbo-pro/versions/"
        "18f41bfca7f1997ce37b04b407152c385c9159095681a6f5a4ff47718bc25a57/api",
    ),
    "bytedance/seedance-1-pro": ModelMap(
        duration_range=(2, 12),
        resolution_field="resolution",
        resolutions=("480p", "720p", "1080p"),
        aspect_ratios=("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21"),
        seed=True,
        image_field="image",
        source="https://replicate.com/bytedance/seedance-1-pro/versions/"
        "a5fd550893da3b6f67997812759065652454ddaca10e96b83b59cbae1814cb36/api",
    ),
    "minimax/hailuo-02": ModelMap(
        durations=(6, 10),
        resolution_field="resolution",
        resolutions=("512p", "768p", "1080p"),
        aspect_field=None,
        image_field="first_frame_image",
        source="https://replicate.com/minimax/hailuo-02/versions/"
        "c43b610efe40d08a28d2c07cb3515dab1cd3324dfc7418f3304a092571071d22/api",
    ),
    "pixverse/pixverse-v5": ModelMap(
        durations=(5, 8),
        resolution_field="quality",
        resolutions=("360p", "540p", "720p", "1080p"),
        aspect_ratios=("16:9", "9:16", "1:1"),
        negative_prompt=True,
        seed=True,
        image_field="image",
        source="https://replicate.com/pixverse/pixverse-v5/versions/"
        "f8890e0bde2fe7f302f19bad735fdc2ad13166351df4e8104fa6cc0da96e8686/api",
    ),
    "wan-video/wan-2.5-t2v": ModelMap(
        i2v="wan-video/wan-2.5-i2v",
        durations=(5, 10),
        resolution_field="size",
        resolutions=("480p", "720p", "1080p"),
        resolution_as_size=True,
        aspect_field=None,
        negative_prompt=True,
        seed=True,
        image_field=None,
        source="https://replicate.com/wan-video/wan-2.5-t2v-fast/versions/"
        "6f841a1987e137930daaffaec0a4b384d36633652358308d7ae06fc6606859a1/api",
    ),
    "wan-video/wan-2.5-i2v": ModelMap(
        durations=(5, 10),
        resolution_field="resolution",
        resolutions=("480p", "720p", "1080p"),
        aspect_field=None,
        negative_prompt=True,
        seed=True,
        image_field="image",
        source="https://replicate.com/wan-video/wan-2.5-i2v/versions/"
        "b4ebd9b0f1d222dca88ccb225e8e282c3d9311cbd19845f37cff6e4c30117d21/api",
    ),
    "google/veo-3.1": ModelMap(
        durations=(4, 6, 8),
        resolution_field="resolution",
        resolutions=("720p", "1080p"),
        aspect_ratios=("16:9", "9:16"),
        aspect_with_image=True,
        negative_prompt=True,
        seed=True,
        image_field="image",
        source="https://replicate.com/google/veo-3.1/versions/"
        "ed5b1767b711dd15d954b162af1e890d27882680f463a85e94f02d604012b972/api",
    ),
    "google/veo-3.1-fast": ModelMap(
        durations=(4, 6, 8),
        resolution_field="resolution",
        resolutions=("720p", "1080p"),
        aspect_ratios=("16:9", "9:16"),
        aspect_with_image=True,
        negative_prompt=True,
        seed=True,
        image_field="image",
        source="https://api.core.today/v1/models/google/veo-3.1-fast/llms.txt (a mirror "
        "of Replicate's schema; the replicate.com page was not in the corpora)",
    ),
    "lightricks/ltx-video": ModelMap(
        duration_field=None,
        aspect_ratios=(
            "1:1",
            "1:2",
            "2:1",
            "2:3",
            "3:2",
            "3:4",
            "4:3",
            "4:5",
            "5:4",
            "9:16",
            "16:9",
        ),
        negative_prompt=True,
        seed=True,
        image_field="image",
        source="https://replicate.com/lightricks/ltx-video/versions/"
        "5ddec822499d46d11a93a92ef87e26adefda6608279d9d35c454e50e5e298d92/api",
    ),
}
"""Keyed by "owner/name". Not here (unverified, so the generic mapping applies): Luma
Ray 2 (no Replicate schema page in the corpora); Kling 2.6 and 2.1 have the Kling 2.5
fields. The LTX Video aspect ratios are not confirmed (its page shows no options)."""

GENERIC = ModelMap(negative_prompt=True, seed=True, resolution_field="resolution")
"""An unknown model: the field names most of Replicate's video models share."""

WAN_SIZES = {
    ("480p", "16:9"): "832*480",
    ("480p", "9:16"): "480*832",
    ("480p", "1:1"): "624*624",
    ("720p", "16:9"): "1280*720",
    ("720p", "9:16"): "720*1280",
    ("720p", "1:1"): "960*960",
    ("720p", "4:3"): "1088*832",
    ("720p", "3:4"): "832*1088",
    ("1080p", "16:9"): "1920*1080",
    ("1080p", "9:16"): "1080*1920",
    ("1080p", "1:1"): "1440*1440",
    ("1080p", "4:3"): "1632*1248",
    ("1080p", "3:4"): "1248*1632",
}
"""Wan 2.5 ``size`` values ("width*height") per tier and ratio (Alibaba's list, as the
Wan 2.5 docs give it; the Replicate page shows only the default ``1280*720``)."""


@dataclass(frozen=True)
class Target:
    """Where a create goes and what it sends."""

    model: str
    """"owner/name" of the model that runs (the i2v one when the request has an image)."""
    version: str | None
    path: str
    body: dict[str, Any]


# Official and community models (sources read 2026-12; quoted):
#   OpenAPI (tryAGI/Replicate@1625ee75 src/libs/Replicate/openapi.json):
#     models.predictions.create: "Create a prediction using an official model. If you're
#       _not_ running an official model, use the predictions.create operation instead."
#     predictions.create ``version``: "`{owner_name}/{model_name}` - Use this format for
#       official models [...] For all other models, the specific version is required."
#     the model object: "is_official": "Boolean indicating whether the model is
#       officially maintained by Replicate."
#     the prediction's ``version``: "hidden" - "The model does not support versions,
#       used by official models."
#   replicate/replicate-javascript#347 (2025-03-25, Replicate staff, on the community
#     model nvidia/sana): "you'll need to specify the version you want to run using the
#     `version` field rather than the `model` field."
#   replicate/replicate-python#320 (2024-07-03): a community model sent by name (the
#     client's ``model=``, i.e. this models route) answered "The specified version does
#     not exist (or perhaps you don't have permission to use it?)".
#   replicate/cog-safe-push#8 (Replicate, 2024-09): "Official models don't have a list of
#     versions"; cbh123/replicate-elixir#39: black-forest-labs/flux-1.1-pro (official)
#     "does not accept the version that it fetched" from its own model object.
#   replicate.com/changelog/2025-08-05: POST /v1/predictions now also takes
#     "{owner}/{name} - For official models" and "{owner}/{name}:{version_id} - For
#     community models"; the models route "will still be supported for running official
#     models".
# So an official model runs by name on the models route (its version is not runnable);
# any other model needs its version on POST /predictions. Which one a model is, is the
# catalog's to say through the reference: a synced model that is not official comes as
# ``owner/name:<latest_version.id>``.


def target_of(request: GenerationRequest, *, webhook: bool = True) -> Target:
    """The route and body of the create for ``request``: ``owner/name`` (an official
    model) goes to the official-model route, ``owner/name:<version>`` or a bare version
    id (any other model) to ``POST /predictions`` with that version. A synced model
    (``native_input``) follows the same rule with its own input."""
    ref = request.upstream_model.strip()
    name, _, version = ref.partition(":")
    if name.count("/") != 1 or not all(name.split("/")):
        if _VERSION.fullmatch(ref):
            name, version = "", ref
        else:
            raise InvalidRequest(
                f"not a Replicate model reference: {ref!r} (use owner/name or owner/name:version)",
                code="invalid_model",
            )
    if version and not _VERSION.fullmatch(version):
        raise InvalidRequest(
            f"a Replicate version id is 64 hex characters, not {version!r}",
            code="invalid_model",
        )
    if request.native_input is not None:
        # a synced model: its own input, checked against its schema at submit
        data = dict(request.native_input)
        if request.image is not None and request.native_image_field:
            data[request.native_image_field] = _image_value(request.image)
        native: dict[str, Any] = {"input": data}
        if webhook and request.callback_url:
            native["webhook"] = request.callback_url
            native["webhook_events_filter"] = ["completed"]
        if version:  # a community model: its version, on the version route
            return Target(name, version, "/predictions", {"version": version, **native})
        owner, model = name.split("/")
        path = f"/models/{quote(owner, safe='')}/{quote(model, safe='')}/predictions"
        return Target(name, None, path, native)
    mapping = MODELS.get(name, GENERIC)
    if request.image is not None and mapping.i2v and not version:
        name = mapping.i2v
        mapping = MODELS.get(name, GENERIC)
    body: dict[str, Any] = {"input": create_input(request, mapping)}
    if webhook and request.callback_url:
        body["webhook"] = request.callback_url
        body["webhook_events_filter"] = ["completed"]
    if version:
        return Target(name, version, "/predictions", {"version": version, **body})
    owner, model = name.split("/")
    path = f"/models/{quote(owner, safe='')}/{quote(model, safe='')}/predictions"
    return Target(name, None, path, body)


def create_input(request: GenerationRequest, mapping: ModelMap) -> dict[str, Any]:
    """The ``input`` object for ``request`` in the model's own names and formats."""
    data: dict[str, Any] = {"prompt": request.prompt}
    resolution = request.resolution.lower()
    if mapping.duration_field:
        data[mapping.duration_field] = request.duration_seconds
    if mapping.resolution_field:
        if mapping.resolution_as_size:
            size = WAN_SIZES.get((resolution, request.aspect_ratio))
            data[mapping.resolution_field] = size or f"{request.width}*{request.height}"
        else:
            data[mapping.resolution_field] = resolution
    if mapping.aspect_field and (request.image is None or mapping.aspect_with_image):
        data[mapping.aspect_field] = request.aspect_ratio
    if mapping.negative_prompt and request.negative_prompt:
        data["negative_prompt"] = request.negative_prompt
    if mapping.seed and request.seed is not None:
        data["seed"] = request.seed
    if request.image is not None:
        if mapping.image_field is None:
            raise InvalidRequest(
                "this Replicate model takes no image; use its image-to-video model",
                code="unsupported_parameter",
            )
        data[mapping.image_field] = _image_value(request.image)
    return data


def _image_value(image: ImageInput) -> str:
    """A data URI for inline bytes (OpenAPI: "Files should be passed as HTTP URLs or
    data URLs"), else the URL as given."""
    if image.data is not None:
        mime = (image.mime_type or "application/octet-stream").lower()
        mime = mime.replace("image/jpg", "image/jpeg")
        if not mime.startswith("image/"):
            raise InvalidRequest(f"not an image: {mime}", code="invalid_image")
        return f"data:{mime};base64,{base64.b64encode(image.data).decode('ascii')}"
    if image.url:
        return image.url
    raise InvalidRequest("the image has neither bytes nor a URL", code="invalid_image")


# -- the adapter -------------------------------------------------------------------


class ReplicateProvider:
    """One Replicate account. API calls carry ``Authorization: Bearer <token>``; result
    downloads carry it only to ``replicate.delivery`` and the API's own origin."""

    name = "replicate"
    route = "replicate"
    supports_cancel = True
    idempotent_create = False
    """No idempotency key in Replicate's API or its clients: a lost create is looked
    for with ``find_created`` instead."""
    receives_webhooks = True
    per_job_callbacks = True

    def __init__(self, deployment: HttpDeployment, *, webhook_secret: str | None = None):
        self._deployment = deployment
        self._auth = {"Authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}
        self._client = new_client(deployment, self._auth)
        self._files = new_client(deployment, {})
        self._configured_secret = webhook_secret
        self._fetched_secret: str | None = None
        self._fetched_at = 0.0
        self._secret_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ReplicateProvider({self._deployment!r})"

    async def create(self, request: GenerationRequest) -> Submitted:
        target = target_of(request)
        try:
            data = await self._call("POST", target.path, json=target.body)
        except InvalidRequest as exc:
            if exc.upstream_status == 404 or exc.details.get("upstream_title") == (
                "Invalid version or not permitted"
            ):
                raise ModelGone(
                    f"Replicate does not serve {request.upstream_model}: {exc.message}",
                    upstream_status=exc.upstream_status,
                ) from None
            raise
        prediction_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(prediction_id, str) or not prediction_id:
            raise TransientError(
                "Replicate accepted the prediction but answered no id", ambiguous=True
            )
        return Submitted(prediction_id)

    async def verify(self) -> None:
        """The credential check of ``reelgate providers check``: a prediction id that
        does not exist answers 404 once the token is accepted."""
        try:
            await self._call("GET", "/predictions/reelgatecheck0000000000000000")
        except ProviderError as exc:
            if not accepted_credential(exc):
                raise

    async def status(self, upstream_id: str) -> UpstreamStatus:
        data = await self._call("GET", f"/predictions/{quote(upstream_id, safe='')}")
        if not isinstance(data, dict):
            raise TransientError("Replicate answered a prediction that is not a JSON object")
        return status_of(data, upstream_id)

    async def cancel(self, upstream_id: str) -> None:
        await self._call("POST", f"/predictions/{quote(upstream_id, safe='')}/cancel")

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        # The API's own origin gets the client with the token; replicate.delivery gets
        # the token passed for that one request (netsafe drops it on any redirect to
        # another origin); any other host gets nothing.
        same = self._same_origin(result.url)
        headers = self._auth if not same and _is_delivery_host(result.url) else None
        async for chunk in stream_download(
            self._client if same else self._files,
            result.url,
            rules=self._deployment.downloads,
            headers=headers,
            classify=_classify_download,
        ):
            yield chunk

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._files.aclose()

    async def find_created(
        self, request: GenerationRequest, since: datetime, exclude: frozenset[str]
    ) -> list[str]:
        """Predictions created at or after ``since`` that are the create for ``request``:
        ``GET /predictions?created_after=`` (newest first, 100 a page, paged by the
        ``cursor`` of ``next``; OpenAPI ``predictions.list``). A match runs the same
        model (and version, on the version route) with the same prompt."""
        target = target_of(request, webhook=False)
        floor = since.astimezone(UTC)
        params: dict[str, str] = {"created_after": floor.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        found: list[tuple[datetime, str]] = []
        for _page in range(_LIST_PAGES):
            body = await self._call("GET", "/predictions", params=params)
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise TransientError("the prediction list carries no results", code="malformed")
            for item in results:
                if not isinstance(item, dict):
                    continue
                created = _timestamp(item.get("created_at"))
                prediction_id = item.get("id")
                if (
                    created is None
                    or created < floor
                    or not isinstance(prediction_id, str)
                    or prediction_id in exclude
                    or item.get("model") != target.model
                    or (target.version is not None and item.get("version") != target.version)
                ):
                    continue
                given = item.get("input")
                prompt = given.get("prompt") if isinstance(given, dict) else None
                if not isinstance(prompt, str):
                    if item.get("data_removed") is True:
                        continue  # over an hour old: not a create of minutes ago
                    raise TransientError(
                        "a listed prediction shows no prompt; looking again later",
                        code="lookup_pending",
                    )
                if prompt == request.prompt:
                    found.append((created, prediction_id))
            cursor = _cursor_of(body.get("next"))
            if cursor is None:
                return [prediction_id for _created, prediction_id in sorted(found)]
            params = {**params, "cursor": cursor}
        raise TransientError(
            f"more than {_LIST_PAGES * 100} predictions since the lost create; not searched "
            "to the end",
            code="lookup_incomplete",
        )

    async def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookCall:
        """Check a webhook as Replicate documents it (verify-webhook page; replicate-python
        ``Webhooks.validate``) and read the prediction it is about."""
        delivery_id, stamp, signatures = standard_webhooks.read_headers(headers, now)
        if not body:
            raise WebhookRejected("the webhook has no body")
        secret = await self._webhook_secret()
        if not _signature_matches(secret, delivery_id, stamp, body, signatures):
            fresher = await self._webhook_secret(refresh=True)
            if fresher == secret or not _signature_matches(
                fresher, delivery_id, stamp, body, signatures
            ):
                raise WebhookRejected("no webhook-signature matches")
        sent_at = float(stamp)
        try:
            prediction = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise WebhookRejected("the webhook body is not JSON") from None
        if not isinstance(prediction, dict) or not isinstance(prediction.get("id"), str):
            raise WebhookRejected("the webhook body is not a prediction")
        result = None
        if prediction.get("status") == "succeeded":
            try:
                result = _succeeded(prediction, prediction["id"])
            except ProviderError:
                result = None  # the poll reads (and classifies) what is there
        return WebhookCall(
            upstream_id=prediction["id"],
            delivery_id=delivery_id,
            sent_at=sent_at,
            final=prediction.get("status") in _FINAL,
            result=result,
        )

    async def _webhook_secret(self, *, refresh: bool = False) -> str:
        """The configured secret, else ``GET /webhooks/default/secret`` once (cached).
        ``refresh`` reads it again (a rotated secret), at most every five minutes."""
        if self._configured_secret:
            return self._configured_secret
        async with self._secret_lock:
            stale = time.monotonic() - self._fetched_at > _SECRET_REFETCH_SECONDS
            if self._fetched_secret is None or (refresh and stale):
                try:
                    answer = await self._call("GET", "/webhooks/default/secret")
                except ProviderError as exc:
                    if self._fetched_secret is not None:
                        return self._fetched_secret
                    raise WebhookUnverifiable(
                        f"the webhook signing secret could not be read ({exc.code})"
                    ) from None
                key = answer.get("key") if isinstance(answer, dict) else None
                if not isinstance(key, str) or not key.startswith("whsec_"):
                    raise WebhookRejected("Replicate answered no whsec_ signing secret")
                self._fetched_secret = key
                self._fetched_at = time.monotonic()
            return self._fetched_secret

    def _same_origin(self, url: str) -> bool:
        target = httpx.URL(url)
        base = self._client.base_url
        return (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request_json`` with Replicate's problem details read into the error."""
        seen: list[str] = []

        def classify(status: int, body: Any) -> ProviderError | None:
            seen.append(_problem_text(body))
            return _classify(status, body)

        try:
            return await request_json(self._client, method, path, classify=classify, **kwargs)
        except (QuotaExceeded, TransientError) as exc:
            if seen and seen[-1] and exc.message.startswith("HTTP "):
                exc.message = f"{seen[-1]} ({exc.message})"
                exc.args = (exc.message,)
            raise


def status_of(prediction: Mapping[str, Any], upstream_id: str) -> UpstreamStatus:
    """A prediction object as reelgate's status, or the classified failure it ended in."""
    status = prediction.get("status")
    if status in _RUNNING:
        progress = _progress(prediction.get("logs"))
        state = _RUNNING[str(status)]
        if progress and state is UpstreamState.PENDING:
            state = UpstreamState.RUNNING
        return UpstreamStatus(state, progress=progress)
    if status == "succeeded":
        return _succeeded(prediction, upstream_id)
    if status == "failed":
        raise failure_of(prediction.get("error"), upstream_id)
    if status == "canceled":
        raise InvalidRequest(
            f"Replicate prediction {upstream_id} was canceled",
            code="upstream_canceled",
            upstream_id=upstream_id,
            terminal=True,
        )
    if status == "aborted":
        raise TransientError(
            f"Replicate aborted prediction {upstream_id} before it ran (its deadline passed)",
            code="upstream_aborted",
            upstream_id=upstream_id,
            terminal=True,
        )
    raise TransientError(f"Replicate answered an unknown prediction status {status!r}")


def _succeeded(prediction: Mapping[str, Any], upstream_id: str) -> UpstreamStatus:
    url = _video_of(prediction.get("output"))
    if url is None:
        if prediction.get("data_removed") is True:
            raise InvalidRequest(
                f"Replicate already removed the output of prediction {upstream_id} "
                "(outputs live an hour)",
                code="result_expired",
                upstream_id=upstream_id,
                terminal=True,
            )
        raise TransientError("Replicate finished the prediction but its output holds no URL")
    completed = _timestamp(prediction.get("completed_at")) or datetime.now(UTC)
    metrics = prediction.get("metrics")
    extra: dict[str, object] = {}
    if isinstance(prediction.get("model"), str):
        extra["upstream_model"] = prediction["model"]
    if isinstance(metrics, dict) and isinstance(metrics.get("predict_time"), int | float):
        extra["predict_time"] = float(metrics["predict_time"])
    return UpstreamStatus(
        UpstreamState.SUCCEEDED,
        progress=100,
        result=ResultLocation(url=url, expires_at=completed + RESULT_TTL),
        extra=extra,
    )


def failure_of(error: Any, upstream_id: str) -> ProviderError:
    """A prediction that ended ``failed``: a sensitive-content flag is a refusal, any
    other failure is final for this prediction."""
    text = error if isinstance(error, str) and error else "the Replicate prediction failed"
    if _SENSITIVE.search(text):
        return Refused(text, upstream_id=upstream_id, upstream_code="E005", terminal=True)
    return TransientError(text, upstream_id=upstream_id, upstream_code="failed", terminal=True)


def _video_of(output: Any) -> str | None:
    """The video in a model's output: one URL, or the video among a list of URLs."""
    urls = [output] if isinstance(output, str) else output if isinstance(output, list) else []
    links = [u for u in urls if isinstance(u, str) and u.startswith(("https://", "http://"))]
    for link in links:
        if urlsplit(link).path.lower().endswith(_VIDEO_SUFFIXES):
            return link
    return links[0] if links else None


def _problem_text(body: Any) -> str:
    """The human text of a problem details body: ``detail``, else ``title``."""
    if not isinstance(body, dict):
        return ""
    for key in ("detail", "title"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _classify(status: int, body: Any) -> ProviderError | None:
    """Replicate's own signals first; None hands 429 and 5xx to the shared defaults
    (which read Retry-After), after which ``retry_after`` in the body is a fallback."""
    text = _problem_text(body)
    title = body.get("title") if isinstance(body, dict) else None
    if status == 401 or status == 403:
        return InvalidRequest(
            f"Replicate rejected the API token (HTTP {status}); check {KEY_SETTING}",
            code="upstream_auth",
            upstream_status=status,
        )
    if status == 402 or (status == 429 and _BILLING.search(str(title or ""))):
        return QuotaExceeded(
            text or "Replicate: insufficient credit",
            code="upstream_credits",
            upstream_status=status,
        )
    if status == 429:
        retry = body.get("retry_after") if isinstance(body, dict) else None
        return QuotaExceeded(
            text or "Replicate throttled the request",
            upstream_status=status,
            retry_after=float(retry) if isinstance(retry, int | float) else None,
        )
    if status >= 500 or status in (408, 409, 425):
        return None
    if 400 <= status < 500:
        if _SENSITIVE.search(text):
            return Refused(text, upstream_status=status, terminal=True)
        details: dict[str, Any] = {}
        if isinstance(title, str):
            details["upstream_title"] = title
        fields = body.get("invalid_fields") if isinstance(body, dict) else None
        if isinstance(fields, list):
            names = [f.get("field") for f in fields if isinstance(f, dict)]
            details["invalid_fields"] = [n for n in names if isinstance(n, str)]
        return InvalidRequest(
            text or f"Replicate rejected the request (HTTP {status})",
            upstream_status=status,
            **details,
        )
    return None


def _classify_download(status: int, body: Any) -> ProviderError | None:
    if status in (401, 403, 404, 410):
        return InvalidRequest(
            f"the Replicate output file has expired or is gone (HTTP {status})",
            code="result_expired",
            upstream_status=status,
        )
    return None


def _is_delivery_host(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (
        host == "replicate.delivery" or host.endswith(".replicate.delivery")
    )


def _progress(logs: Any) -> int | None:
    """The last tqdm percentage in the logs, if the model prints one."""
    if not isinstance(logs, str):
        return None
    for line in reversed(logs.splitlines()):
        match = _PROGRESS.match(line)
        if match:
            return max(0, min(99, int(match.group(1))))
    return None


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as Replicate writes it (up to nanoseconds, ``Z``)."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _cursor_of(next_url: Any) -> str | None:
    if not isinstance(next_url, str) or not next_url:
        return None
    values = parse_qs(urlsplit(next_url).query).get("cursor")
    return values[0] if values else None


def _signature_matches(
    secret: str, delivery_id: str, stamp: str, body: bytes, signatures: str
) -> bool:
    return standard_webhooks.matches(
        secret, delivery_id, stamp, body, signatures, raw_allowed=False
    )


def sign_webhook(secret: str, delivery_id: str, stamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value Replicate would send: ``v1,<base64 HMAC>``."""
    return standard_webhooks.sign(secret, delivery_id, stamp, body)


# -- settings and plugin -------------------------------------------------------------


class ReplicateSettings(ProviderSettings):
    """Replicate's HTTP API."""

    replicate_api_token: SecretStr | None = None
    replicate_base_url: str = DEFAULT_BASE_URL
    replicate_webhook_secret: SecretStr | None = None
    """The account's ``whsec_`` signing secret; unset, it is read once from
    ``GET /webhooks/default/secret`` with the API token."""


def build(settings: ReplicateSettings, context: BuildContext) -> ReplicateProvider | None:
    """The configured deployment, or None when ``REELGATE_REPLICATE_API_TOKEN`` is unset."""
    token = (
        settings.replicate_api_token.get_secret_value().strip()
        if settings.replicate_api_token
        else ""
    )
    if not token:
        return None
    secret = (
        settings.replicate_webhook_secret.get_secret_value().strip()
        if settings.replicate_webhook_secret
        else ""
    )
    return ReplicateProvider(
        HttpDeployment(
            base_url=settings.replicate_base_url,
            api_key=token,
            timeout_seconds=context.timeout_seconds,
            downloads=context.downloads,
        ),
        webhook_secret=secret or None,
    )


PLUGIN = ProviderPlugin(
    kind="replicate",
    settings=ReplicateSettings,
    build=build,
    setup_hint="set REELGATE_REPLICATE_API_TOKEN",
    capabilities=Capabilities(
        cancel=True, idempotent_create=False, inbound_webhooks=True, finds_lost_creates=True
    ),
    default_base_url=DEFAULT_BASE_URL,
    key_setting="replicate_api_token",
    base_url_setting="replicate_base_url",
    emulator="reelgate.emulators.replicate",
    emulator_base_path="/v1",
)
