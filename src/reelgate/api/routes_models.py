"""``GET /v1/models``: the catalog, with what this gateway can actually run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from reelgate.api.auth import require_read, runtime
from reelgate.catalog import ModelSpec
from reelgate.catalog.availability import access_denied
from reelgate.catalog.lifecycle import Unavailable, today
from reelgate.catalog.models import Lifecycle, Route
from reelgate.catalog.routing import Served, deployment_key, served_routes
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.jobs import now_ms

__all__ = ["model_to_wire", "router"]

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
    denied = access_denied(spec, flags)
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
    }


@router.get("")
async def list_models(
    modality: Literal["video"] | None = Query(None),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    now = now_ms()
    async with rt.store.reading() as tx:
        flags = await tx.get_flags(key.account_id)
    marks = {m.deployment: m for m in await rt.store.list_unavailable(now)}
    cooling = await rt.store.list_cooling(now)
    day = today(now)
    return {
        "object": "list",
        "data": [model_to_wire(rt, spec, flags, marks, day, cooling) for spec in rt.catalog],
    }
