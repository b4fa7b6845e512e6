"""reelgate's one request shape onto a synced model's own input schema.

The mapping is data: ``FAMILIES`` lists, per reelgate field, the input names providers
use for it, and each value format the derivation reads (duration ``"8s"``, ``"8"``,
``8`` or frames; resolution ``"720p"``, ``"768P"``, ``"1280*720"``; aspect ``"16:9"``,
a name such as ``"landscape"``/``"portrait"``/``"square"``, or both, ``"16:9
(landscape)"``: the job records the ratio and the model is sent its own spelling).
``derive`` reads a schema through it and gives a ``FieldMap``: which field carries what,
the wire value of each offered choice, and the ``AllowedParams`` /v1/models serves.
Inputs the mapping does not know stay the model's own: a client sends them in
``provider_params``, validated against the schema with everything else. A secret input
(``Prop.secret``: an API key of the client's own) is never one of them, so it is never
taken, stored with a job or echoed; a model that requires one is unmappable.

Rules that combine fields and live only in a schema's description text (Hailuo's
"10 s only at 768P") are ``OVERRIDES``, each with its source: the derivation checks them
against the schema, so a schema change that leaves an override pointing at nothing is
flagged at the next sync rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reelgate.catalog.models import AllowedParams
from reelgate.catalog.synced.schema import InputSchema, Prop

__all__ = [
    "FAMILIES",
    "OVERRIDES",
    "DurationMap",
    "FieldMap",
    "Override",
    "derive",
]

FAMILIES: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "text_prompt", "text"),
    "image": (
        "image_url",
        "start_image_url",
        "first_frame_image",
        "first_frame_url",
        "start_image",
        "image",
        "input_image",
        "first_frame",
    ),
    "audio": ("generate_audio", "generate_audio_switch", "enable_audio", "with_audio", "sound"),
    "duration": ("duration", "duration_seconds", "seconds", "video_length", "length"),
    "frames": ("num_frames",),
    "fps": ("frames_per_second", "fps", "frame_rate"),
    "resolution": ("resolution", "quality", "video_quality", "mode_resolution"),
    "size": ("size", "video_size"),
    "aspect": ("aspect_ratio", "ratio"),
    "negative_prompt": ("negative_prompt",),
    "seed": ("seed",),
}
"""reelgate's fields and the input names that carry each, first match wins. An audio
switch is a boolean: an ``audio_url`` or ``audio`` file input is the model's own input
(``provider_params``), never a switch."""

MAX_SECONDS = 60
"""Longest duration offered from an integer range (a range of 1 to 600 is not a menu)."""

_RES = re.compile(r"^(\d{3,4})[pP]$")
_SIZE = re.compile(r"^(\d{3,4})\s*[*xX\u00d7]\s*(\d{3,4})$")
_RATIO = re.compile(r"^(\d{1,2}):(\d{1,2})$")
_SECONDS_S = re.compile(r"^(\d{1,3})s$")
_KNOWN_RES = ("360p", "480p", "512p", "540p", "720p", "768p", "1080p")
_KNOWN_ASPECTS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21")
_ASPECT_NAMES = {"landscape": "16:9", "portrait": "9:16", "square": "1:1"}
"""Aspect values spelled as a name (Replicate's openai/sora-2: ``portrait``/``landscape``,
"Portrait is 720x1280, landscape is 1280x720"), matched case-insensitively."""
_RATIO_IN = re.compile(r"(?<![\d.])(\d{1,2})\s*:\s*(\d{1,2})(?![\d.])")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Override:
    """A rule a schema states only in prose, with where it is stated."""

    source: str
    durations_by_resolution: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    fixed_seconds: int | None = None
    """The video's length, for a schema with no duration input."""
    native_resolution: str | None = None
    """The output's resolution, for a schema with no resolution input."""
    fps: int | None = None
    """Frames per second, for a schema that counts frames and gives no rate."""


OVERRIDES: dict[str, Override] = {
    "fal:fal-ai/minimax/hailuo-02/standard/image-to-video": Override(
        source="fal-ai/minimax/hailuo-02/standard/image-to-video schema, duration: "
        '"The duration of the video in seconds. 10 seconds videos are not supported for '
        '1080p resolution." and fal-ai/fal-js@381105e1 endpoints.ts (512P/768P only)',
        durations_by_resolution={"512p": (6, 10), "768p": (6, 10)},
    ),
    "fal:fal-ai/minimax/hailuo-02/standard/text-to-video": Override(
        source="fal.ai/models/fal-ai/minimax/hailuo-02/standard/text-to-video/llms.txt "
        "(2026-08-02): 768P output, no resolution input",
        native_resolution="768p",
    ),
    "fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video": Override(
        source="fal.ai/models/fal-ai/kling-video/v2.5-turbo/pro/text-to-video/llms.txt "
        "(2026-08-02): 1080p output, no resolution input",
        native_resolution="1080p",
    ),
    "fal:fal-ai/kling-video/v2.5-turbo/pro/image-to-video": Override(
        source="fal.ai/models/fal-ai/kling-video/v2.5-turbo/pro/image-to-video/llms.txt "
        "(2026-08-02): 1080p output, no resolution input",
        native_resolution="1080p",
    ),
    "replicate:minimax/hailuo-02": Override(
        source='replicate.com/minimax/hailuo-02 schema, duration: "Duration of the video in '
        'seconds. 10 seconds is only available for 768p resolution."',
        durations_by_resolution={"512p": (6, 10), "768p": (6, 10), "1080p": (6,)},
    ),
    "replicate:minimax/hailuo-2.3-fast": Override(
        source='replicate.com/minimax/hailuo-2.3-fast schema, resolution: "Pick between 768p '
        'or 1080p resolution. 1080p supports only 6-second duration." and duration: '
        '"Duration of the video in seconds. 10 seconds is only available for 768p '
        'resolution." (recorded from keremk/renku@003842790d7957d40bcaeefb10a20b273f8f24ae '
        "catalog/models/replicate/video/minimax-hailuo-2-3-fast.json, GET "
        "https://api.replicate.com/v1/models/minimax/hailuo-2.3-fast)",
        durations_by_resolution={"768p": (6, 10), "1080p": (6,)},
    ),
    "replicate:pixverse/pixverse-v5.6": Override(
        source='replicate.com/pixverse/pixverse-v5.6 schema, duration: "Duration of the video '
        'in seconds. 10 second videos are only available for 360p, 540p, and 720p." '
        "(recorded from keremk/renku@003842790d7957d40bcaeefb10a20b273f8f24ae "
        "catalog/models/replicate/video/pixverse-pixverse-v5-6.json, GET "
        "https://api.replicate.com/v1/models/pixverse/pixverse-v5.6)",
        durations_by_resolution={"1080p": (5, 8)},
    ),
    **{
        f"fal:fal-ai/pixverse/v5.5/{task}": Override(
            source=f"fal-ai/pixverse/v5.5/{task} schema, duration: "
            '"The duration of the generated video in seconds. Longer durations cost more. '
            '1080p videos are limited to 5 or 8 seconds" (recorded from '
            "TanStack/ai@15183e7dd482348eca6ece1ae00d4693d2e1b322 "
            f"packages/typescript/ai-fal/json/fal.models.{group}.json, fal's Platform API "
            "GET https://api.fal.ai/v1/models?status=active&expand=openapi-3.0)",
            durations_by_resolution={"1080p": (5, 8)},
        )
        for task, group in (
            ("text-to-video", "text-to-video"),
            ("image-to-video", "image-to-video"),
            ("transition", "image-to-video"),
        )
    },
    "replicate:google/veo-3.1": Override(
        source="Veo 3.1 on Vertex AI and the Gemini API: 1080p only at 8 s "
        "(docs/providers/veo.md; the Replicate schema says it only in the model page)",
        durations_by_resolution={"1080p": (8,)},
    ),
}
"""Keyed by catalog id. Each value is checked against the schema at every sync."""


@dataclass(frozen=True)
class DurationMap:
    field: str
    kind: Literal["string", "string_s", "integer", "number", "frames", "fixed"]
    wire: tuple[tuple[int, Any], ...]
    """(seconds, the value sent) for every length offered."""

    def value(self, seconds: int) -> Any:
        return dict(self.wire)[seconds]


@dataclass(frozen=True)
class FieldMap:
    """Where each of reelgate's fields goes in one model's input, and what it offers."""

    status: Literal["mapped", "unmappable"]
    problems: tuple[str, ...]
    """Why it is unmappable, or what of it could not be mapped (values left out)."""
    prompt: str | None = None
    image: str | None = None
    image_required: bool = False
    audio: str | None = None
    duration: DurationMap | None = None
    resolution: str | None = None
    resolution_wire: tuple[tuple[str, Any], ...] = ()
    """(reelgate resolution, the value sent) — a size field's values are keyed by
    ``res@aspect``."""
    size_field: bool = False
    aspect: str | None = None
    aspect_wire: tuple[tuple[str, Any], ...] = ()
    negative_prompt: str | None = None
    seed: str | None = None
    allowed: AllowedParams | None = None
    defaults: tuple[str, str, int] = ("720p", "16:9", 5)
    """(resolution, aspect ratio, seconds) when the request names none."""
    native: tuple[str, ...] = ()
    """The inputs the mapping does not carry: ``provider_params`` may set them."""
    override_source: str | None = None

    @property
    def mapped_fields(self) -> dict[str, str]:
        """reelgate field -> input name, for the fields this model maps."""
        pairs = {
            "prompt": self.prompt,
            "image": self.image,
            "audio": self.audio,
            "duration_seconds": self.duration.field
            if self.duration and self.duration.kind != "fixed"
            else None,
            "resolution": self.resolution,
            "aspect_ratio": self.aspect,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
        }
        return {k: v for k, v in pairs.items() if v}

    def to_wire(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "problems": list(self.problems),
            "fields": self.mapped_fields,
            "image_required": self.image_required,
            "override_source": self.override_source,
        }

    def build(
        self,
        *,
        prompt: str,
        seconds: int,
        resolution: str,
        aspect_ratio: str,
        has_image: bool,
        audio: bool | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        provider_params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The model's input for a request (the image is left for the adapter to add,
        under ``image``, as a URL or a data URI)."""
        body: dict[str, Any] = {}
        if self.prompt:
            body[self.prompt] = prompt
        if self.duration is not None and self.duration.kind != "fixed":
            body[self.duration.field] = self.duration.value(seconds)
        if self.size_field and self.resolution:
            found = dict(self.resolution_wire).get(f"{resolution}@{aspect_ratio}")
            if found is not None:
                body[self.resolution] = found
        elif self.resolution and self.resolution_wire:
            body[self.resolution] = dict(self.resolution_wire)[resolution]
        if self.aspect and self.aspect_wire:
            if has_image and "auto" in self.aspect_values:
                body[self.aspect] = "auto"  # the picture decides, as the schema allows
            elif aspect_ratio in dict(self.aspect_wire):
                body[self.aspect] = dict(self.aspect_wire)[aspect_ratio]
        if self.audio and audio is not None:
            body[self.audio] = audio
        if self.negative_prompt and negative_prompt:
            body[self.negative_prompt] = negative_prompt
        if self.seed and seed is not None:
            body[self.seed] = seed
        for name, value in (provider_params or {}).items():
            body[name] = value
        return body

    @property
    def aspect_values(self) -> tuple[Any, ...]:
        return tuple(v for _, v in self.aspect_wire)


def _first(schema: InputSchema, family: str, *, types: tuple[str, ...] = ()) -> Prop | None:
    for name in FAMILIES[family]:
        prop = schema.props.get(name)
        if prop is None or prop.secret:
            continue
        if types and prop.types and not set(prop.types) & set(types):
            continue
        return prop
    return None


def _durations(prop: Prop, fps: int | None) -> tuple[DurationMap | None, list[str]]:
    problems: list[str] = []
    if prop.name == "num_frames":
        rate = fps or 24
        low = int(prop.minimum or 1)
        high = int(prop.maximum or rate * 10 + 1)
        wire = tuple(
            (s, s * rate + 1) for s in range(1, MAX_SECONDS + 1) if low <= s * rate + 1 <= high
        )
        if prop.enum is not None:
            frames = {int(v) for v in prop.enum if isinstance(v, int | float)}
            wire = tuple((round((f - 1) / rate), f) for f in sorted(frames) if f > 1)
        if not wire:
            return None, [f"num_frames {low}..{high} holds no whole second at {rate} fps"]
        return DurationMap(prop.name, "frames", wire), problems
    if prop.enum is not None:
        wire_list: list[tuple[int, Any]] = []
        kind: Literal["string", "string_s", "integer", "number"] = "integer"
        for v in prop.enum:
            if isinstance(v, bool):
                continue
            if isinstance(v, int):
                wire_list.append((v, v))
                kind = "integer"
            elif isinstance(v, float) and v.is_integer():
                wire_list.append((int(v), v))
                kind = "number"
            elif isinstance(v, str) and v.isdigit():
                wire_list.append((int(v), v))
                kind = "string"
            elif isinstance(v, str) and (m := _SECONDS_S.fullmatch(v)):
                wire_list.append((int(m.group(1)), v))
                kind = "string_s"
            else:
                problems.append(f"{prop.name} value {v!r} is not a length in seconds")
        if not wire_list:
            return None, problems
        return DurationMap(prop.name, kind, tuple(sorted(set(wire_list)))), problems
    if set(prop.types) & {"integer", "number"}:
        low = max(1, int(prop.minimum if prop.minimum is not None else 1))
        high = min(MAX_SECONDS, int(prop.maximum if prop.maximum is not None else MAX_SECONDS))
        if prop.maximum is None:
            problems.append(f"{prop.name} has no maximum: offered up to {MAX_SECONDS} s")
        number_kind: Literal["integer", "number"] = (
            "integer" if "integer" in prop.types else "number"
        )
        wire = tuple((s, s) for s in range(low, high + 1))
        return (DurationMap(prop.name, number_kind, wire) if wire else None), problems
    if "string" in prop.types and isinstance(prop.default, str):
        text = prop.default
        m = _SECONDS_S.fullmatch(text)
        if text.isdigit() or m:
            seconds = int(text) if text.isdigit() else int(m.group(1))  # type: ignore[union-attr]
            problems.append(f"{prop.name} is free text: only its default {text!r} is offered")
            return DurationMap(
                prop.name, "string" if text.isdigit() else "string_s", ((seconds, text),)
            ), problems
    return None, [
        f"{prop.name} ({'/'.join(prop.types) or 'any'}) is not a duration reelgate can map"
    ]


def _resolutions(prop: Prop) -> tuple[list[tuple[str, Any]], list[str]]:
    wire: list[tuple[str, Any]] = []
    problems: list[str] = []
    for v in prop.enum or ():
        m = _RES.fullmatch(str(v)) if isinstance(v, str) else None
        if m and f"{m.group(1)}p" in _KNOWN_RES:
            wire.append((f"{m.group(1)}p", v))
        else:
            problems.append(f"{prop.name} value {v!r} is not offered through resolution")
    return wire, problems


def _sizes(prop: Prop) -> tuple[list[tuple[str, Any]], list[str]]:
    wire: list[tuple[str, Any]] = []
    problems: list[str] = []
    for v in prop.enum or ():
        m = _SIZE.fullmatch(str(v)) if isinstance(v, str) else None
        if not m:
            problems.append(f"{prop.name} value {v!r} is not a width*height size")
            continue
        w, h = int(m.group(1)), int(m.group(2))
        short = f"{min(w, h)}p"
        aspect = _aspect_of(w, h)
        if short in _KNOWN_RES and aspect is not None:
            wire.append((f"{short}@{aspect}", v))
        else:
            problems.append(f"{prop.name} value {v!r} is no standard resolution and ratio")
    return wire, problems


def _aspect_of(w: int, h: int) -> str | None:
    for name in _KNOWN_ASPECTS:
        a, b = (int(x) for x in name.split(":"))
        if abs(w / h - a / b) < 0.02:
            return name
    return None


def _aspect_value(value: Any) -> str | None:
    """reelgate's aspect ratio for one value of an aspect input: ``"16:9"``; a name
    (``"landscape"``, ``"Portrait"``, ``"square"``); or a ratio and a name together
    (``"16:9 (landscape)"``, ``"landscape 16:9"``), which must agree. None: not one."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text in _KNOWN_ASPECTS:
        return text
    lower = text.lower()
    if lower in _ASPECT_NAMES:
        return _ASPECT_NAMES[lower]
    ratios = _RATIO_IN.findall(lower)
    if len(ratios) != 1:
        return None
    ratio = f"{int(ratios[0][0])}:{int(ratios[0][1])}"
    if ratio not in _KNOWN_ASPECTS:
        return None
    words = set(_WORD.findall(_RATIO_IN.sub(" ", lower)))
    named = {_ASPECT_NAMES[w] for w in words if w in _ASPECT_NAMES}
    if named - {ratio} or words - set(_ASPECT_NAMES):
        return None  # "9:16 (landscape)" or "16:9 HD": not a plain ratio
    return ratio


def derive(model_id: str, schema: InputSchema, category: str) -> FieldMap:
    """The mapping of ``schema`` (the model ``model_id``, of a ``category`` such as
    ``text-to-video``)."""
    problems: list[str] = []
    fatal: list[str] = []
    override = OVERRIDES.get(model_id)
    secrets = [p.name for p in schema.props.values() if p.secret]
    for name in secrets:
        if name in schema.required:
            fatal.append(
                f"requires a secret input {name} (a key of its own); reelgate does not "
                "pass keys through"
            )
    prompt = _first(schema, "prompt", types=("string",))
    image = _first(schema, "image", types=("string",))
    audio = _first(schema, "audio", types=("boolean",))
    fps_prop = _first(schema, "fps", types=("integer", "number"))
    fps = override.fps if override and override.fps else None
    if fps is None and fps_prop is not None and isinstance(fps_prop.default, int | float):
        fps = int(fps_prop.default)
    duration: DurationMap | None = None
    dprop = _first(schema, "duration") or _first(schema, "frames", types=("integer",))
    if dprop is not None:
        duration, found = _durations(dprop, fps)
        (problems if duration is not None else fatal).extend(found)
    elif override and override.fixed_seconds:
        duration = DurationMap("", "fixed", ((override.fixed_seconds, None),))
    else:
        fatal.append("no duration input and no curated length: the hold could not be sized")
    if prompt is None:
        fatal.append(f"no prompt input (looked for {', '.join(FAMILIES['prompt'])})")
    if category == "image-to-video" and image is None:
        fatal.append(
            f"an image-to-video model without a start-image input reelgate knows "
            f"(looked for {', '.join(FAMILIES['image'])})"
        )
    rprop = _first(schema, "resolution", types=("string",))
    sprop = _first(schema, "size", types=("string",)) if rprop is None else None
    aprop = _first(schema, "aspect", types=("string",))
    resolution_wire: list[tuple[str, Any]] = []
    size_field = False
    if rprop is not None and rprop.enum:
        resolution_wire, found = _resolutions(rprop)
        problems.extend(found)
        if not resolution_wire:
            fatal.append(f"{rprop.name} offers no resolution reelgate names")
    elif sprop is not None and sprop.enum:
        resolution_wire, found = _sizes(sprop)
        problems.extend(found)
        size_field = True
        if not resolution_wire:
            fatal.append(f"{sprop.name} offers no standard size")
    elif rprop is not None:
        problems.append(f"{rprop.name} is free text: not set by reelgate")
        rprop = None
    aspect_wire: list[tuple[str, Any]] = []
    if aprop is not None and aprop.enum:
        for v in aprop.enum:
            ratio = _aspect_value(v)
            if ratio is not None and ratio not in dict(aspect_wire):
                aspect_wire.append((ratio, v))
            elif ratio is not None:
                problems.append(
                    f"{aprop.name} value {v!r} is {ratio} again: "
                    f"{dict(aspect_wire)[ratio]!r} is sent for it"
                )
            elif v != "auto":
                problems.append(f"{aprop.name} value {v!r} is not offered through aspect_ratio")
        if "auto" in aprop.enum:
            aspect_wire.append(("auto", "auto"))
    elif aprop is not None:
        problems.append(f"{aprop.name} is free text: not set by reelgate")
        aprop = None
    if size_field:
        resolutions = sorted({k.split("@")[0] for k, _ in resolution_wire}, key=_res_rank)
        aspects = sorted({k.split("@")[1] for k, _ in resolution_wire}, key=_aspect_rank)
    else:
        native = (override.native_resolution if override else None) or "720p"
        resolutions = sorted({k for k, _ in resolution_wire}, key=_res_rank) or [native]
        aspects = sorted((k for k, _ in aspect_wire if k != "auto"), key=_aspect_rank) or ["16:9"]
    negative = _first(schema, "negative_prompt", types=("string",))
    seed = _first(schema, "seed", types=("integer", "number"))
    by_resolution: dict[str, tuple[int, ...]] = {}
    if override is not None:
        offered = {s for s, _ in duration.wire} if duration else set()
        for res, seconds in override.durations_by_resolution.items():
            if res not in resolutions:
                problems.append(
                    f"curated rule for {res} no longer fits: the schema offers {resolutions}"
                )
                continue
            kept = tuple(s for s in seconds if s in offered)
            if not kept:
                problems.append(f"curated rule for {res} names lengths the schema no longer has")
                continue
            by_resolution[res] = kept
    if fatal or duration is None or prompt is None:
        return FieldMap(
            status="unmappable",
            problems=tuple(fatal + problems),
            override_source=override.source if override else None,
        )
    mapped = (
        {x.name for x in (prompt, image, audio, dprop, negative, seed) if x is not None}
        | ({rprop.name} if rprop else set())
        | ({sprop.name} if sprop else set())
        | ({aprop.name} if aprop else set())
    )
    native_fields = tuple(n for n in schema.order if n not in mapped and n not in secrets)
    seconds = tuple(s for s, _ in duration.wire)
    default_seconds = _default_seconds(dprop, duration) if dprop else seconds[0]
    default_res = _default_res(rprop, resolution_wire) or resolutions[0]
    if default_res not in resolutions:
        default_res = resolutions[0]
    default_aspect = "16:9" if "16:9" in aspects else aspects[0]
    allowed = AllowedParams(
        resolutions=tuple(resolutions),
        aspect_ratios=tuple(aspects),
        durations=seconds,
        image_input=image is not None,
        negative_prompt=negative is not None,
        seed=seed is not None,
        durations_by_resolution=by_resolution,
    )
    return FieldMap(
        status="mapped",
        problems=tuple(problems),
        prompt=prompt.name,
        image=image.name if image else None,
        image_required=bool(image and image.required),
        audio=audio.name if audio else None,
        duration=duration,
        resolution=rprop.name if rprop else sprop.name if sprop else None,
        resolution_wire=tuple(resolution_wire),
        size_field=size_field,
        aspect=aprop.name if aprop else None,
        aspect_wire=tuple(aspect_wire),
        negative_prompt=negative.name if negative else None,
        seed=seed.name if seed else None,
        allowed=allowed,
        defaults=(default_res, default_aspect, default_seconds),
        native=native_fields,
        override_source=override.source if override else None,
    )


def _default_seconds(prop: Prop, duration: DurationMap) -> int:
    for seconds, value in duration.wire:
        if value == prop.default:
            return seconds
    return duration.wire[0][0]


def _default_res(prop: Prop | None, wire: list[tuple[str, Any]]) -> str | None:
    if prop is None:
        return None
    for res, value in wire:
        if value == prop.default:
            return res
    return None


def _res_rank(res: str) -> int:
    return int(res.rstrip("p"))


def _aspect_rank(aspect: str) -> int:
    return _KNOWN_ASPECTS.index(aspect) if aspect in _KNOWN_ASPECTS else 99
