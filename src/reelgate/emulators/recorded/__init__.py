"""Input schemas saved from public sources, which the fal and Replicate emulators serve.

``fal/*.json``: one video endpoint each, ``{"SOURCE", "endpoint_id", "category",
"display_name", "openapi"}``; ``openapi`` is the endpoint's OpenAPI 3 document as fal's
Platform API returned it (``GET https://api.fal.ai/v1/models?expand=openapi-3.0``),
copied verbatim. ``replicate/*.json``: one model each, ``{"SOURCE", "category",
"model"}``; ``model`` is the shape of ``GET /v1/models/{owner}/{name}`` with
``latest_version.openapi_schema`` as Replicate's API gave it. Each file's SOURCE says
where it was read and what (if anything) was rebuilt.

The emulators check a request against these documents with ``jsonschema`` itself
(``check``), never with the gateway's own reading of them (``catalog.synced``): the
gateway's mapping mistakes come back as the provider's 422 would.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from PIL import Image, UnidentifiedImageError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "HERE",
    "Problem",
    "RecordedInput",
    "fal_records",
    "output_shape",
    "replicate_records",
]

HERE = Path(__file__).parent
_URI = "urn:emulator:recorded"


@cache
def _load(folder: str) -> tuple[dict[str, Any], ...]:
    return tuple(
        json.loads(p.read_text(encoding="utf-8")) for p in sorted((HERE / folder).glob("*.json"))
    )


def fal_records() -> dict[str, dict[str, Any]]:
    """A fresh copy of every recorded fal endpoint, by endpoint id."""
    return {r["endpoint_id"]: copy.deepcopy(r) for r in _load("fal")}


def replicate_records() -> dict[str, dict[str, Any]]:
    """A fresh copy of every recorded Replicate model, by ``owner/name``."""
    return {
        f"{r['model']['owner']}/{r['model']['name']}": copy.deepcopy(r) for r in _load("replicate")
    }


@dataclass(frozen=True)
class Problem:
    """One violation: where (input name, or "" for the whole input), the keyword that
    failed (``enum``, ``type``, ``required``, ``additionalProperties``...), the message
    and the value given."""

    field: str
    keyword: str
    message: str
    value: Any
    allowed: tuple[Any, ...] = ()


class RecordedInput:
    """The input schema at ``pointer`` in ``document``, as ``jsonschema`` reads it."""

    def __init__(self, document: dict[str, Any], pointer: str) -> None:
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        registry: Registry[Any] = Registry().with_resource(_URI, resource)
        self.validator = Draft202012Validator({"$ref": f"{_URI}#{pointer}"}, registry=registry)
        self.root: dict[str, Any] = registry.resolver(_URI).lookup(f"#{pointer}").contents
        resolver = registry.resolver(_URI)
        self.properties: dict[str, dict[str, Any]] = {}
        for name, node in (self.root.get("properties") or {}).items():
            flat = dict(node)
            # the value the app runs with when the input is left out: follow one $ref or
            # allOf for the default, as Cog and fal write them
            for part in [node, *node.get("allOf", [])]:
                if isinstance(part, dict) and "$ref" in part:
                    flat = {**resolver.lookup(part["$ref"]).contents, **flat}
            self.properties[name] = flat

    def check(self, given: dict[str, Any], *, extra_allowed: bool) -> list[Problem]:
        problems: list[Problem] = []
        for error in self.validator.iter_errors(given):
            path = [str(p) for p in error.absolute_path]
            if error.validator == "required" and not path:
                for name in error.validator_value:
                    if isinstance(error.instance, dict) and name not in error.instance:
                        problems.append(Problem(name, "required", "Field required", None))
                continue
            allowed = tuple(error.validator_value) if error.validator == "enum" else ()
            problems.append(
                Problem(
                    ".".join(path), str(error.validator), error.message, error.instance, allowed
                )
            )
        if not extra_allowed:
            for name in given:
                if name not in self.properties:
                    problems.append(
                        Problem(
                            name,
                            "additionalProperties",
                            "Extra inputs are not permitted",
                            given[name],
                        )
                    )
        return problems

    def value(self, given: dict[str, Any], name: str) -> Any:
        """What the model runs with: the given value, else the schema's default."""
        if given.get(name) is not None:
            return given[name]
        return self.properties.get(name, {}).get("default")


MAX_SHORT_SIDE = 360
"""The rendered frame's short side at most (these are test videos)."""

_IMAGE_INPUTS = (
    "image_url",
    "start_image_url",
    "first_frame_url",
    "first_image_url",
    "first_frame_image",
    "start_image",
    "first_frame",
    "image",
    "input_image",
)


def output_shape(schema: RecordedInput, given: dict[str, Any]) -> tuple[int, int, int]:
    """(seconds, width, height) of the video a model makes for ``given``, read from its
    own inputs as the provider's page describes them: the length from ``duration`` /
    ``seconds`` ("8s", "8", 8) or ``num_frames`` at the model's frame rate; the frame's
    short side from ``resolution``/``quality`` ("720p", "768P") or ``size`` ("1280*720");
    its shape from ``aspect_ratio`` or an inline start image."""
    seconds = 5
    for name in ("duration", "seconds", "duration_seconds"):
        value = schema.value(given, name)
        if isinstance(value, str) and value.removesuffix("s").isdigit():
            seconds = int(value.removesuffix("s"))
            break
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            seconds = round(value)
            break
    else:
        frames = schema.value(given, "num_frames")
        rate = next(
            (
                schema.value(given, n)
                for n in ("frames_per_second", "fps", "frame_rate")
                if isinstance(schema.value(given, n), int | float)
            ),
            24,
        )
        if isinstance(frames, int | float) and not isinstance(frames, bool) and rate:
            seconds = max(1, round((frames - 1) / rate))
    size = schema.value(given, "size")
    if isinstance(size, str) and "*" in size:
        w, _, h = size.partition("*")
        if w.isdigit() and h.isdigit() and int(w) and int(h):
            return seconds, *_scaled(int(w), int(h), min(int(w), int(h)))
    short = 720
    for name in ("resolution", "quality", "video_quality"):
        tier = schema.value(given, name)
        if isinstance(tier, str) and tier.lower().rstrip("p").isdigit():
            short = int(tier.lower().rstrip("p"))
            break
    a, b = 16, 9
    for name in _IMAGE_INPUTS:
        shape = _image_shape(given.get(name))
        if shape is not None:
            a, b = shape
            break
    else:
        aspect = schema.value(given, "aspect_ratio")
        if isinstance(aspect, str):
            left, _, right = aspect.partition(":")
            if left.isdigit() and right.isdigit() and int(left) and int(right):
                a, b = int(left), int(right)
    return seconds, *_scaled(a, b, short)


def _scaled(width: int, height: int, short: int) -> tuple[int, int]:
    short = min(short, MAX_SHORT_SIDE)
    if width >= height:
        return _even(short * width / height), _even(short)
    return _even(short), _even(short * height / width)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _image_shape(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, str) or not value.startswith("data:"):
        return None
    _, _, payload = value.partition(",")
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as img:
            width, height = img.size
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
        return None
    return (width, height) if width and height else None
