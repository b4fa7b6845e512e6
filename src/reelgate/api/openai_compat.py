"""OpenAI Videos API compatibility for ``POST /v1/videos``.

OpenAI's SDK posts multipart form data (``model``, ``prompt``, ``seconds`` as a
string, ``size`` as ``"WxH"``, ``input_reference`` as an image file); the native
API posts JSON with ``duration_seconds``, ``resolution`` and ``aspect_ratio``.
Both arrive here as one ``VideoCreate``; OpenAI's names are mapped onto the
native ones against the model's allowedParams.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from reelgate.api.middleware import bad_text, text_error
from reelgate.api.schemas import VideoCreate
from reelgate.catalog import ModelSpec, resolution_dims
from reelgate.errors import PayloadTooLarge, ValidationFailed
from reelgate.job import MAX_IMAGE_BYTES

__all__ = ["openai_params", "parse_create"]

_INT_FIELDS = ("duration_seconds", "seed")
_DIGITS = re.compile(r"[0-9]{1,10}")
"""ASCII digits only: str.isdigit() and int() also take superscript and fullwidth digits."""


async def _form_fields(request: Request) -> dict[str, Any]:
    form = await request.form(max_part_size=MAX_IMAGE_BYTES + 1)
    data: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            raw = await value.read(MAX_IMAGE_BYTES + 1)
            if len(raw) > MAX_IMAGE_BYTES:
                raise PayloadTooLarge(
                    f"input_reference is larger than {MAX_IMAGE_BYTES} bytes.",
                    code="image_too_large",
                    param="input_reference",
                )
            mime = value.content_type or "image/png"
            data["image"] = f"data:{mime};base64,{base64.b64encode(raw).decode()}"
        elif name == "fallback":
            data.setdefault("fallback", []).append(value)
        elif name in _INT_FIELDS and _DIGITS.fullmatch(value):
            data[name] = int(value)
        elif name == "metadata":
            try:
                data[name] = json.loads(value)
            except (json.JSONDecodeError, RecursionError, ValueError):
                raise ValidationFailed(
                    'metadata must be a JSON object, like {"order": "42"}.',
                    code="invalid_parameter",
                    param="metadata",
                ) from None
        else:
            data[name] = value
    found = bad_text(data)
    if found is not None:
        raise text_error(*found)
    return data


async def parse_create(request: Request) -> VideoCreate:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        data = await _form_fields(request)
    else:
        try:
            data = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValidationFailed(
                "The request body is not valid JSON.", code="invalid_json", param="body"
            ) from None
        if not isinstance(data, dict):
            raise ValidationFailed("The request body must be a JSON object.", param="body")
    try:
        return VideoCreate.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _sizes(spec: ModelSpec) -> dict[str, tuple[str, str]]:
    sizes: dict[str, tuple[str, str]] = {}
    for resolution in spec.allowed.resolutions:
        for aspect in spec.allowed.aspect_ratios:
            w, h = resolution_dims(resolution, aspect)
            sizes.setdefault(f"{w}x{h}", (resolution, aspect))
    return sizes


def openai_params(spec: ModelSpec, body: VideoCreate) -> tuple[int | None, str | None, str | None]:
    """(duration_seconds, resolution, aspect_ratio), from native or OpenAI names."""
    duration, resolution, aspect = body.duration_seconds, body.resolution, body.aspect_ratio
    if body.seconds is not None:
        if not _DIGITS.fullmatch(body.seconds):
            raise ValidationFailed(
                f'seconds must be a whole number as a string, like "4"; got {body.seconds!r}.',
                param="seconds",
                allowed=[str(d) for d in spec.allowed.durations],
            )
        if duration is not None and duration != int(body.seconds):
            raise ValidationFailed(
                "seconds and duration_seconds disagree; send one.", param="seconds"
            )
        duration = int(body.seconds)
    if body.size is not None:
        sizes = _sizes(spec)
        if body.size not in sizes:
            raise ValidationFailed(
                f"size={body.size!r} is not offered by model {spec.id!r}; choose one of "
                f"{sorted(sizes)}.",
                param="size",
                model=spec.id,
                allowed=sorted(sizes),
            )
        size_resolution, size_aspect = sizes[body.size]
        if (resolution and resolution.lower() != size_resolution) or (
            aspect and aspect != size_aspect
        ):
            raise ValidationFailed(
                "size disagrees with resolution/aspect_ratio; send one.", param="size"
            )
        resolution, aspect = size_resolution, size_aspect
    return duration, resolution, aspect
