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
from reelgate.catalog.models import Lifecycle
from reelgate.engine.planner import deployment
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


def model_to_wire(
    rt: Runtime,
    spec: ModelSpec,
    flags: Mapping[str, Any],
    marks: Mapping[str, Unavailable],
    day: date,
) -> dict[str, Any]:
    """One model as this gateway serves it today: ``lifecycle`` and its dates are those
    of the route its provider is configured on (every known route under ``routes``);
    ``unavailable_since`` is set while the provider says the model is gone there."""
    route = rt.providers.route_of(spec.provider)
    served = spec.route(route)
    lifecycle = served.lifecycle_on(day)
    mark = marks.get(deployment(spec, route)) if route is not None else None
    reason = rt.providers.unavailable_reason(spec.provider)
    if reason is None and lifecycle is Lifecycle.RETIRED:
        reason = _lifecycle_note(spec, lifecycle, route)
        if spec.successor:
            reason = f"{reason}; use {spec.successor}"
    if reason is None and mark is not None:
        reason = f"marked unavailable: {mark.reason}"
    denied = access_denied(spec, flags)
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
        "emulated": spec.provider in rt.providers.emulated,
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
        "routes": {name: r.to_wire(day) for name, r in spec.routes.items()},
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
    day = today(now)
    return {
        "object": "list",
        "data": [model_to_wire(rt, spec, flags, marks, day) for spec in rt.catalog],
    }
