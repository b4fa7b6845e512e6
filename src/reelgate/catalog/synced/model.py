"""A model the catalog sync found upstream, and the catalog entry made from it.

Its catalog id is ``fal:<endpoint id>`` or ``replicate:<owner>/<name>``; an id longer
than a job's model column (64) is shortened with a hash (``catalog_id``), and the full
form still names it (``Catalog.get``). Its ``ModelSpec`` carries the schema and the
mapping (``ModelSpec.synced``), so validation, the engine and /v1/models read it like
any other entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from reelgate.catalog.models import AllowedParams, Lifecycle, ModelSpec, Route
from reelgate.catalog.synced.mapping import FieldMap, derive
from reelgate.catalog.synced.prices import SyncedPrice
from reelgate.catalog.synced.schema import InputSchema

__all__ = ["MAX_ID", "PREFIXES", "SyncedInfo", "SyncedModel", "catalog_id", "to_spec"]

PREFIXES = ("fal", "replicate")
MAX_ID = 64


def catalog_id(provider: str, upstream_id: str) -> str:
    full = f"{provider}:{upstream_id}"
    if len(full) <= MAX_ID:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_ID - 9]}~{digest}"


@dataclass(frozen=True)
class SyncedModel:
    """One row of ``synced_models``."""

    id: str
    provider: str
    upstream_id: str
    category: str
    display_name: str
    description: str
    schema: InputSchema
    schema_hash: str
    version: str | None
    status: str
    """``active`` or ``retired`` (gone upstream at a sync)."""
    mapping_status: str
    problems: tuple[str, ...]
    source: str
    """Where the schema was fetched from."""
    first_seen_at: int
    fetched_at: int
    changed_at: int
    retired_at: int | None = None
    updated_at: int = 0

    @property
    def full_id(self) -> str:
        return f"{self.provider}:{self.upstream_id}"


@dataclass(frozen=True)
class SyncedInfo:
    """What a synced entry carries beyond a hand-written one."""

    provider: str
    upstream_id: str
    full_id: str
    category: str
    schema: InputSchema = field(repr=False)
    mapping: FieldMap = field(repr=False)
    schema_hash: str
    fetched_at: int
    status: str
    price: SyncedPrice | None
    """None: unpriced, so listed but refused at submit (``model_unpriced``)."""
    version: str | None = None
    """The version a Replicate community model runs by (its ``latest_version.id``, the
    schema's own); None for fal and Replicate's official models."""

    @property
    def usable(self) -> bool:
        return self.mapping.status == "mapped" and self.price is not None

    @property
    def audio(self) -> bool:
        return self.mapping.audio is not None

    def _price_by_inputs(self) -> list[dict[str, Any]]:
        """The price for each known combination of the inputs that move it (the first:
        the model's defaults); empty when nothing moves it. Any other combination is
        refused at submit (``model_unpriced``)."""
        price = self.price
        if price is None or not price.base:
            return []
        out = [
            {
                "when": dict(price.base),
                "millicredits_per_second": price.per_second,
                "by_resolution": dict(price.by_resolution),
            }
        ]
        out += [
            {
                "when": {**price.base, **v.when},
                "millicredits_per_second": v.per_second,
                "by_resolution": dict(v.by_resolution),
            }
            for v in price.variants
        ]
        return out

    def to_wire(self) -> dict[str, Any]:
        props = self.schema.props
        return {
            "provider": self.provider,
            "upstream_id": self.upstream_id,
            "category": self.category,
            "schema_hash": self.schema_hash,
            "fetched_at": self.fetched_at // 1000,
            "status": self.status,
            "mapping": self.mapping.to_wire(),
            "priced": self.price is not None,
            "price_source": self.price.source if self.price else None,
            "price_by_inputs": self._price_by_inputs(),
            "provider_params": {
                name: props[name].to_wire() for name in self.mapping.native if name in props
            },
        }


_EMPTY = AllowedParams(
    resolutions=("720p",), aspect_ratios=("16:9",), durations=(5,), image_input=False
)


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


_DERIVED: dict[tuple[str, str, str], FieldMap] = {}
_CACHE_MAX = 8192


def _derived(row: SyncedModel) -> FieldMap:
    """``derive`` once per (model, schema, category): a process rebuilds its synced
    entries whenever the table changed, and most of them did not."""
    key = (row.id, row.schema_hash, row.category)
    found = _DERIVED.get(key)
    if found is None:
        if len(_DERIVED) >= _CACHE_MAX:
            _DERIVED.clear()
        found = _DERIVED[key] = derive(row.id, row.schema, row.category)
    return found


def to_spec(row: SyncedModel, price: SyncedPrice | None) -> ModelSpec:
    """The catalog entry for a synced model."""
    mapping = _derived(row)
    allowed = mapping.allowed or _EMPTY
    res, aspect, seconds = mapping.defaults
    retired = row.status == "retired"
    # a Replicate community model runs by its version: owner/name:version
    upstream = f"{row.upstream_id}:{row.version}" if row.version else row.upstream_id
    route = Route(
        upstream,
        Lifecycle.RETIRED if retired else Lifecycle.GA,
        retires_at=_day(row.retired_at) if retired and row.retired_at else None,
        source=row.source,
        provider=row.provider,
        cost_per_second=price.per_second if price else None,
        cost_by_resolution=tuple(sorted((price.by_resolution if price else {}).items())),
        cost_source=price.source if price else "",
    )
    notes = row.description[:300]
    if mapping.status != "mapped":
        notes = f"Not mapped: {'; '.join(mapping.problems)}"
    elif price is None:
        notes = f"Unpriced: no price is known for it here. {notes}".strip()
    return ModelSpec(
        id=row.id,
        provider=row.provider,
        upstream_model=upstream,
        display_name=row.display_name or row.upstream_id,
        strengths=row.category,
        notes=notes,
        allowed=allowed,
        price_per_second=price.per_second if price else 0,
        resolution_prices=dict(price.by_resolution) if price else {},
        default_resolution=res if res in allowed.resolutions else allowed.resolutions[0],
        default_aspect_ratio=aspect
        if aspect in allowed.aspect_ratios
        else allowed.aspect_ratios[0],
        default_duration=seconds if seconds in allowed.durations else allowed.durations[0],
        typical_seconds=120.0,
        poll_interval_seconds=5.0,
        routes={row.provider: route},
        synced=SyncedInfo(
            provider=row.provider,
            upstream_id=row.upstream_id,
            full_id=row.full_id,
            category=row.category,
            schema=row.schema,
            mapping=mapping,
            schema_hash=row.schema_hash,
            fetched_at=row.fetched_at,
            status=row.status,
            price=price,
            version=row.version,
        ),
    )
