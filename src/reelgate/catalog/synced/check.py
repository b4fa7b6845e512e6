"""A request for a synced model, checked against the provider's own schema before
anything is queued, and the input the engine sends for it.

The check builds the exact input the adapter will send (``FieldMap.build``: reelgate's
fields in the model's names and formats, ``provider_params`` as given, a stand-in for
the image) and runs the schema's validator over it (``InputSchema.errors``). A violation
is a 400 that names the field as the client wrote it (``duration_seconds``, or
``provider_params.<name>``) with the schema's allowed values. The engine later builds
the same input from the stored job (``native_input``), so what was checked is what goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reelgate.errors import Forbidden, ModelChanged, ReelgateError, ValidationFailed

if TYPE_CHECKING:
    from reelgate.catalog.models import ModelSpec
    from reelgate.job import JobParams

__all__ = [
    "IMAGE_STAND_IN",
    "check_param_names",
    "check_synced",
    "native_input",
    "refuse_native_fields",
]

IMAGE_STAND_IN = "https://images.invalid/start-frame.png"
"""What the check puts where the start image goes: the image itself is checked apart
(``api.uploads``), and its bytes are only read when the job runs."""


def native_input(
    spec: ModelSpec, prompt: str, params: JobParams, *, has_image: bool
) -> dict[str, Any] | None:
    """The synced model's input for a job (None for a hand-written model). The image is
    not in it: the adapter adds it under ``FieldMap.image``.

    The job is checked again against the model as the catalog has it now: a sync since
    the job was accepted may have changed its schema (a length dropped, an input
    renamed). Then nothing is sent, and ``ModelChanged`` moves the job down its chain
    as a gone model would, without marking the model unavailable."""
    info = spec.synced
    if info is None:
        return None
    from reelgate.catalog.validate import check_offered  # validate imports this module

    try:
        check_offered(
            spec,
            params.duration_seconds,
            params.resolution,
            params.aspect_ratio,
            has_image=has_image,
            negative_prompt=params.negative_prompt,
            seed=params.seed,
        )
        return check_synced(
            spec,
            prompt=prompt,
            seconds=params.duration_seconds,
            resolution=params.resolution,
            aspect_ratio=params.aspect_ratio,
            has_image=has_image,
            audio=params.audio,
            negative_prompt=params.negative_prompt,
            seed=params.seed,
            provider_params=params.provider_params,
            requested=False,
        )
    except ReelgateError as exc:
        raise ModelChanged(
            f"model {spec.id!r} changed at {info.provider} since this job was accepted, "
            f"and no longer takes it: {exc.message}",
            upstream_model=info.upstream_id,
        ) from exc


def _check_priced(
    spec: ModelSpec,
    resolution: str,
    audio: bool | None,
    provider_params: Mapping[str, Any] | None,
) -> None:
    """Refuse inputs that move the price to a value with no known price (pixverse's
    audio on, say): never a guess."""
    info = spec.synced
    assert info is not None
    price = info.price
    assert price is not None
    own = {k: v for k, v in (provider_params or {}).items() if k in info.mapping.native}
    if price.for_request(resolution, audio, own) is not None:
        return
    asked = {**own, **({"audio": audio} if audio is not None else {})}
    moved = [k for k, v in price.base.items() if k in asked and asked[k] != v]
    name = moved[0] if moved else next(iter(price.base))
    known = [dict(price.base)] + [{**price.base, **v.when} for v in price.variants]
    error = Forbidden(
        f"model {spec.id!r} has no known price for {name}={asked.get(name)!r}: its price "
        f"depends on {price.varied_by()} and is known for {known}. Send one of those, or "
        f'the operator prices it ([models."{spec.id}"] price_per_second).',
        code="model_unpriced",
        param=name if name == "audio" else f"provider_params.{name}",
        model=spec.id,
        allowed=known,
    )
    error.lasting = False
    raise error


def refuse_native_fields(
    spec: ModelSpec, audio: bool | None, provider_params: Mapping[str, Any] | None
) -> None:
    """A hand-written model takes neither ``audio`` nor ``provider_params``."""
    if provider_params:
        raise ValidationFailed(
            f"provider_params are a synced model's own inputs; model {spec.id!r} is "
            "hand-written and takes none. Remove provider_params, or pick a fal:/replicate: "
            "model (GET /v1/models?source=synced).",
            param="provider_params",
            model=spec.id,
        )
    if audio is not None:
        raise ValidationFailed(
            f"model {spec.id!r} has no audio switch; remove audio, or pick a model whose "
            "capabilities include audio (GET /v1/models?capability=audio).",
            param="audio",
            model=spec.id,
        )


def check_param_names(spec: ModelSpec, provider_params: Mapping[str, Any] | None) -> None:
    """Every key of ``provider_params`` is one of the model's own (unmapped) inputs."""
    info = spec.synced
    assert info is not None
    fm = info.mapping
    native = set(fm.native)
    unknown = sorted(set(provider_params or {}) - native)
    if not unknown:
        return
    mapped = {v: k for k, v in fm.mapped_fields.items()}
    props = info.schema.props
    own = [f"{k} (send it as {mapped[k]})" for k in unknown if k in mapped]
    own += [
        f"{k} is a secret input (a key of its own): reelgate never passes keys through"
        for k in unknown
        if k in props and props[k].secret
    ]
    raise ValidationFailed(
        f"provider_params {unknown} are not model {spec.id!r}'s own inputs"
        + (f"; {', '.join(own)}" if own else "")
        + f". Its own inputs: {sorted(native)}.",
        code="unknown_provider_param",
        param=f"provider_params.{unknown[0]}",
        model=spec.id,
        allowed=sorted(native),
    )


def check_synced(
    spec: ModelSpec,
    *,
    prompt: str,
    seconds: int,
    resolution: str,
    aspect_ratio: str,
    has_image: bool,
    audio: bool | None,
    negative_prompt: str | None,
    seed: int | None,
    provider_params: Mapping[str, Any] | None,
    requested: bool,
) -> dict[str, Any]:
    """Refuse what the model cannot take; else the input to send (the image left for the
    adapter to add). ``requested``: this is the model the client named (its
    ``provider_params`` must all be its inputs; a fallback gets the ones it has)."""
    info = spec.synced
    assert info is not None
    fm = info.mapping
    where = f"model {spec.id!r}"
    if fm.status != "mapped":
        raise ValidationFailed(
            f"{where} cannot be used through reelgate's request shape: "
            f"{'; '.join(fm.problems) or 'its schema could not be mapped'}.",
            code="model_unmappable",
            param="model",
            model=spec.id,
        )
    if info.price is None:
        unpriced = Forbidden(
            f"{where} is unpriced: no price per second is known for it here, so it is "
            "not offered. The operator sets one in the config file "
            f'([models."{spec.id}"] price_per_second = <millicredits>).',
            code="model_unpriced",
            param="model",
            model=spec.id,
        )
        unpriced.lasting = False  # an operator's price lifts it
        raise unpriced
    if audio is not None and fm.audio is None:
        raise ValidationFailed(
            f"{where} has no audio switch in its schema; remove audio.",
            param="audio",
            model=spec.id,
        )
    if has_image and fm.image is None:
        raise ValidationFailed(
            f"{where} takes no start image; remove image/image_url.",
            param="image",
            model=spec.id,
        )
    if fm.image_required and not has_image:
        raise ValidationFailed(
            f"{where} needs a start image ({fm.image} in its schema); send image or image_url.",
            param="image",
            model=spec.id,
        )
    if requested:
        check_param_names(spec, provider_params)
    native = set(fm.native)
    given = {k: v for k, v in (provider_params or {}).items() if k in native}
    body = fm.build(
        prompt=prompt,
        seconds=seconds,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        has_image=has_image,
        audio=audio,
        negative_prompt=negative_prompt,
        seed=seed,
        provider_params=given,
    )
    checked = dict(body)
    if has_image and fm.image:
        checked[fm.image] = IMAGE_STAND_IN
    errors = info.schema.errors(checked)
    if not errors:
        _check_priced(spec, resolution, audio if fm.audio else None, provider_params)
        return body
    error = errors[0]
    path = [str(p) for p in error.absolute_path]
    name = path[0] if path else ""
    if error.validator == "required" and not path:
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [str(n) for n in required if n not in checked]
        name = missing[0] if missing else ""
    back = {v: k for k, v in fm.mapped_fields.items()}
    param = back.get(name) or (f"provider_params.{name}" if name else "provider_params")
    allowed = info.schema.allowed_for(error)
    sent = checked.get(name)
    hint = f"; allowed: {allowed}" if allowed else ""
    raise ValidationFailed(
        f"{where} refuses {param}"
        + (f" (sent to {info.provider} as {name}={sent!r})" if name in checked else "")
        + f": {error.message}{hint}. Checked against {info.provider}'s own schema for "
        f"{info.upstream_id}.",
        code="schema_violation",
        param=param,
        model=spec.id,
        **({"allowed": allowed} if allowed else {}),
    )
