"""Alibaba Wan (2.1, 2.2, 2.5) on DashScope / Model Studio: the ``wan`` provider kind.

A deployment is one region (``REELGATE_DASHSCOPE_REGION``): keys, base URLs and
model names are per region (international ``wan2.1-t2v-turbo``, Beijing
``wanx2.1-t2v-turbo``); the region is the deployment's route, so the catalog's
``routes`` give each model's name there. "Model not exist." (400 InvalidParameter,
sometimes 404) and ``ModelNotFound`` are ``ModelGone``: the job falls back. A 429
carries no Retry-After (none is documented), so the engine's default cooldown
applies.

Wire format, as documented for the legacy video-synthesis protocol
(docs/providers/wan.md has the sources):

    POST {base}/services/aigc/video-generation/video-synthesis   X-DashScope-Async: enable
         {"model", "input": {"prompt", "negative_prompt"?, "img_url"?},
          "parameters": {"size": "832*480" | "resolution": "480P", "duration", "seed",
                         "prompt_extend"}}
      -> {"output": {"task_id", "task_status": "PENDING"}, "request_id"}
    GET  {base}/tasks/{task_id}
      -> {"output": {"task_status": PENDING|RUNNING|SUCCEEDED|FAILED|CANCELED|UNKNOWN,
                     "video_url"?, "code"?, "message"?}, "usage": {...}}
    POST {base}/tasks/{task_id}/cancel        (only a PENDING task can be canceled)
    errors: {"code", "message", "request_id"}

Text-to-video takes an exact ``size`` from a fixed table per resolution tier
(720p square is 960*960, not 720*720); image-to-video takes a ``resolution``
tier instead and follows the input image's aspect ratio. The video_url is a
pre-signed OSS link that must be fetched *without* our Authorization header:
sending the key to the storage host would leak it.

This module never logs the API key and never puts it in a message or a URL.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from pydantic import Field, SecretStr

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
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)
from reelgate.providers.http import (
    Classifier,
    HttpDeployment,
    new_client,
    request_json,
    stream_download,
)
from reelgate.providers.plugin import BuildContext, Capabilities, ProviderPlugin, ProviderSettings

__all__ = [
    "I2V_RESOLUTIONS",
    "PLUGIN",
    "REGION_BASE_URLS",
    "T2V_SIZES",
    "WanProvider",
    "WanSettings",
]

CREATE_PATH = "/services/aigc/video-generation/video-synthesis"
_KEY_SETTING = "REELGATE_DASHSCOPE_API_KEY"
_URL_SETTING = "REELGATE_DASHSCOPE_BASE_URL"
_MAX_SEED = 2_147_483_647

T2V_SIZES: Mapping[tuple[str, str], str] = {
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
"""(resolution, aspect ratio) -> the text-to-video ``size``: DashScope accepts only these."""

I2V_RESOLUTIONS: Mapping[str, str] = {"480p": "480P", "720p": "720P", "1080p": "1080P"}
"""Image-to-video takes a tier; the aspect ratio follows the input image."""

# Content inspection ("Green net"): a refusal, whether at create or as a FAILED task.
_MODEL_MISSING = re.compile(r"model (does )?not exist|model can ?not be found", re.IGNORECASE)
"""DashScope's words for a model name its region does not serve (tests/fixtures/wire/wan/)."""
_REFUSAL_CODES = frozenset(
    {
        "DataInspectionFailed",
        "data_inspection_failed",
        "IPInfringementSuspect",
        "CustomRoleBlocked",
        "FaqRuleBlocked",
    }
)
# Rate limits, spent quota and unpaid accounts: another model may still serve the job.
_QUOTA_CODES = frozenset(
    {
        "Throttling",
        "Throttling.RateQuota",
        "Throttling.AllocationQuota",
        "Throttling.BurstRate",
        "LimitRequests",
        "insufficient_quota",
        "Arrearage",
        "AllocationQuota.FreeTierOnly",
        "PrepaidBillOverdue",
        "PostpaidBillOverdue",
        "CommodityNotPurchased",
    }
)
_AUTH_CODES = frozenset(
    {
        "InvalidApiKey",
        "InvalidAPIKey",
        "Workspace.AccessDenied",
        "Model.AccessDenied",
        "AccessDenied.Unpurchased",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalError.Algo",
        "InternalError.Timeout",
        "SystemError",
        "ModelUnavailable",
        "ServiceUnavailable",
        "RequestTimeOut",
        "ModelServiceFailed",
    }
)
_OSS_DATE = re.compile(r"\d{8}T\d{6}Z")


class WanProvider:
    """One DashScope deployment (region + API key) serving Wan text- and image-to-video.

    ``t2v_model`` overrides the catalog's upstream model for text-to-video;
    ``i2v_model`` is used whenever the request carries an image (default: the
    t2v name with ``-t2v-`` replaced by ``-i2v-``, e.g. wan2.1-i2v-turbo).
    ``prompt_extend`` is DashScope's own prompt rewriting (its default is on).
    """

    name = "wan"
    supports_cancel = True
    idempotent_create = False
    """DashScope has no idempotency key for task creation: a re-sent create is a new task."""

    def __init__(
        self,
        deployment: HttpDeployment,
        *,
        t2v_model: str | None = None,
        i2v_model: str | None = None,
        prompt_extend: bool = True,
        region: str = "intl",
    ) -> None:
        self._deployment = deployment
        self.route = region
        self._t2v_model = t2v_model
        self._i2v_model = i2v_model
        self._prompt_extend = prompt_extend
        self._api = new_client(deployment, {"Authorization": f"Bearer {deployment.api_key}"})
        self._files = new_client(deployment, {})  # result links are pre-signed: no key
        self._classify = _classifier(deployment.api_key)

    def __repr__(self) -> str:
        return f"WanProvider({self._deployment!r})"

    async def create(self, request: GenerationRequest) -> Submitted:
        body = self.create_body(request)
        try:
            answer = await request_json(
                self._api,
                "POST",
                CREATE_PATH,
                json=body,
                headers={"X-DashScope-Async": "enable"},
                classify=self._classify,
            )
        except Refused as exc:
            _default_flag(exc, had_image=request.image is not None)
            raise
        except ModelGone as exc:
            exc.details["upstream_model"] = body["model"]  # the i2v name may differ
            raise
        output = answer.get("output") if isinstance(answer, dict) else None
        task_id = output.get("task_id") if isinstance(output, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise self._business_error(answer, had_image=request.image is not None)
        return Submitted(task_id)

    def create_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The exact JSON DashScope receives for ``request`` (public for tests and docs)."""
        t2v_model = self._t2v_model or request.upstream_model
        inputs: dict[str, Any] = {"prompt": request.prompt}
        if request.negative_prompt:
            inputs["negative_prompt"] = request.negative_prompt
        parameters: dict[str, Any] = {}
        if request.image is None:
            model = t2v_model
            size = T2V_SIZES.get((request.resolution.lower(), request.aspect_ratio))
            if size is None:
                raise InvalidRequest(
                    f"Wan text-to-video has no size for {request.resolution} at "
                    f"{request.aspect_ratio}",
                    code="unsupported_size",
                )
            parameters["size"] = size
        else:
            model = self._i2v_model or t2v_model.replace("-t2v-", "-i2v-")
            tier = I2V_RESOLUTIONS.get(request.resolution.lower())
            if tier is None:
                raise InvalidRequest(
                    f"Wan image-to-video has no {request.resolution} tier",
                    code="unsupported_size",
                )
            inputs["img_url"] = _image_reference(request)
            parameters["resolution"] = tier
        parameters["duration"] = request.duration_seconds
        parameters["prompt_extend"] = self._prompt_extend
        if request.seed is not None:
            # Gateway seeds go to 2**32-1, DashScope's stop at 2**31-1: fold, reproducibly.
            parameters["seed"] = request.seed & _MAX_SEED
        return {"model": model, "input": inputs, "parameters": parameters}

    async def verify(self) -> None:
        """The credential check of ``reelgate providers check``: one page of the task list."""
        await request_json(
            self._api,
            "GET",
            "/tasks",
            params={"page_no": 1, "page_size": 1},
            classify=self._classify,
        )

    async def status(self, upstream_id: str) -> UpstreamStatus:
        answer = await request_json(
            self._api,
            "GET",
            f"/tasks/{quote(upstream_id, safe='')}",
            classify=self._classify,
        )
        output = answer.get("output") if isinstance(answer, dict) else None
        if not isinstance(output, dict) or not isinstance(output.get("task_status"), str):
            if isinstance(answer, dict) and answer.get("code"):
                raise self._business_error(answer, had_image=None)
            raise TransientError("DashScope answered a task query without a task_status")
        return self._status_from(upstream_id, output, answer.get("usage"))

    def _status_from(self, upstream_id: str, output: dict[str, Any], usage: Any) -> UpstreamStatus:
        state = output["task_status"]
        if state == "PENDING":
            return UpstreamStatus(UpstreamState.PENDING)
        if state in ("RUNNING", "SUSPENDED"):
            return UpstreamStatus(UpstreamState.RUNNING)
        if state == "SUCCEEDED":
            url = output.get("video_url")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise TransientError(
                    "DashScope reported SUCCEEDED without a video_url", upstream_id=upstream_id
                )
            return UpstreamStatus(
                UpstreamState.SUCCEEDED,
                progress=100,
                result=ResultLocation(url=url, expires_at=_link_expiry(url)),
                duration_seconds=_video_seconds(usage),
                extra={"actual_prompt": output["actual_prompt"]}
                if isinstance(output.get("actual_prompt"), str)
                else {},
            )
        if state == "FAILED":
            raise self._business_error({"output": output}, had_image=None, task_id=upstream_id)
        if state == "CANCELED":
            raise InvalidRequest(
                f"DashScope task {upstream_id} was canceled upstream",
                code="upstream_canceled",
                upstream_id=upstream_id,
                terminal=True,
            )
        if state == "UNKNOWN":
            raise InvalidRequest(
                f"DashScope no longer knows task {upstream_id} (task ids live 24 hours)",
                code="upstream_task_unknown",
                upstream_id=upstream_id,
                terminal=True,
            )
        raise TransientError(f"DashScope answered an unknown task_status {state!r}")

    async def find_created(
        self, request: GenerationRequest, since: datetime, exclude: frozenset[str]
    ) -> list[str]:
        """Tasks of the request's model created since ``since`` whose prompt is the
        request's. The batch task query ``GET /tasks`` (by time window and
        ``model_name``, paged by ``page_no``; dashscope-sdk-python ``base_api.py``
        ``list``) shows no prompt, so each candidate's own ``GET /tasks/{id}`` is read
        for its ``orig_prompt``. The window's time zone is not documented: it is
        widened by a day each side and ``gmt_create`` (epoch ms) decides."""
        model = self.create_body(request)["model"]
        floor = int(since.timestamp() * 1000)
        candidates = [
            (created, task_id)
            for created, task_id in await self._listed(model, since)
            if task_id not in exclude and created >= floor
        ]
        found: list[str] = []
        for _created, task_id in sorted(candidates):
            prompt = await self._prompt_of(task_id)
            if prompt is None:
                raise TransientError(
                    f"task {task_id} does not show its prompt yet; looking again later",
                    code="lookup_pending",
                )
            if prompt == request.prompt:
                found.append(task_id)
        return found

    async def _listed(self, model: str, since: datetime) -> list[tuple[int, str]]:
        window = {
            "start_time": _clock(since - timedelta(days=1)),
            "end_time": _clock(datetime.now(UTC) + timedelta(days=1)),
            "model_name": model,
            "page_size": str(_LIST_PAGE_SIZE),
        }
        listed: list[tuple[int, str]] = []
        for page_no in range(1, _LIST_PAGES + 1):
            answer = await request_json(
                self._api,
                "GET",
                "/tasks",
                params={**window, "page_no": str(page_no)},
                classify=self._classify,
            )
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list):
                raise TransientError("DashScope answered a task list without data")
            for task in data:
                if not isinstance(task, dict):
                    continue
                created, task_id = task.get("gmt_create"), task.get("task_id")
                if (
                    isinstance(created, int)
                    and isinstance(task_id, str)
                    and task.get("model_name") in (model, None)
                    and task.get("status") != "CANCELED"
                ):
                    listed.append((created, task_id))
            pages = answer.get("total_page")
            if not isinstance(pages, int) or page_no >= pages:
                return listed
        raise TransientError(
            f"more than {_LIST_PAGES * _LIST_PAGE_SIZE} tasks in the window; not searched to "
            "the end",
            code="lookup_incomplete",
        )

    async def _prompt_of(self, task_id: str) -> str | None:
        answer = await request_json(
            self._api, "GET", f"/tasks/{quote(task_id, safe='')}", classify=self._classify
        )
        output = answer.get("output") if isinstance(answer, dict) else None
        prompt = output.get("orig_prompt") if isinstance(output, dict) else None
        return prompt if isinstance(prompt, str) else None

    async def cancel(self, upstream_id: str) -> None:
        await request_json(
            self._api,
            "POST",
            f"/tasks/{quote(upstream_id, safe='')}/cancel",
            classify=self._classify,
        )

    async def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        if not result.url.startswith(("https://", "http://")):
            raise InvalidRequest(f"not a DashScope result link: {result.url[:80]}")
        async for chunk in stream_download(
            self._files, result.url, rules=self._deployment.downloads, classify=_expired_link
        ):
            yield chunk

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._files.aclose()

    def _business_error(
        self, answer: Any, *, had_image: bool | None, task_id: str | None = None
    ) -> ProviderError:
        """A failure told in a 2xx body: a FAILED task's output, or a code instead of a task."""
        source = answer.get("output") if isinstance(answer, dict) else None
        if not isinstance(source, dict) or "code" not in source:
            source = answer if isinstance(answer, dict) else {}
        code, message = _code_and_message(source)
        details: dict[str, Any] = {"upstream_id": task_id} if task_id else {}
        if code is None:
            what = "a FAILED task without an error code" if task_id else "no task id and no error"
            return TransientError(
                f"DashScope answered {what}", terminal=task_id is not None, **details
            )
        error = self._classify(200, {"code": code, "message": message})
        if isinstance(error, Refused) and had_image is not None:
            _default_flag(error, had_image=had_image)
        if error is None:
            error = InvalidRequest(f"DashScope {code}: {message}", upstream_code=code)
        error.details.update(details)
        error.terminal = task_id is not None  # a FAILED task stays failed
        return error


_LIST_PAGE_SIZE = 50
_LIST_PAGES = 20


def _clock(moment: datetime) -> str:
    """DashScope's task-list time format, ``YYYYMMDDhhmmss``."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def _image_reference(request: GenerationRequest) -> str:
    """Inline bytes as a data URI (works whether or not DashScope can reach the URL)."""
    image = request.image
    assert image is not None
    if image.data is not None:
        mime = image.mime_type or "image/png"
        return f"data:{mime};base64,{base64.b64encode(image.data).decode('ascii')}"
    if image.url:
        return image.url
    raise InvalidRequest("image-to-video needs image bytes or an image URL")


def _code_and_message(body: Mapping[str, Any]) -> tuple[str | None, str]:
    code = body.get("code")
    message = body.get("message")
    return (
        code if isinstance(code, str) and code else None,
        message if isinstance(message, str) and message else "no message",
    )


def _default_flag(error: Refused, *, had_image: bool) -> None:
    """An unspecific input refusal of a text-only request can only be about the prompt."""
    text = error.message.lower()
    if "flagged" not in error.details and not had_image and "output" not in text:
        error.details["flagged"] = "prompt"


def _flagged(message: str) -> str | None:
    text = message.lower()
    if "output" in text:
        return None  # the generated video was flagged, not an input
    if "image" in text:
        return "image"
    if "text" in text or "prompt" in text:
        return "prompt"
    return None


def _classifier(api_key: str) -> Classifier:
    """DashScope's error codes -> reelgate's classes; None leaves the HTTP-status defaults."""

    def scrub(message: str) -> str:
        return message.replace(api_key, "***") if api_key else message

    def classify(status: int, body: Any) -> ProviderError | None:
        if not isinstance(body, dict):
            return None
        code, raw = _code_and_message(body)
        message = scrub(raw)
        if code is None:
            return _auth_error(status, None) if status == 401 else None
        if code == "ModelNotFound" or (
            code == "InvalidParameter" and _MODEL_MISSING.search(message)
        ):
            return ModelGone(message, upstream_status=status, upstream_code=code)
        if code in _REFUSAL_CODES or code.endswith(".DataInspectionFailed"):
            refused = Refused(message, upstream_status=status, upstream_code=code)
            if flag := _flagged(message):
                refused.details["flagged"] = flag
            return refused
        if code in _QUOTA_CODES or code.startswith("Throttling"):
            # a Retry-After, if one ever comes, is filled in by classify_response
            return QuotaExceeded(message, upstream_status=status, upstream_code=code)
        if code in _AUTH_CODES or status == 401:
            return _auth_error(status, code)
        if code in _TRANSIENT_CODES or code.startswith("InternalError"):
            return TransientError(message, upstream_status=status, upstream_code=code)
        if 400 <= status < 500 and status not in (408, 409, 425, 429):
            return InvalidRequest(
                f"DashScope {code}: {message}", upstream_status=status, upstream_code=code
            )
        return None

    return classify


def _auth_error(status: int, code: str | None) -> InvalidRequest:
    what = f"DashScope refused the credentials ({code or f'HTTP {status}'})"
    return InvalidRequest(
        f"{what}: check {_KEY_SETTING}, and that the key belongs to the region of "
        f"{_URL_SETTING} (DashScope keys are per region) with access to the Wan models",
        code="upstream_auth",
        upstream_status=status,
    )


def _expired_link(status: int, body: Any) -> ProviderError | None:
    """OSS answers 403 (or 404) once a pre-signed result link has lapsed."""
    if status in (403, 404, 410):
        return InvalidRequest(
            f"the DashScope result link answered HTTP {status}: it has expired "
            "(DashScope keeps video_url for 24 hours)",
            code="result_expired",
            upstream_status=status,
        )
    return None


def _link_expiry(url: str) -> datetime | None:
    """When the pre-signed OSS link lapses (V1 ``Expires``; V4 ``x-oss-date`` + ``-expires``)."""
    query = parse_qs(urlsplit(url).query)
    expires = query.get("Expires", [""])[0]
    if expires.isdigit():
        return datetime.fromtimestamp(int(expires), UTC)
    date, seconds = query.get("x-oss-date", [""])[0], query.get("x-oss-expires", [""])[0]
    if _OSS_DATE.fullmatch(date) and seconds.isdigit():
        start = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return start + timedelta(seconds=int(seconds))
    return None


def _video_seconds(usage: Any) -> float | None:
    if not isinstance(usage, dict):
        return None
    for key in ("video_duration", "output_video_duration", "duration"):
        value = usage.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


REGION_BASE_URLS = {
    "intl": "https://dashscope-intl.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
    "us": "https://dashscope-us.aliyuncs.com/api/v1",
}
"""Singapore (international), Beijing and Virginia, per Alibaba's API references; the
workspace hosts ``{WorkspaceId}.{region}.maas.aliyuncs.com`` also work (set the base
URL). The model, the key and the URL must all be of one region."""


class WanSettings(ProviderSettings):
    """Alibaba Cloud Model Studio (DashScope): a region, its key, and (optionally) a
    base URL in that region (default: the region's own)."""

    dashscope_api_key: SecretStr | None = None
    dashscope_region: str = Field(default="intl", pattern="^(intl|beijing|us)$")
    dashscope_base_url: str = REGION_BASE_URLS["intl"]


def build(settings: WanSettings, context: BuildContext) -> WanProvider | None:
    """The configured deployment, or None when ``REELGATE_DASHSCOPE_API_KEY`` is unset."""
    key = (
        settings.dashscope_api_key.get_secret_value().strip() if settings.dashscope_api_key else ""
    )
    if not key:
        return None
    region = settings.dashscope_region
    chosen = "dashscope_base_url" in settings.model_fields_set
    deployment = HttpDeployment(
        base_url=settings.dashscope_base_url if chosen else REGION_BASE_URLS[region],
        api_key=key,
        timeout_seconds=context.timeout_seconds,
        downloads=context.downloads,
    )
    return WanProvider(deployment, region=region)


PLUGIN = ProviderPlugin(
    kind="wan",
    settings=WanSettings,
    build=build,
    setup_hint="set REELGATE_DASHSCOPE_API_KEY",
    capabilities=Capabilities(
        cancel=True,
        idempotent_create=False,
        finds_lost_creates=True,
        regions=tuple(REGION_BASE_URLS),
    ),
    default_base_url="https://dashscope-intl.aliyuncs.com/api/v1",
    key_setting="dashscope_api_key",
    base_url_setting="dashscope_base_url",
    emulator="reelgate.emulators.wan",
    emulator_base_path="/api/v1",
)
