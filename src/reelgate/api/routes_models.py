"""``GET /v1/models``: the catalog, with what this gateway can actually run."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from reelgate.api.auth import require_read, runtime
from reelgate.api.openapi import errors
from reelgate.catalog import ModelSpec
from reelgate.catalog.availability import access_denied
from reelgate.catalog.catalog import SYNCED_PREFIXES
from reelgate.catalog.lifecycle import Unavailable, today
from reelgate.catalog.models import Lifecycle, Route
from reelgate.catalog.routing import Served, deployment_key, served_routes
from reelgate.catalog.synced.store import refresh
from reelgate.errors import NotFound, ValidationFailed
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.jobs import now_ms

__all__ = ["CAPABILITIES", "capabilities", "model_to_wire", "router"]

router = APIRouter(prefix="/v1/models", tags=["models"])


def _credits(millicredits: int) -> str:
    """Prices are integers in millicredits; rendered as an exact decimal string."""
    whole, frac = divmod(millicredits, 1000)
    return f"{whole}.{frac:03d}"


def _lifecycle_note(spec: ModelSpec, lifecycle: Lifecycle, route: str | None) -> str | None:
    r = spec.route(route)
    if lifecycle is Lifecycle.RETIRED:
        since = f" on {r.retires_at.isoformat()}" if r.retires_at else ""
        return f"retired{since} on its {route} route"
    if lifecycle is Lifecycle.DEPRECATED:
        until = f"; retires on {r.retires_at.isoformat()}" if r.retires_at else ""
        return f"deprecated on its {route} route{until}"
    return None


def _route_to_wire(
    rt: Runtime,
    name: str,
    kind: str,
    route: Route,
    served: Served | None,
    marks: Mapping[str, Unavailable],
    cooling: Mapping[str, int],
    day: date,
) -> dict[str, Any]:
    """One route of a model and its state here: ``available``, ``cooling`` (after a quota
    answer), ``unavailable`` (its provider said the model is gone there), ``retired``
    or ``not_configured`` (no deployment of its provider on this route)."""
    out = route.to_wire(day)
    out["provider"] = kind
    key = served.key if served is not None else deployment_key(kind, name, route.upstream_model)
    mark = marks.get(key)
    until = cooling.get(key)
    if served is None:
        state = "not_configured"
    elif served.retired_on(day):
        state = "retired"
    elif mark is not None:
        state = "unavailable"
    elif until is not None:
        state = "cooling"
    else:
        state = "available"
    out["state"] = state
    out["emulated"] = served is not None and kind in rt.providers.emulated
    out["cooling_until"] = until // 1000 if until is not None and served is not None else None
    out["unavailable_until"] = mark.until // 1000 if mark is not None else None
    out["cost_per_second"] = route.cost_per_second
    return out


def model_to_wire(
    rt: Runtime,
    spec: ModelSpec,
    flags: Mapping[str, Any],
    marks: Mapping[str, Unavailable],
    day: date,
    cooling: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """One model as this gateway serves it today. ``route``, ``lifecycle`` and their
    dates are those of the route tried first here; ``routes`` lists every route the
    catalog knows, with its provider and its state here, in the order they are tried
    (the ones not configured last). ``unavailable_since`` is set while every route
    serving it is marked gone."""
    cooling = cooling or {}
    credit = rt.settings.credit()
    served_all = served_routes(spec, rt.providers.route_of, rt.settings.provider_priority)
    in_service = [s for s in served_all if not s.retired_on(day)]
    live = [s for s in in_service if s.key not in marks]
    first = served_all[0] if served_all else None
    route = first.name if first is not None else None
    served = spec.route(route) if first is None else first.route
    lifecycle = served.lifecycle_on(day)
    mark = marks.get(in_service[0].key) if in_service and not live else None
    reason = None
    if not served_all:
        reason = rt.providers.unavailable_reason(spec.provider)
    elif not in_service:
        reason = _lifecycle_note(spec, lifecycle, route)
        if spec.successor:
            reason = f"{reason}; use {spec.successor}"
    elif mark is not None:
        reason = f"marked unavailable: {mark.reason}"
    denied = access_denied(spec, flags) or _not_offered(spec)
    routes: dict[str, Any] = {}
    for s in served_all:
        routes[s.name] = _route_to_wire(rt, s.name, s.kind, s.route, s, marks, cooling, day)
    own_listed = spec.routes if spec.routes else {}
    for name, r in own_listed.items():
        if name not in routes:
            kind = r.provider or spec.provider
            routes[name] = _route_to_wire(rt, name, kind, r, None, marks, cooling, day)
    return {
        "id": spec.id,
        "object": "model",
        "modality": "video",
        "provider": spec.provider,
        "display_name": spec.display_name,
        "strengths": spec.strengths,
        "notes": spec.notes,
        "max_duration_seconds": spec.max_duration,
        "price": {
            "unit": "second",
            "millicredits_per_second": spec.price_per_second,
            "credits_per_second": _credits(spec.price_per_second),
            "by_resolution": {k: _credits(v) for k, v in spec.resolution_prices.items()},
            "money_per_second": credit.wire(spec.price_per_second),
            "money_by_resolution": {k: credit.text(v) for k, v in spec.resolution_prices.items()},
        },
        "allowedParams": spec.allowed.to_wire(),
        "defaults": {
            "duration_seconds": spec.default_duration,
            "resolution": spec.default_resolution,
            "aspect_ratio": spec.default_aspect_ratio,
        },
        "fallback": list(spec.fallback),
        "deadline_seconds": spec.deadline_seconds or rt.settings.default_deadline_seconds,
        "available": reason is None,
        "emulated": first is not None and first.kind in rt.providers.emulated,
        "unavailable_reason": reason,
        "availability_rule": spec.availability,
        "usable": reason is None and denied is None,
        "not_usable_reason": denied or reason,
        "deprecated": _lifecycle_note(spec, lifecycle, route),
        "route": route,
        "upstream_model": served.upstream_model if route is not None else None,
        "lifecycle": lifecycle.value,
        "deprecated_at": served.deprecated_at.isoformat() if served.deprecated_at else None,
        "retires_at": served.retires_at.isoformat() if served.retires_at else None,
        "successor": spec.successor,
        "routes": routes,
        "unavailable_since": mark.marked_at // 1000 if mark is not None else None,
        "unavailable_until": mark.until // 1000 if mark is not None else None,
        "source": "synced" if spec.synced is not None else "builtin",
        "priced": _priced(spec),
        "capabilities": capabilities(spec),
        "synced": spec.synced.to_wire() if spec.synced is not None else None,
    }


def _not_offered(spec: ModelSpec) -> str | None:
    """Why a synced model is listed but refused at submit (unmappable, unpriced)."""
    info = spec.synced
    if info is None:
        return None
    if info.mapping.status != "mapped":
        return f"not mapped: {'; '.join(info.mapping.problems) or 'its schema is unreadable'}"
    if info.price is None:
        return (
            "unpriced: no price per second is known for it here; an operator sets one "
            f'([models."{spec.id}"] price_per_second)'
        )
    return None


Capability = Literal["text_to_video", "image_input", "audio", "negative_prompt", "seed"]
CAPABILITIES: tuple[Capability, ...] = (
    "text_to_video",
    "image_input",
    "audio",
    "negative_prompt",
    "seed",
)


def capabilities(spec: ModelSpec) -> list[Capability]:
    """What a model takes beyond a prompt: ``text_to_video`` (no image needed),
    ``image_input``, ``audio`` (an audio switch), ``negative_prompt``, ``seed``."""
    info = spec.synced
    out: list[Capability] = []
    if info is None or not info.mapping.image_required:
        out.append("text_to_video")
    if spec.allowed.image_input:
        out.append("image_input")
    if info is not None and info.audio:
        out.append("audio")
    if spec.allowed.negative_prompt:
        out.append("negative_prompt")
    if spec.allowed.seed:
        out.append("seed")
    return out


def _matches(spec: ModelSpec, words: list[str]) -> bool:
    text = " ".join(
        (spec.id, spec.display_name, spec.provider, spec.upstream_model, spec.strengths)
    ).lower()
    return all(w in text for w in words)


def _priced(spec: ModelSpec) -> bool:
    """An unpriced synced model costs nothing only on paper: no price filter matches it."""
    return spec.synced is None or spec.synced.price is not None


def _providers_of(spec: ModelSpec) -> set[str]:
    return {spec.provider} | {r.provider or spec.provider for r in spec.routes.values()}


def _cursor(model_id: str) -> str:
    return base64.urlsafe_b64encode(model_id.encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        model_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        model_id = ""
    if not model_id or _cursor(model_id) != cursor:
        raise ValidationFailed(
            "after is not a cursor this API gave (use next_cursor from the previous page).",
            param="after",
        )
    return model_id


@router.get("", responses=errors(400))
async def list_models(
    modality: Literal["video"] | None = Query(None),
    search: str | None = Query(
        None, max_length=200, description="Words that must all occur in id, name or provider."
    ),
    provider: str | None = Query(None, max_length=32, description="fal, replicate, veo..."),
    capability: list[Capability] = Query(
        [], description="Each must be offered: text_to_video, image_input, audio..."
    ),
    max_duration_gte: int | None = Query(None, ge=0, le=10_000),
    max_duration_lte: int | None = Query(None, ge=0, le=10_000),
    price_gte: int | None = Query(
        None, ge=0, description="Millicredits per second at the default resolution, at least."
    ),
    price_lte: int | None = Query(None, ge=0, description="... at most."),
    source: Literal["builtin", "synced"] | None = Query(None),
    priced: bool | None = Query(None, description="false: the synced models with no price."),
    limit: int = Query(100, ge=1, le=500),
    after: str | None = Query(None, max_length=400, description="next_cursor of a page."),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """The catalog: hand-written models first, then synced ones by id. Filters combine;
    ``total`` counts every match, ``next_cursor`` reads the next page."""
    await refresh(rt.catalog, rt.db)
    words = (search or "").lower().split()
    found = [
        spec
        for spec in rt.catalog
        if (not words or _matches(spec, words))
        and (provider is None or provider.lower() in _providers_of(spec))
        and all(c in capabilities(spec) for c in capability)
        and (max_duration_gte is None or spec.max_duration >= max_duration_gte)
        and (max_duration_lte is None or spec.max_duration <= max_duration_lte)
        and (price_gte is None or (_priced(spec) and spec.price_per_second >= price_gte))
        and (price_lte is None or (_priced(spec) and spec.price_per_second <= price_lte))
        and (source is None or (source == "synced") == (spec.synced is not None))
        and (priced is None or priced == _priced(spec))
    ]
    start = 0
    if after is not None:
        last = _after(after)
        ids = [s.id for s in found]
        if last in ids:
            start = ids.index(last) + 1
        elif last.startswith(SYNCED_PREFIXES):
            # that synced model is gone since: go on from the first id after it
            start = next(
                (i for i, s in enumerate(found) if s.synced is not None and s.id > last),
                len(found),
            )
        else:
            # a hand-written model removed by a config reload: its place is unknown, and
            # starting over would repeat models; the client starts again on purpose
            raise ValidationFailed(
                f"The model this cursor ends at ({last!r}) is no longer in the catalog; "
                "list again without after.",
                code="cursor_expired",
                param="after",
            )
    page = found[start : start + limit]
    more = start + limit < len(found)
    now = now_ms()
    async with rt.store.reading() as tx:
        flags = await tx.get_flags(key.account_id)
    marks = {m.deployment: m for m in await rt.store.list_unavailable(now)}
    cooling = await rt.store.list_cooling(now)
    day = today(now)
    return {
        "object": "list",
        "data": [model_to_wire(rt, spec, flags, marks, day, cooling) for spec in page],
        "has_more": more,
        "next_cursor": _cursor(page[-1].id) if more and page else None,
        "total": len(found),
    }


@router.get("/{model_id:path}", responses=errors(404))
async def get_model(
    model_id: str,
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """One model, by its id (a synced model's full ``fal:<endpoint id>`` names it too)."""
    await refresh(rt.catalog, rt.db, max_age=0.0 if model_id not in rt.catalog else 2.0)
    if model_id not in rt.catalog:
        raise NotFound(
            f"No model {model_id!r}. GET /v1/models?search= finds one.",
            code="unknown_model",
            param="model_id",
        )
    spec = rt.catalog.get(model_id)
    now = now_ms()
    async with rt.store.reading() as tx:
        flags = await tx.get_flags(key.account_id)
    marks = {m.deployment: m for m in await rt.store.list_unavailable(now)}
    cooling = await rt.store.list_cooling(now)
    return model_to_wire(rt, spec, flags, marks, today(now), cooling)
