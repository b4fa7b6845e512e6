"""``GET /v1/models``: the catalog, with what this gateway can actually run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from reelgate.api.auth import require_read, runtime
from reelgate.catalog import ModelSpec
from reelgate.catalog.availability import access_denied
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo

__all__ = ["model_to_wire", "router"]

router = APIRouter(prefix="/v1/models", tags=["models"])


def _credits(millicredits: int) -> str:
    """Prices are integers in millicredits; rendered as an exact decimal string."""
    whole, frac = divmod(millicredits, 1000)
    return f"{whole}.{frac:03d}"


def model_to_wire(rt: Runtime, spec: ModelSpec, flags: Mapping[str, Any]) -> dict[str, Any]:
    reason = rt.providers.unavailable_reason(spec.provider)
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
        "deprecated": spec.deprecated,
    }


@router.get("")
async def list_models(
    modality: Literal["video"] | None = Query(None),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    async with rt.store.reading() as tx:
        flags = await tx.get_flags(key.account_id)
    return {"object": "list", "data": [model_to_wire(rt, spec, flags) for spec in rt.catalog]}
