"""Check a submission against the catalog before anything is queued.

Every rejection names the field and, where it helps, the values allowed, so a
client can correct the request without reading docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from reelgate.catalog.catalog import Catalog
from reelgate.catalog.lifecycle import RouteOf, in_service, retired_error, today
from reelgate.catalog.models import ModelSpec, resolution_dims
from reelgate.catalog.synced.check import (
    check_param_names,
    check_synced,
    refuse_native_fields,
)
from reelgate.errors import ValidationFailed
from reelgate.job import JobParams

__all__ = ["Submission", "ValidatedSubmission", "check_offered", "validate_submission"]


@dataclass(frozen=True)
class Submission:
    model: str
    fallback: tuple[str, ...] = ()
    duration_seconds: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    has_image: bool = False
    negative_prompt: str | None = None
    seed: int | None = None
    prompt: str = ""
    audio: bool | None = None
    provider_params: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ValidatedSubmission:
    chain: list[str]
    params: JobParams
    deadline_seconds: int | None


def check_offered(
    spec: ModelSpec,
    duration: int,
    resolution: str,
    aspect: str,
    *,
    has_image: bool = False,
    negative_prompt: str | None = None,
    seed: int | None = None,
) -> None:
    """Refuse what the model's allowedParams do not offer (at submit, and again when a
    synced model's job is sent: ``catalog.synced.check.native_input``)."""
    allowed = spec.allowed
    where = f"model {spec.id!r}"
    choices: tuple[tuple[str, object, tuple[object, ...], str], ...] = (
        ("duration_seconds", duration, allowed.durations, ""),
        ("resolution", resolution, allowed.resolutions, ""),
        ("aspect_ratio", aspect, allowed.aspect_ratios, ""),
        ("duration_seconds", duration, allowed.durations_for(resolution), f" at {resolution}"),
    )
    for param, value, options, qualifier in choices:
        if value not in options:
            raise ValidationFailed(
                f"{param}={value!r} is not offered by {where}{qualifier}; "
                f"choose one of {list(options)}.",
                param=param,
                model=spec.id,
                allowed=list(options),
            )
    if has_image and not allowed.image_input:
        raise ValidationFailed(
            f"{where} does not take an input image (image-to-video); remove image/image_url "
            "or pick a model whose allowedParams.image_input is true.",
            param="image",
            model=spec.id,
        )
    if negative_prompt and not allowed.negative_prompt:
        raise ValidationFailed(
            f"{where} does not take a negative_prompt; remove it.",
            param="negative_prompt",
            model=spec.id,
        )
    if seed is not None and not allowed.seed:
        raise ValidationFailed(
            f"{where} does not take a seed; remove it.", param="seed", model=spec.id
        )


def _no_route(_kind: str) -> str | None:
    return None


def validate_submission(
    catalog: Catalog,
    sub: Submission,
    *,
    route_of: RouteOf = _no_route,
    day: date | None = None,
) -> ValidatedSubmission:
    """``route_of``: the route each provider kind is deployed on here, which decides
    whether a model is retired (``ModelSpec.routes``) on ``day`` (today by default)."""
    day = day or today()

    def served(model_id: str) -> str:
        """The model that serves ``model_id`` today (its successor, if the operator
        routes it there), or ``model_id`` itself when it is retired: the engine skips a
        retired model down the chain, recorded as ``gone`` in the job's attempts."""
        return in_service(catalog, model_id, route_of, day) or model_id

    def retired(model_id: str) -> bool:
        return in_service(catalog, model_id, route_of, day) is None

    spec = catalog.get(served(sub.model))
    chain = [spec.id]
    for fb in sub.fallback:
        if fb not in catalog:
            raise ValidationFailed(
                f"Unknown fallback model {fb!r}. GET /v1/models lists the models you can use.",
                code="unknown_model",
                param="fallback",
                allowed=catalog.ids(),
            )
        if served(fb) not in chain:
            chain.append(served(fb))
    if not sub.fallback:
        # the operator's default chain: a retired entry is left out
        for fb in spec.fallback:
            if not retired(fb) and served(fb) not in chain:
                chain.append(served(fb))
    if all(retired(model_id) for model_id in chain):
        # nothing in the chain is served any more: refuse now rather than queue a failure
        raise retired_error(spec, route_of(spec.provider), "model")
    duration = sub.duration_seconds if sub.duration_seconds is not None else spec.default_duration
    resolution = (sub.resolution or spec.default_resolution).lower()
    aspect = sub.aspect_ratio or spec.default_aspect_ratio
    if spec.synced is None:
        refuse_native_fields(spec, sub.audio, sub.provider_params)
    for model_id in chain:
        if not retired(model_id):  # a retired one is skipped: its limits do not matter
            model = catalog.get(model_id)
            check_offered(
                model,
                duration,
                resolution,
                aspect,
                has_image=sub.has_image,
                negative_prompt=sub.negative_prompt,
                seed=sub.seed,
            )
            if model.synced is not None:
                check_synced(
                    model,
                    prompt=sub.prompt,
                    seconds=duration,
                    resolution=resolution,
                    aspect_ratio=aspect,
                    has_image=sub.has_image,
                    audio=sub.audio,
                    negative_prompt=sub.negative_prompt,
                    seed=sub.seed,
                    provider_params=sub.provider_params,
                    requested=model_id == spec.id,
                )
    if spec.synced is not None and retired(spec.id):
        # skipped, but the client's provider_params are still meant for it
        check_param_names(spec, sub.provider_params)
    width, height = resolution_dims(resolution, aspect)
    params = JobParams(
        duration_seconds=duration,
        resolution=resolution,
        aspect_ratio=aspect,
        width=width,
        height=height,
        negative_prompt=sub.negative_prompt or None,
        seed=sub.seed,
        audio=sub.audio,
        provider_params=dict(sub.provider_params) if sub.provider_params else None,
    )
    deadlines = [d for d in (catalog.get(m).deadline_seconds for m in chain) if d is not None]
    return ValidatedSubmission(
        chain=chain, params=params, deadline_seconds=max(deadlines) if deadlines else None
    )
