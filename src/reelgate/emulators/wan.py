"""A stand-in for DashScope's Wan video synthesis (legacy protocol), on loopback.

Serves the real paths under ``/api/v1`` for the international (Singapore) region
and under ``/beijing/api/v1`` for Beijing (a stand-in for its own host,
dashscope.aliyuncs.com): point a deployment's base URL at one of them. Each region
knows its own model names: international ``wan2.1-*``, Beijing ``wanx2.1-*``
(Alibaba's EN and ZH references), both ``wan2.2-*`` and ``wan2.5-*-preview``; any
other name is DashScope's 400 InvalidParameter "Model not exist.". It checks
``Authorization: Bearer`` like DashScope (401 ``InvalidApiKey``), requires
``X-DashScope-Async: enable`` on create, answers with DashScope's envelopes and
status words, and serves results from ``/results/...`` as pre-signed-looking OSS
links that need no key.

Fault keywords map to DashScope's own signals:

    refuse        400 DataInspectionFailed at create ("Input text data ...")
    refuse-image  the task ends FAILED with DataInspectionFailed ("Input image data ...")
    quota         429 Throttling.RateQuota, with no Retry-After (DashScope documents none)
    slow-create   the task is created, its create answer held back (a lost answer)
    5xx           the first two creates with this prompt answer 503 ModelUnavailable
    malformed     the first task query answers a body that is not JSON
    never         the task stays RUNNING
    fail          the task ends FAILED with InternalError.Algo (not a refusal: a
                  generic failure during generation)
    expire        the result link answers OSS's 403 "Request has expired." after one use
    slow / truncate / notvideo   applied to the result download

The batch task query (``GET /api/v1/tasks``) lists tasks by time window,
model and status, as the task APIs document (what a lost create is searched
with). Parameters the model does not accept (size, resolution, duration) end the
task FAILED with InvalidParameter, as the API reference's example shows.
Every create is recorded in ``app.state.received`` (headers and body) and every
result download's headers in ``app.state.downloads``, for tests.
"""

from __future__ import annotations

import base64
import binascii
import io
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from reelgate.emulators.base import (
    EmulatorConfig,
    answer_late,
    elapsed_fraction,
    faults_in,
    trickle,
)

__all__ = ["API_PREFIX", "BEIJING_PREFIX", "create_app"]

API_PREFIX = "/api/v1"
BEIJING_PREFIX = "/beijing/api/v1"
_LINK_TTL = 24 * 3600
_FINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})
_INTERNAL_ERROR = (
    "InternalError.Algo",
    "An internal error has occured during execution, please try again later or contact "
    "service support.",
)

_TIERS: dict[str, dict[str, tuple[int, int]]] = {
    "480P": {"16:9": (832, 480), "9:16": (480, 832), "1:1": (624, 624)},
    "720P": {
        "16:9": (1280, 720),
        "9:16": (720, 1280),
        "1:1": (960, 960),
        "4:3": (1088, 832),
        "3:4": (832, 1088),
    },
    "1080P": {
        "16:9": (1920, 1080),
        "9:16": (1080, 1920),
        "1:1": (1440, 1440),
        "4:3": (1632, 1248),
        "3:4": (1248, 1632),
    },
}
_RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:3": 4 / 3, "3:4": 3 / 4}


@dataclass(frozen=True)
class _Model:
    image: bool
    tiers: tuple[str, ...]
    durations: tuple[int, ...]


# From the API references (2.1-2.6): wan2.1 t2v is 5 s only; i2v turbo takes 3-5 s;
# wan2.2 renders 5 s (t2v/i2v plus at 480P or 1080P, i2v flash at 480P-1080P);
# wan2.5 previews 5 or 10 s at 480P-1080P (tests/fixtures/wire/wan/ quote them).
_SHARED: dict[str, _Model] = {
    "wan2.2-t2v-plus": _Model(False, ("480P", "1080P"), (5,)),
    "wan2.2-i2v-plus": _Model(True, ("480P", "1080P"), (5,)),
    "wan2.2-i2v-flash": _Model(True, ("480P", "720P", "1080P"), (5,)),
    "wan2.5-t2v-preview": _Model(False, ("480P", "720P", "1080P"), (5, 10)),
    "wan2.5-i2v-preview": _Model(True, ("480P", "720P", "1080P"), (5, 10)),
}


def _wan21(prefix: str) -> dict[str, _Model]:
    return {
        f"{prefix}-t2v-turbo": _Model(False, ("480P", "720P"), (5,)),
        f"{prefix}-t2v-plus": _Model(False, ("720P",), (5,)),
        f"{prefix}-i2v-turbo": _Model(True, ("480P", "720P"), (3, 4, 5)),
        f"{prefix}-i2v-plus": _Model(True, ("720P",), (5,)),
    }


_REGIONS: dict[str, dict[str, _Model]] = {
    API_PREFIX: {**_wan21("wan2.1"), **_SHARED},
    BEIJING_PREFIX: {**_wan21("wanx2.1"), **_SHARED},
}


@dataclass
class _Task:
    task_id: str
    prompt: str
    faults: frozenset[str]
    created: float
    submitted_at: datetime
    width: int
    height: int
    seconds: int
    image: bool
    prompt_extend: bool
    model_name: str = ""
    gmt_create: int = 0  # epoch milliseconds, as the task list reports it
    failure: tuple[str, str] | None = None
    canceled: bool = False
    polls: int = 0
    final_polls: int = 0
    """Queries answered with the task's final status (SUCCEEDED, FAILED, CANCELED)."""
    downloads: int = 0


@dataclass
class _State:
    config: EmulatorConfig
    tasks: dict[str, _Task] = field(default_factory=dict)
    create_attempts: dict[str, int] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[dict[str, str]] = field(default_factory=list)


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _auth(request: Request, config: EmulatorConfig) -> Response | None:
    header = request.headers.get("authorization", "")
    if not header:
        return _error(401, "InvalidApiKey", "No API-key provided.")
    if header != f"Bearer {config.api_key}":
        return _error(401, "InvalidApiKey", "Invalid API-key provided.")
    return None


_BEIJING = timezone(timedelta(hours=8))


def _window(value: str | None, default: int) -> int:
    """A ``YYYYMMDDhhmmss`` bound as epoch milliseconds (Beijing time)."""
    if value is None:
        return default
    moment = datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=_BEIJING)
    return int(moment.timestamp() * 1000)


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _image_dims(img_url: str) -> tuple[int, int] | None:
    """A data URI's picture size; an http(s) URL is taken as a 1280x720 picture."""
    if img_url.startswith(("http://", "https://")):
        return 1280, 720
    header, _, payload = img_url.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as picture:
            return picture.size
    except (binascii.Error, ValueError, UnidentifiedImageError):
        return None


def _plan(
    body: dict[str, Any], models: dict[str, _Model]
) -> tuple[_Model, dict[str, Any], Response | None]:
    """Create-time validation (400s), as DashScope does before it queues a task."""
    model = models.get(str(body.get("model")))
    inputs = body.get("input")
    params = body.get("parameters") or {}
    if model is None:
        unknown = _Model(False, (), ())
        return unknown, {}, _error(400, "InvalidParameter", "Model not exist.")
    if not isinstance(inputs, dict) or not isinstance(params, dict):
        return model, {}, _error(400, "InvalidParameter", "input must be an object")
    if not model.image and not inputs.get("prompt"):
        return model, {}, _error(400, "InvalidParameter", "Field required: input.prompt")
    if model.image and not isinstance(inputs.get("img_url"), str):
        return model, {}, _error(400, "InvalidParameter", "Field required: input.img_url")
    return model, params, None


def _output_size(
    model: _Model, inputs: dict[str, Any], params: dict[str, Any]
) -> tuple[int, int] | str:
    """The video's pixel size, or why the model refuses these parameters."""
    if not model.image:
        size = str(params.get("size", "1280*720"))
        allowed = {f"{w}*{h}": (w, h) for t in model.tiers for w, h in _TIERS[t].values()}
        return allowed.get(size, f"The size is not match, size: {size}")
    tier = str(params.get("resolution", "720P"))
    if tier not in model.tiers:
        return f"The resolution is not supported, resolution: {tier}"
    dims = _image_dims(str(inputs["img_url"]))
    if dims is None:
        return "The image format is not supported"
    ratio = dims[0] / dims[1]
    nearest = min(_TIERS[tier], key=lambda name: abs(_RATIOS[name] - ratio))
    return _TIERS[tier][nearest]


def create_app(config: EmulatorConfig) -> Starlette:
    state = _State(config)
    videos = config.videos()

    async def create(request: Request) -> Response:
        denied = _auth(request, config)
        if denied is not None:
            return denied
        if request.headers.get("x-dashscope-async") != "enable":
            return _error(
                403, "AccessDenied", "current user api does not support synchronous calls"
            )
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "InvalidParameter", "The request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "InvalidParameter", "The request body must be an object")
        state.received.append(
            {"headers": {"x-dashscope-async": request.headers["x-dashscope-async"]}, "body": body}
        )
        region = BEIJING_PREFIX if request.url.path.startswith(BEIJING_PREFIX) else API_PREFIX
        model, params, invalid = _plan(body, _REGIONS[region])
        if invalid is not None:
            return invalid
        inputs: dict[str, Any] = body["input"]
        prompt = str(inputs.get("prompt", ""))
        faults = faults_in(prompt, "wan")
        if "refuse" in faults:
            return _error(
                400, "DataInspectionFailed", "Input text data may contain inappropriate content."
            )
        if "quota" in faults:
            return _error(
                429,
                "Throttling.RateQuota",
                "Requests rate limit exceeded, please try again later.",
            )
        if "5xx" in faults:
            seen = state.create_attempts.get(prompt, 0)
            state.create_attempts[prompt] = seen + 1
            if seen < 2:
                return _error(
                    503, "ModelUnavailable", "Model is unavailable, please try again later."
                )
        planned = _output_size(model, inputs, params)
        seconds = params.get("duration", 5)
        task = _Task(
            task_id=str(uuid.uuid4()),
            prompt=prompt,
            faults=faults,
            created=time.monotonic(),
            submitted_at=datetime.now(),
            width=planned[0] if isinstance(planned, tuple) else 0,
            height=planned[1] if isinstance(planned, tuple) else 0,
            seconds=seconds if isinstance(seconds, int) else 0,
            image=model.image,
            prompt_extend=params.get("prompt_extend", True) is not False,
            model_name=str(body.get("model", "")),
            gmt_create=int(time.time() * 1000),
        )
        if isinstance(planned, str):
            task.failure = ("InvalidParameter", planned)
        elif task.seconds not in model.durations:
            task.failure = ("InvalidParameter", f"The duration is not supported: {seconds}")
        elif "refuse-image" in faults:
            task.failure = (
                "DataInspectionFailed",
                "Input image data may contain inappropriate content.",
            )
        elif "fail" in faults:
            task.failure = _INTERNAL_ERROR
        state.tasks[task.task_id] = task
        await answer_late(faults, config)
        return JSONResponse(
            {
                "output": {"task_status": "PENDING", "task_id": task.task_id},
                "request_id": str(uuid.uuid4()),
            }
        )

    async def get_task(request: Request) -> Response:
        denied = _auth(request, config)
        if denied is not None:
            return denied
        task_id = request.path_params["task_id"]
        request_id = str(uuid.uuid4())
        task = state.tasks.get(task_id)
        if task is None:
            output = {"task_id": task_id, "task_status": "UNKNOWN"}
            return JSONResponse({"request_id": request_id, "output": output})
        task.polls += 1
        if "malformed" in task.faults and task.polls == 1:
            return PlainTextResponse("<html><body>502 Bad Gateway</body></html>")
        answer = _describe(task)
        if answer["output"]["task_status"] in _FINAL:
            task.final_polls += 1
        return JSONResponse({"request_id": request_id, **answer})

    def _describe(task: _Task) -> dict[str, Any]:
        output: dict[str, Any] = {
            "task_id": task.task_id,
            "task_status": "PENDING",
            "submit_time": _clock(task.submitted_at),
        }
        if task.canceled:
            output["task_status"] = "CANCELED"
            return {"output": output}
        fraction = elapsed_fraction(task.created, config.job_seconds)
        if fraction < 0.25:
            return {"output": output}
        output["scheduled_time"] = _clock(task.submitted_at)
        if fraction < 1.0 or "never" in task.faults:
            output["task_status"] = "RUNNING"
            return {"output": output}
        output["end_time"] = _clock(datetime.now())
        if task.failure is not None:
            output.update(task_status="FAILED", code=task.failure[0], message=task.failure[1])
            return {"output": output}
        expires = int(time.time()) + _LINK_TTL
        signature = uuid.uuid5(uuid.NAMESPACE_URL, task.task_id).hex
        output.update(
            task_status="SUCCEEDED",
            orig_prompt=task.prompt,
            video_url=f"{config.public_url}/results/{task.task_id}.mp4"
            f"?Expires={expires}&OSSAccessKeyId=LTAIemulator&Signature={signature}",
        )
        if task.prompt_extend:
            output["actual_prompt"] = f"{task.prompt} (rewritten by the emulator)"
        ratio = "standard" if task.image else f"{task.width}*{task.height}"
        usage = {"video_duration": task.seconds, "video_ratio": ratio, "video_count": 1}
        return {"output": output, "usage": usage}

    async def list_tasks(request: Request) -> Response:
        """The batch task query: ``GET /api/v1/tasks`` by time window (``YYYYMMDDhhmmss``,
        read here as Beijing time), model and status, paged by ``page_no``/``page_size``
        (dashscope-sdk-python ``base_api.py`` ``list``; Java ``AsyncTaskListParam``)."""
        denied = _auth(request, config)
        if denied is not None:
            return denied
        q = request.query_params
        try:
            page_no = int(q.get("page_no", "1"))
            page_size = int(q.get("page_size", "10"))
            start = _window(q.get("start_time"), 0)
            end = _window(q.get("end_time"), 2**62)
        except ValueError:
            return _error(400, "InvalidParameter", "Invalid time or paging parameter")
        if page_no < 1 or not 1 <= page_size <= 100:
            return _error(400, "InvalidParameter", "page_size must be between 1 and 100")
        tasks = [
            t
            for t in sorted(state.tasks.values(), key=lambda t: t.gmt_create, reverse=True)
            if start <= t.gmt_create <= end
            and q.get("model_name") in (None, t.model_name)
            and q.get("status") in (None, _describe(t)["output"]["task_status"])
        ]
        page = tasks[(page_no - 1) * page_size : page_no * page_size]
        data = [
            {
                "task_id": t.task_id,
                "status": _describe(t)["output"]["task_status"],
                "model_name": t.model_name,
                "gmt_create": t.gmt_create,
                "start_time": t.gmt_create,
                "api_key_id": "42677",
                "region": "ap-southeast-1",
                "request_id": str(uuid.uuid5(uuid.NAMESPACE_URL, t.task_id)),
                "caller_uid": "emulator",
            }
            for t in page
        ]
        return JSONResponse(
            {
                "request_id": str(uuid.uuid4()),
                "data": data,
                "total": len(tasks),
                "total_page": max(1, -(-len(tasks) // page_size)),
                "page_no": page_no,
                "page_size": page_size,
            }
        )

    async def cancel(request: Request) -> Response:
        denied = _auth(request, config)
        if denied is not None:
            return denied
        task = state.tasks.get(request.path_params["task_id"])
        pending = task is not None and not task.canceled
        if (
            task is None
            or not pending
            or elapsed_fraction(task.created, config.job_seconds) >= 0.25
        ):
            return _error(
                400,
                "UnsupportedOperation",
                "Failed to cancel the task, please confirm if the task is in PENDING status.",
            )
        task.canceled = True
        return JSONResponse({"request_id": str(uuid.uuid4())})

    async def result(request: Request) -> Response:
        state.downloads.append(dict(request.headers))
        task = state.tasks.get(request.path_params["name"].removesuffix(".mp4"))
        if task is None or "Signature" not in request.query_params:
            return _oss_error("NoSuchKey", "The specified key does not exist.", 404)
        task.downloads += 1
        if "expire" in task.faults and task.downloads > 1:
            return _oss_error("AccessDenied", "Request has expired.", 403)
        if "notvideo" in task.faults:
            data = b"<?xml version='1.0'?><Error><Code>InternalError</Code></Error>"
        else:
            path = await videos.get(task.width, task.height, task.seconds, task.prompt)
            data = path.read_bytes()
        return _Download(data, task.faults)

    app = Starlette(
        routes=[
            *(
                route
                for prefix in (API_PREFIX, BEIJING_PREFIX)
                for route in (
                    Route(
                        f"{prefix}/services/aigc/video-generation/video-synthesis",
                        create,
                        methods=["POST"],
                    ),
                    Route(f"{prefix}/tasks", list_tasks, methods=["GET"]),
                    Route(f"{prefix}/tasks/{{task_id}}", get_task, methods=["GET"]),
                    Route(f"{prefix}/tasks/{{task_id}}/cancel", cancel, methods=["POST"]),
                )
            ),
            Route("/results/{name}", result, methods=["GET"]),
        ]
    )
    app.state.received = state.received
    app.state.downloads = state.downloads
    app.state.tasks = state.tasks
    return app


class _Download(Response):
    """The result file; with ``truncate`` the connection drops halfway, as a cut download
    does, after announcing the full Content-Length."""

    def __init__(self, data: bytes, faults: frozenset[str]) -> None:
        super().__init__(media_type="video/mp4")
        self._data = data
        self._faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"video/mp4"),
            (b"content-length", str(len(self._data)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in trickle(self._data, self._faults):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if "truncate" not in self._faults:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        # truncated: returning mid-body makes the server close the connection


def _oss_error(code: str, message: str, status: int) -> Response:
    """OSS speaks XML, not DashScope's JSON envelope."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{uuid.uuid4().hex.upper()}</RequestId>"
        "<HostId>dashscope-result.oss-emulator.aliyuncs.com</HostId></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")
