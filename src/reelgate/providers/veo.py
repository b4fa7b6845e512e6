"""Google Veo: long-running predict operations on the Gemini API or on Vertex AI.

Gemini API (:class:`VeoProvider`), key in the ``x-goog-api-key`` header::

    POST {base}/models/{model}:predictLongRunning     -> {"name": "models/{model}/operations/{id}"}
    GET  {base}/{name}                                -> {"name", "done"?, "response"?, "error"?}
    GET  response.generateVideoResponse.generatedSamples[0].video.uri   (a Files API link)

Vertex AI (:class:`VertexVeoProvider`, the default route since Google retired Veo on
the Gemini API on 2026-10-22), an OAuth access token as a bearer, minted and refreshed
from a service-account key or Application Default Credentials (``google_token``)::

    POST {base}/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning
    POST ...{m}:fetchPredictOperation {"operationName": name}
    response.videos[0].gcsUri (read through the GCS JSON API) or .bytesBase64Encoded

A finished operation with no video and ``raiMediaFilteredCount`` > 0 is a
safety refusal. A 404 to a create is the model gone (``ModelGone``): "This model
models/{m} is no longer available" on the Gemini API, "Publisher Model ... was not
found or your project does not have access to it" on Vertex. Neither API reports
progress, dedupes a re-sent create, or documents a cancel for these operations, so
the adapter claims none of that.

The credential travels only in a header, and only to the deployment's own
origins: a request hook on the client strips it from any other host,
redirect targets included. Nothing here logs or formats a credential.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.google_token import GoogleToken
from reelgate.providers.http import (
    HttpDeployment,
    accepted_credential,
    new_client,
    request_json,
    stream_download,
)
from reelgate.providers.plugin import BuildContext, Capabilities, ProviderPlugin, ProviderSettings

__all__ = [
    "GEMINI_BASE_URL",
    "PLUGIN",
    "RESULT_RETENTION",
    "VeoProvider",
    "VeoSettings",
    "VertexVeoProvider",
]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

log = logging.getLogger(__name__)

RESULT_RETENTION = timedelta(days=2)
"""How long the Gemini API keeps a generated video (ai.google.dev, "Veo" guide)."""

_CHUNK = 1 << 20
_MODEL = re.compile(r"[A-Za-z0-9][\w.-]*")
_GEMINI_OPERATION = re.compile(r"models/[\w.-]+/operations/[\w-]+")
_VERTEX_OPERATION = re.compile(
    r"projects/[\w.-]+/locations/[\w-]+/publishers/google/models/[\w.-]+/operations/[\w-]+"
)
_INLINE_SCHEME = "vertex-operation:"
"""Result URL of a video returned inline (base64) by Vertex: the operation to re-fetch."""

# Google's safety wording: "The prompt couldn't be submitted", "...violates ... usage
# guidelines ... Support codes: 15236754" (Vertex "Responsible AI" page for Veo).
_SAFETY = re.compile(
    r"usage guidelines|violat|responsible ai|safety|could ?n[o']t be submitted|support codes?:",
    re.IGNORECASE,
)
_IMAGE_FLAGGED = re.compile(
    r"\b(input|reference|provided|uploaded|first|last|your)[ -](image|frame)\b", re.IGNORECASE
)
_PROMPT_FLAGGED = re.compile(
    r"\bprompt\b.{0,40}\b(violat\w*|blocked|contains|could ?n[o']t be submitted|flagged)\b"
    r"|\b(violat\w*|blocked|flagged)\b.{0,40}\bprompt\b",
    re.IGNORECASE,
)
_AUTH_REASONS = frozenset(
    {
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "API_KEY_SERVICE_BLOCKED",
        "CREDENTIALS_MISSING",
        "ACCESS_TOKEN_EXPIRED",
        "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        "SERVICE_DISABLED",
    }
)
# google.rpc.Code values an operation's ``error`` may carry.
_RPC_RESOURCE_EXHAUSTED = 8
_RPC_UNAUTHENTICATED = 16
_RPC_RETRYABLE = frozenset({1, 2, 4, 10, 13, 14})  # CANCELLED, UNKNOWN, DEADLINE, ABORTED, ...

Origin = tuple[str, str, int | None]


def _origin(url: str) -> Origin:
    parsed = httpx.URL(url)
    return (parsed.scheme, parsed.host, parsed.port)


def _credential_guard(
    allowed: frozenset[Origin], header: str
) -> Callable[[httpx.Request], Awaitable[None]]:
    """A request hook: the credential header never leaves the deployment's origins.

    httpx forwards custom headers on redirects (it strips only Authorization,
    and only across origins), and a result URL is whatever the upstream said.
    """

    async def guard(request: httpx.Request) -> None:
        if (request.url.scheme, request.url.host, request.url.port) not in allowed:
            request.headers.pop(header, None)

    return guard


def _rpc_error(body: Any) -> tuple[str, str, frozenset[str], float | None]:
    """(message, status word, ErrorInfo reasons, RetryInfo delay) of a google.rpc envelope."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", frozenset(), None
    reasons: set[str] = set()
    delay: float | None = None
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            reasons.add(detail["reason"])
        elif kind.endswith("google.rpc.RetryInfo"):
            delay = _duration_seconds(detail.get("retryDelay"))
    return (
        str(error.get("message") or ""),
        str(error.get("status") or ""),
        frozenset(reasons),
        delay,
    )


def _duration_seconds(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON ("53s", "0.5s") as seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _flagged(message: str) -> str | None:
    """Which input Google blamed, when its message says so."""
    if _IMAGE_FLAGGED.search(message):
        return "image"
    if _PROMPT_FLAGGED.search(message):
        return "prompt"
    return None


def _refusal(message: str, **context: Any) -> Refused:
    flagged = _flagged(message)
    if flagged is not None:
        context["flagged"] = flagged
    return Refused(message, **context)


class VeoProvider:
    """Veo on the Gemini API. ``name`` is the provider kind the catalog uses."""

    name = "veo"
    route = "gemini"
    supports_cancel = False
    idempotent_create = False
    """The API takes no request id: a re-sent create starts a second (billed) video."""

    _credential_header = "x-goog-api-key"
    _credential_setting = "REELGATE_GEMINI_API_KEY"
    _gone_statuses = frozenset({403, 404, 410})
    """A Files API link past its retention answers 403/404, not a download."""

    def __init__(self, deployment: HttpDeployment) -> None:
        self._deployment = deployment
        self._client = new_client(deployment, self._credential_headers())
        guard = _credential_guard(self._trusted_origins(), self._credential_header)
        self._client.event_hooks = {"request": [*self._request_hooks(), guard], "response": []}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._deployment!r})"

    # -- the Provider protocol ------------------------------------------------------

    async def create(self, request: GenerationRequest) -> Submitted:
        model = self._upstream_model(request.upstream_model)
        answer = await request_json(
            self._client,
            "POST",
            self._create_path(model),
            classify=self._classify_create,
            json=self._body(request),
        )
        name = answer.get("name") if isinstance(answer, dict) else None
        if not isinstance(name, str) or self._operation_pattern().fullmatch(name) is None:
            raise TransientError(
                "Veo answered the create without an operation name", ambiguous=True
            )
        return Submitted(upstream_id=name)

    async def status(self, upstream_id: str) -> UpstreamStatus:
        operation = await self._fetch_operation(upstream_id)
        if not operation.get("done"):
            return UpstreamStatus(state=UpstreamState.RUNNING, progress=None)
        # A done operation stays done: whatever failed it, polling again cannot help.
        if operation.get("error") is not None:
            failed = self._operation_error(operation["error"], upstream_id)
            failed.terminal = True
            raise failed
        response = self._video_response(operation, upstream_id)
        results = self._results(response, upstream_id)
        if results:
            return UpstreamStatus(state=UpstreamState.SUCCEEDED, progress=None, result=results[0])
        reasons = [str(r) for r in response.get("raiMediaFilteredReasons") or []]
        filtered = response.get("raiMediaFilteredCount") or 0
        if reasons or (isinstance(filtered, int) and filtered > 0):
            message = "; ".join(reasons) or "Google's safety filters withheld the video"
            raise _refusal(message, upstream_id=upstream_id)
        raise TransientError(
            "the Veo operation finished without a video",
            code="no_result",
            upstream_id=upstream_id,
            terminal=True,
        )

    async def cancel(self, upstream_id: str) -> None:
        """Never called (``supports_cancel`` is False): no cancel is documented for Veo."""
        return None

    async def verify(self) -> None:
        """The credential check of ``reelgate providers check``: fetch an operation that
        does not exist (its 404 comes after authentication)."""
        try:
            await self._fetch_operation(self._probe_operation())
        except ProviderError as exc:
            if not accepted_credential(exc):
                raise

    def _probe_operation(self) -> str:
        return "models/veo-3.1-generate-001/operations/reelgatecheck0"

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        if not result.url.startswith(("https://", "http://")):
            raise InvalidRequest(f"not a Veo result link: {result.url}")
        async for chunk in stream_download(
            self._client,
            result.url,
            rules=self._deployment.downloads,
            classify=self._classify_download,
        ):
            yield chunk

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- deployment specifics (overridden for Vertex) ----------------------------------

    def _credential_headers(self) -> dict[str, str]:
        return {self._credential_header: self._deployment.api_key}

    def _request_hooks(self) -> list[Callable[[httpx.Request], Awaitable[None]]]:
        """Hooks that run before the credential guard (Vertex sets its fresh token)."""
        return []

    def _trusted_origins(self) -> frozenset[Origin]:
        return frozenset({_origin(self._deployment.base_url)})

    def _operation_pattern(self) -> re.Pattern[str]:
        return _GEMINI_OPERATION

    def _upstream_model(self, model: str) -> str:
        if _MODEL.fullmatch(model) is None:
            raise InvalidRequest(f"not a Veo model name: {model!r}")
        return model

    def _create_path(self, model: str) -> str:
        return f"/models/{model}:predictLongRunning"

    async def _fetch_operation(self, upstream_id: str) -> dict[str, Any]:
        self._check_operation(upstream_id)
        return self._as_operation(await self._call("GET", f"/{upstream_id}"))

    def _parameters(self, request: GenerationRequest) -> dict[str, Any]:
        if request.seed is not None:
            # google-genai refuses `seed` in Gemini API mode ("only supported in Vertex").
            log.debug("Veo on the Gemini API takes no seed; dropped for job %s", request.job_id)
        return {}

    def _video_response(self, operation: Mapping[str, Any], upstream_id: str) -> dict[str, Any]:
        response = operation.get("response")
        inner = response.get("generateVideoResponse") if isinstance(response, dict) else None
        if not isinstance(inner, dict):
            raise TransientError(
                "a finished Veo operation has no generateVideoResponse", upstream_id=upstream_id
            )
        return inner

    def _results(self, response: Mapping[str, Any], upstream_id: str) -> list[ResultLocation]:
        expires = datetime.now(UTC) + RESULT_RETENTION
        results = []
        for sample in response.get("generatedSamples") or []:
            video = sample.get("video") if isinstance(sample, dict) else None
            uri = video.get("uri") if isinstance(video, dict) else None
            if isinstance(uri, str) and uri:
                results.append(ResultLocation(url=uri, expires_at=expires))
        return results

    # -- shared machinery -----------------------------------------------------------

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        instance: dict[str, Any] = {"prompt": request.prompt}
        if request.source is not None:
            # Vertex's instances[].video: "bytesBase64Encoded" or "gcsUri", and "mimeType"
            # (Veo on Vertex AI API reference, "HTTP request")
            data = base64.b64encode(request.source.data).decode("ascii")
            instance["video"] = {"bytesBase64Encoded": data, "mimeType": request.source.mime_type}
        elif request.image is not None:
            instance["image"] = _image(request.image)
        parameters: dict[str, Any] = {
            "aspectRatio": request.aspect_ratio,
            "durationSeconds": request.duration_seconds,
            "resolution": request.resolution.lower(),
            "sampleCount": 1,
        }
        if request.negative_prompt:
            parameters["negativePrompt"] = request.negative_prompt
        parameters.update(self._parameters(request))
        return {"instances": [instance], "parameters": parameters}

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await request_json(
            self._client,
            method,
            path,
            classify=self._classify,
            **kwargs,
        )

    def _check_operation(self, upstream_id: str) -> None:
        if self._operation_pattern().fullmatch(upstream_id) is None:
            raise InvalidRequest(f"not a Veo operation name: {upstream_id!r}")

    @staticmethod
    def _as_operation(answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise TransientError("Veo answered a poll with something that is not an operation")
        return answer

    def _scrub(self, text: str) -> str:
        secret = self._deployment.api_key
        return text.replace(secret, "***") if secret else text

    def _auth_error(self, status: int, word: str) -> InvalidRequest:
        return InvalidRequest(
            f"Veo did not accept the configured credential (HTTP {status} {word}). "
            f"Check {self._credential_setting}.",
            code="upstream_auth",
            upstream_status=status,
        )

    def _is_auth_failure(self, status: int, message: str, reasons: frozenset[str]) -> bool:
        return (
            status == 401
            or bool(reasons & _AUTH_REASONS)
            or "unregistered callers" in message
            or "API key not valid" in message
        )

    def _classify(self, status: int, body: Any) -> ProviderError | None:
        """API calls: auth, RetryInfo quota, and safety refusals before the defaults."""
        message, word, reasons, retry = _rpc_error(body)
        message = self._scrub(message) or f"HTTP {status}"
        if self._is_auth_failure(status, message, reasons) or status == 403:
            return self._auth_error(status, word or "PERMISSION_DENIED")
        if status == 429:
            if retry is None:
                return None  # the shared default reads a Retry-After header, if any
            return QuotaExceeded(message, upstream_status=status, retry_after=retry)
        if 400 <= status < 500 and status not in (408, 409, 425):
            if _SAFETY.search(message):
                return _refusal(message, upstream_status=status)
            detail: dict[str, Any] = {"upstream_code": word} if word else {}
            return InvalidRequest(message, upstream_status=status, **detail)
        return None

    def _classify_create(self, status: int, body: Any) -> ProviderError | None:
        """A create's path names the model: its 404 (or 410) means the model is not
        served here (retired, or not enabled for the project), not a bad request."""
        if status in (404, 410):
            message, word, _, _ = _rpc_error(body)
            detail: dict[str, Any] = {"upstream_code": word} if word else {}
            return ModelGone(
                self._scrub(message) or f"HTTP {status}", upstream_status=status, **detail
            )
        return self._classify(status, body)

    def _classify_download(self, status: int, body: Any) -> ProviderError | None:
        message, word, reasons, _ = _rpc_error(body)
        message = self._scrub(message) or f"HTTP {status}"
        if self._is_auth_failure(status, message, reasons):
            return self._auth_error(status, word or "UNAUTHENTICATED")
        if status in self._gone_statuses:
            return InvalidRequest(
                f"the upstream result link is no longer valid (HTTP {status}): {message}",
                code="result_expired",
                upstream_status=status,
            )
        return self._classify(status, body)

    def _operation_error(self, error: Any, upstream_id: str) -> ProviderError:
        """A finished operation's google.rpc.Status, classified like an HTTP answer."""
        code = error.get("code") if isinstance(error, dict) else None
        message = self._scrub(str(error.get("message") or "")) if isinstance(error, dict) else ""
        message = message or "the Veo operation failed"
        if _SAFETY.search(message):
            return _refusal(message, upstream_id=upstream_id)
        if code == _RPC_RESOURCE_EXHAUSTED:
            return QuotaExceeded(message, upstream_id=upstream_id)
        if code == _RPC_UNAUTHENTICATED:
            return self._auth_error(401, "UNAUTHENTICATED")
        if code in _RPC_RETRYABLE or not isinstance(code, int):
            return TransientError(message, upstream_id=upstream_id)
        return InvalidRequest(message, upstream_id=upstream_id, upstream_code=code)


VERTEX_EXTENDS = frozenset(
    {
        "veo-3.1-generate-001",
        "veo-3.1-fast-generate-001",
        "veo-3.1-lite-generate-001",
        "veo-3.1-generate-preview",
        "veo-3.1-fast-generate-preview",
    }
)
"""The models Vertex's "Extend Veo on Vertex AI-generated videos" page lists (with the
Veo 2 previews, which reelgate does not serve)."""
VERTEX_EXTENDED_MAX_SECONDS = 30.0


class VertexVeoProvider(VeoProvider):
    """Veo on Vertex AI: same instances/parameters, OAuth bearer, POST polling.

    ``deployment.base_url`` is ``https://{location}-aiplatform.googleapis.com/v1``;
    ``storage_uri`` (``gs://bucket/prefix``) makes Vertex write videos to GCS
    instead of returning them inline. The model ids come from the catalog's
    ``vertex`` route (Vertex lists ``veo-3.1-generate-001``, not the previews).
    ``token`` mints the bearer (refreshed before it expires); without one, the
    deployment's key is used as a fixed access token.
    """

    route = "vertex"

    def edits_natively(
        self, edit: str, upstream_model: str, duration_seconds: int, source_seconds: float
    ) -> bool:
        """Vertex extends videos of the Veo 3.1 models "to between 1 and 30 seconds in
        length" ("Extend Veo on Vertex AI-generated videos", which lists the models);
        it has no remix."""
        return (
            edit == "extend"
            and upstream_model in VERTEX_EXTENDS
            and source_seconds >= 1.0
            and source_seconds + duration_seconds <= VERTEX_EXTENDED_MAX_SECONDS
        )

    _credential_header = "authorization"
    _credential_setting = (
        "REELGATE_VERTEX_CREDENTIALS_FILE, the Application Default Credentials or "
        "REELGATE_VERTEX_ACCESS_TOKEN (a fixed token expires after about an hour)"
    )
    _gone_statuses = frozenset({404, 410})
    """GCS answers 404 for a deleted object; its 403 is a permission problem."""

    def __init__(
        self,
        deployment: HttpDeployment,
        *,
        project: str,
        location: str,
        storage_uri: str | None = None,
        gcs_base_url: str = "https://storage.googleapis.com",
        token: GoogleToken | None = None,
    ) -> None:
        if not re.fullmatch(r"[\w.-]+", project) or not re.fullmatch(r"[\w-]+", location):
            raise ValueError("Vertex project and location must be plain identifiers")
        if storage_uri is not None and not storage_uri.startswith("gs://"):
            raise ValueError("storage_uri must be a gs:// URI")
        self._project = project
        self._location = location
        self._storage_uri = storage_uri
        self._gcs_base = gcs_base_url.rstrip("/")
        self._token = token or GoogleToken.fixed(deployment.api_key)
        super().__init__(deployment)

    def _credential_headers(self) -> dict[str, str]:
        return {}  # set per request by _authorize, with a token that is still fresh

    def _request_hooks(self) -> list[Callable[[httpx.Request], Awaitable[None]]]:
        trusted = self._trusted_origins()

        async def authorize(request: httpx.Request) -> None:
            if (request.url.scheme, request.url.host, request.url.port) in trusted:
                request.headers[self._credential_header] = f"Bearer {await self._token.get()}"

        return [authorize]

    def _scrub(self, text: str) -> str:
        token = self._token.current
        return super()._scrub(text.replace(token, "***") if token else text)

    def _trusted_origins(self) -> frozenset[Origin]:
        return frozenset({_origin(self._deployment.base_url), _origin(self._gcs_base)})

    def _operation_pattern(self) -> re.Pattern[str]:
        return _VERTEX_OPERATION

    def _probe_operation(self) -> str:
        return (
            f"projects/{self._project}/locations/{self._location}/publishers/google/models/"
            "veo-3.1-generate-001/operations/00000000-0000-0000-0000-000000000000"
        )

    def _create_path(self, model: str) -> str:
        return (
            f"/projects/{self._project}/locations/{self._location}"
            f"/publishers/google/models/{model}:predictLongRunning"
        )

    async def _fetch_operation(self, upstream_id: str) -> dict[str, Any]:
        self._check_operation(upstream_id)
        resource = upstream_id.rpartition("/operations/")[0]
        answer = await self._call(
            "POST", f"/{resource}:fetchPredictOperation", json={"operationName": upstream_id}
        )
        return self._as_operation(answer)

    def _parameters(self, request: GenerationRequest) -> dict[str, Any]:
        extra: dict[str, Any] = {"generateAudio": True}
        if request.seed is not None:
            extra["seed"] = request.seed
        if self._storage_uri is not None:
            extra["storageUri"] = self._storage_uri
        return extra

    def _video_response(self, operation: Mapping[str, Any], upstream_id: str) -> dict[str, Any]:
        response = operation.get("response")
        if not isinstance(response, dict):
            raise TransientError(
                "a finished Veo operation has no response", upstream_id=upstream_id
            )
        return response

    def _results(self, response: Mapping[str, Any], upstream_id: str) -> list[ResultLocation]:
        results = []
        for index, video in enumerate(response.get("videos") or []):
            if not isinstance(video, dict):
                continue
            mime = str(video.get("mimeType") or "video/mp4")
            if isinstance(video.get("gcsUri"), str) and video["gcsUri"].startswith("gs://"):
                results.append(ResultLocation(url=video["gcsUri"], content_type=mime))
            elif video.get("bytesBase64Encoded"):
                url = f"{_INLINE_SCHEME}{upstream_id}#{index}"
                results.append(ResultLocation(url=url, content_type=mime))
        return results

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        if result.url.startswith(_INLINE_SCHEME):
            async for chunk in self._download_inline(result.url):
                yield chunk
            return
        if not result.url.startswith("gs://"):
            raise InvalidRequest(f"not a Vertex Veo result: {result.url}")
        bucket, _, name = result.url.removeprefix("gs://").partition("/")
        if not bucket or not name:
            raise InvalidRequest(f"not a GCS object URI: {result.url}")
        url = f"{self._gcs_base}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        # the GCS JSON API is another origin than Vertex's: the bearer goes there by name
        # (netsafe sends it to that first origin only, never to a redirect's)
        bearer = {self._credential_header: f"Bearer {await self._token.get()}"}
        async for chunk in stream_download(
            self._client,
            f"{url}?alt=media",
            rules=self._deployment.downloads,
            headers=bearer,
            classify=self._classify_download,
        ):
            yield chunk

    async def _download_inline(self, url: str) -> AsyncIterator[bytes]:
        """Re-fetch the operation and decode its video: nothing waits in memory between steps."""
        upstream_id, _, index = url.removeprefix(_INLINE_SCHEME).partition("#")
        operation = await self._fetch_operation(upstream_id)
        response = operation.get("response")
        videos = response.get("videos") if isinstance(response, dict) else None
        position = int(index) if index.isdigit() else 0
        if not isinstance(videos, list) or position >= len(videos):
            raise InvalidRequest(
                "the Vertex operation no longer holds its video", code="result_expired"
            )
        encoded = (
            videos[position].get("bytesBase64Encoded")
            if isinstance(videos[position], dict)
            else None
        )
        if not isinstance(encoded, str):
            raise InvalidRequest(
                "the Vertex operation no longer holds its video", code="result_expired"
            )
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TransientError("Vertex returned a video that is not valid base64") from exc
        del operation, response, videos, encoded
        for start in range(0, len(data), _CHUNK):
            yield data[start : start + _CHUNK]


def _image(image: ImageInput) -> dict[str, str]:
    """Veo takes the first frame inline (the Gemini API accepts no image URL)."""
    if image.data is None:
        raise InvalidRequest(
            "Veo needs the image bytes; the image could not be read", code="invalid_image"
        )
    return {
        "bytesBase64Encoded": base64.b64encode(image.data).decode("ascii"),
        "mimeType": image.mime_type or "image/png",
    }


class VeoSettings(ProviderSettings):
    """Vertex AI (the default: a project plus credentials), else a Gemini API key."""

    vertex_project: str = ""
    vertex_location: str = "us-central1"
    """A region (``us-central1``) or ``global``."""
    vertex_credentials_file: Path | None = None
    """A service-account key file (JSON): its tokens are minted and refreshed."""
    vertex_use_adc: bool = False
    """Use Application Default Credentials (``google.auth.default()``)."""
    vertex_access_token: SecretStr | None = None
    """A fixed OAuth access token, used as given (it expires after about an hour)."""
    vertex_base_url: str = ""
    """Default: https://{location}-aiplatform.googleapis.com/v1 (aiplatform.googleapis.com
    for ``global``), as google-genai builds it."""
    vertex_storage_uri: str = ""
    """``gs://bucket/prefix``: Vertex writes the videos into the operator's bucket (read
    back through the GCS JSON API) instead of returning them inline."""
    vertex_gcs_base_url: str = "https://storage.googleapis.com"
    gemini_api_key: SecretStr | None = None
    """The Gemini API route: Google retired Veo there on 2026-10-22; kept for keys that
    still work (a 404 "no longer available" falls back and marks the model gone)."""
    gemini_base_url: str = GEMINI_BASE_URL


def vertex_base_url(location: str) -> str:
    """google-genai's ``_api_client``: ``global`` has no regional prefix, ``us``/``eu``
    are multi-region endpoints, and any other location is a region."""
    if location == "global":
        return "https://aiplatform.googleapis.com/v1"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com/v1"
    return f"https://{location}-aiplatform.googleapis.com/v1"


def _vertex_token(settings: VeoSettings) -> tuple[GoogleToken | None, str]:
    """The configured credential, and the project (ADC may name one)."""
    project = settings.vertex_project
    if settings.vertex_credentials_file is not None:
        return GoogleToken.from_service_account_file(settings.vertex_credentials_file), project
    if settings.vertex_use_adc:
        token, adc_project = GoogleToken.from_adc()
        return token, project or adc_project or ""
    if settings.vertex_access_token is not None:
        fixed = settings.vertex_access_token.get_secret_value()
        return (GoogleToken.fixed(fixed) if fixed else None), project
    return None, project


def build(settings: VeoSettings, context: BuildContext) -> VeoProvider | None:
    """Vertex AI when a project and a credential are set, else the Gemini API when its
    key is set, else None (the registry then lists the Veo models as unavailable)."""
    timeout, downloads = context.timeout_seconds, context.downloads
    token, project = _vertex_token(settings)
    if token is not None and project:
        location = settings.vertex_location
        base_url = settings.vertex_base_url or vertex_base_url(location)
        return VertexVeoProvider(
            HttpDeployment(base_url, token.current or "", timeout, downloads),
            project=project,
            location=location,
            storage_uri=settings.vertex_storage_uri or None,
            gcs_base_url=settings.vertex_gcs_base_url,
            token=token,
        )
    gemini_key = settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else ""
    if gemini_key:
        return VeoProvider(HttpDeployment(settings.gemini_base_url, gemini_key, timeout, downloads))
    return None


PLUGIN = ProviderPlugin(
    kind="veo",
    settings=VeoSettings,
    build=build,
    setup_hint=(
        "set REELGATE_VERTEX_PROJECT and a credential: REELGATE_VERTEX_CREDENTIALS_FILE (a "
        "service-account key), REELGATE_VERTEX_USE_ADC=true or REELGATE_VERTEX_ACCESS_TOKEN"
    ),
    capabilities=Capabilities(cancel=False, idempotent_create=False, regions=("vertex", "gemini")),
    default_base_url="https://{location}-aiplatform.googleapis.com/v1",
    key_setting="vertex_access_token",
    base_url_setting="vertex_base_url",
    emulator="reelgate.emulators.veo",
    emulator_base_path="/v1",
    emulator_extra={"vertex_project": "emulator-project", "vertex_location": "us-central1"},
)
