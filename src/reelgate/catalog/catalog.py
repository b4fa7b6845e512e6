"""The catalog in force: built-in models, overridden by the operator's config file.

Config file (TOML, ``REELGATE_CONFIG_FILE``)::

    [models."veo-3-1"]
    price_per_second = 40000          # millicredits per second
    fallback = ["veo-3-1-fast"]       # operator default chain
    deadline_seconds = 1800

    [models."my-local"]               # a new entry copies another's fields
    base = "local"
    display_name = "Preview renderer"

    [models."veo-3-1".routes.gemini]  # a route's upstream id and life cycle
    lifecycle = "ga"                  # this key still works on the Gemini API
    retires_at = 2027-01-31           # TOML dates; "" clears one

    [models."wan-2-5".routes.fal]     # another provider serving the model: its kind,
    provider = "fal"                  # its id there, what it costs upstream
    upstream_model = "fal-ai/wan-25-preview/text-to-video"
    cost_per_second = 5625

    [models."sora-2"]
    route_to_successor = true         # once retired, serve it with its successor
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from reelgate.catalog.defaults import DEFAULT_MODELS
from reelgate.catalog.models import Lifecycle, ModelSpec, Route
from reelgate.catalog.synced.prices import SyncedPrice
from reelgate.errors import ReelgateError, ValidationFailed

__all__ = ["SYNCED_PREFIXES", "Catalog", "SyncedSettings", "load_catalog"]

_ALLOWED_KEYS = {
    "resolutions",
    "aspect_ratios",
    "durations",
    "image_input",
    "negative_prompt",
    "seed",
}


SYNCED_PREFIXES = ("fal:", "replicate:")
"""Ids of models the catalog sync makes (``catalog.synced``)."""


@dataclass
class SyncedSettings:
    """The operator's word on synced models (``[models."fal:<id>"]`` in the config
    file): a price makes an unpriced model usable; fallback and name as for any model."""

    prices: dict[str, SyncedPrice] = field(default_factory=dict)
    fallback: dict[str, tuple[str, ...]] = field(default_factory=dict)
    display_name: dict[str, str] = field(default_factory=dict)
    typical_seconds: float = 120.0
    """How long a synced model's job is taken to last before it is first polled (fal and
    Replicate call back when one ends; the poll is the safety net)."""
    poll_interval_seconds: float = 5.0


class Catalog:
    def __init__(
        self, models: Iterable[ModelSpec], synced_settings: SyncedSettings | None = None
    ) -> None:
        self._builtin: dict[str, ModelSpec] = {m.id: m for m in models}
        self._synced: dict[str, ModelSpec] = {}
        self._aliases: dict[str, str] = {}
        self._models: dict[str, ModelSpec] = dict(self._builtin)
        self.synced_settings = synced_settings or SyncedSettings()
        self.synced_version: object = None
        """What the synced models were built from (``catalog.synced.store``)."""
        self.synced_checked_at = 0.0
        """When (monotonic) ``catalog.synced.store.refresh`` last looked at the table."""

    def replace(
        self, models: Iterable[ModelSpec], synced_settings: SyncedSettings | None = None
    ) -> None:
        """Swap the models in force (a reloaded config): every holder of this catalog,
        the API and the workers alike, sees the new models at once. Synced models stay;
        new operator settings for them apply at the next load (``synced_version`` is
        cleared so that load happens). Synced entries among ``models`` (a caller that
        rebuilt every entry) replace the synced ones."""
        models = list(models)
        self._builtin = {m.id: m for m in models if m.synced is None}
        synced = [m for m in models if m.synced is not None]
        if synced:
            self._synced = {m.id: m for m in synced}
        if synced_settings is not None:
            self.synced_settings = synced_settings
            self.synced_version = None
        self._rebuild()

    def set_synced(self, models: Iterable[ModelSpec], version: object) -> None:
        """The synced models in force (each with ``ModelSpec.synced`` set)."""
        self._synced = {m.id: m for m in sorted(models, key=lambda m: m.id)}
        self._aliases = {
            m.synced.full_id: m.id
            for m in self._synced.values()
            if m.synced is not None and m.synced.full_id != m.id
        }
        self.synced_version = version
        self._rebuild()

    def _rebuild(self) -> None:
        models = dict(self._builtin)
        for model_id, spec in self._synced.items():
            models.setdefault(model_id, spec)
        self._models = models

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models or model_id in self._aliases

    def __len__(self) -> int:
        return len(self._models)

    def ids(self) -> list[str]:
        return list(self._models)

    def builtin_ids(self) -> list[str]:
        return list(self._builtin)

    def resolve(self, model_id: str) -> str:
        """The catalog id for ``model_id`` (a synced model's full ``provider:id`` form
        names it too)."""
        return self._aliases.get(model_id, model_id)

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._models[self._aliases.get(model_id, model_id)]
        except KeyError:
            synced = model_id.startswith(SYNCED_PREFIXES)
            hint = (
                " It is not in the synced catalog: an operator runs `reelgate catalog sync` "
                "to fetch fal's and Replicate's models; GET /v1/models?search= finds the "
                "ones synced."
                if synced
                else " GET /v1/models lists the models you can use."
            )
            raise ValidationFailed(
                f"Unknown model {model_id!r}.{hint}",
                code="unknown_model",
                param="model",
                allowed=self.builtin_ids() if synced else self.ids(),
            ) from None


def _override(spec: ModelSpec, values: Mapping[str, Any]) -> ModelSpec:
    changes: dict[str, Any] = {}
    allowed_changes: dict[str, Any] = {}
    for key, value in values.items():
        if key == "base":
            continue
        if key in _ALLOWED_KEYS:
            allowed_changes[key] = tuple(value) if isinstance(value, list) else value
        elif key == "fallback":
            changes[key] = tuple(value)
        elif key == "routes":
            changes[key] = _routes(spec, value)
        elif key == "deprecated":
            # the field before routes existed (docs told operators to set it): kept as a
            # note, since a route's life cycle now says when a model retires
            changes["notes"] = f"{values.get('notes', spec.notes)} (deprecated: {value})"
        elif key in {f.name for f in dataclasses.fields(ModelSpec)}:
            changes[key] = value
        else:
            raise ReelgateError(f"config file: unknown model setting {key!r}", code="bad_config")
    if allowed_changes:
        changes["allowed"] = dataclasses.replace(spec.allowed, **allowed_changes)
    return dataclasses.replace(spec, **changes)


_ROUTE_KEYS = {
    "upstream_model",
    "lifecycle",
    "deprecated_at",
    "retires_at",
    "source",
    "provider",
    "cost_per_second",
    "cost_by_resolution",
    "cost_source",
}


def _cost_table(spec: ModelSpec, name: str, value: Any) -> tuple[tuple[str, int], ...]:
    """``cost_by_resolution = { "1080p" = 25000 }`` as the route keeps it."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in value.items()
    ):
        raise ReelgateError(
            f"config file: cost_by_resolution of {spec.id!r} on {name!r} must be a table of "
            f'resolution = millicredits per second (0 or more), e.g. {{ "1080p" = 25000 }}; '
            f"got {value!r}",
            code="bad_config",
        )
    return tuple(sorted(value.items()))


def _routes(spec: ModelSpec, values: Mapping[str, Any]) -> dict[str, Route]:
    """The model's routes with the config file's changes (a new route name adds one)."""
    routes = dict(spec.routes)
    for name, fields in values.items():
        unknown = set(fields) - _ROUTE_KEYS
        if unknown:
            raise ReelgateError(
                f"config file: unknown route setting(s) {sorted(unknown)} for {spec.id!r}; "
                f"choose from {sorted(_ROUTE_KEYS)}",
                code="bad_config",
            )
        changes: dict[str, Any] = {k: (None if v == "" else v) for k, v in fields.items()}
        for when in ("deprecated_at", "retires_at"):
            value = changes.get(when)
            if value is not None and not isinstance(value, date):
                raise ReelgateError(
                    f"config file: {when} of {spec.id!r} on {name!r} must be a TOML date "
                    f'(2027-01-31, unquoted) or "" to clear it; got {value!r}',
                    code="bad_config",
                )
        cost = changes.get("cost_per_second")
        if cost is not None and (not isinstance(cost, int) or isinstance(cost, bool) or cost < 0):
            raise ReelgateError(
                f"config file: cost_per_second of {spec.id!r} on {name!r} must be a "
                f"whole number of millicredits, 0 or more; got {cost!r}",
                code="bad_config",
            )
        if "cost_by_resolution" in changes:
            changes["cost_by_resolution"] = _cost_table(
                spec, name, changes["cost_by_resolution"] or {}
            )
        for text in ("upstream_model", "source", "provider", "cost_source"):
            if text in changes and not isinstance(changes[text], str):
                raise ReelgateError(
                    f"config file: {text} of {spec.id!r} on {name!r} must be a string",
                    code="bad_config",
                )
        if "lifecycle" in changes:
            try:
                changes["lifecycle"] = Lifecycle(changes["lifecycle"])
            except ValueError:
                raise ReelgateError(
                    f"config file: lifecycle of {spec.id!r} on {name!r} must be one of "
                    f"{[x.value for x in Lifecycle]}",
                    code="bad_config",
                ) from None
        base = routes.get(name, Route(spec.upstream_model))
        routes[name] = dataclasses.replace(base, **changes)
    return routes


def load_catalog(config_file: Path | None = None) -> Catalog:
    models = {m.id: m for m in DEFAULT_MODELS}
    synced = SyncedSettings()
    if config_file is not None:
        data = tomllib.loads(config_file.read_text())
        for model_id, values in data.get("models", {}).items():
            if model_id.startswith(SYNCED_PREFIXES):
                _synced_setting(model_id, values, synced)
            elif model_id in models:
                models[model_id] = _override(models[model_id], values)
            elif "base" in values and values["base"] in models:
                base = dataclasses.replace(models[values["base"]], id=model_id)
                models[model_id] = _override(base, values)
            else:
                raise ReelgateError(
                    f"config file: model {model_id!r} is new; give it base = <an existing id>",
                    code="bad_config",
                )
    for spec in models.values():
        if spec.successor is not None and spec.successor not in models:
            raise ReelgateError(
                f"config file: {spec.id!r} names unknown successor {spec.successor!r}",
                code="bad_config",
            )
        for fb in spec.fallback:
            if fb not in models and not fb.startswith(SYNCED_PREFIXES):
                raise ReelgateError(
                    f"config file: {spec.id!r} falls back to unknown model {fb!r}",
                    code="bad_config",
                )
    return Catalog(models.values(), synced)


_SYNCED_KEYS = {"price_per_second", "resolution_prices", "price_source", "fallback", "display_name"}


def _synced_setting(model_id: str, values: Mapping[str, Any], out: SyncedSettings) -> None:
    """``[models."fal:<id>"]``: the operator prices (or names, or chains) a synced model."""
    unknown = set(values) - _SYNCED_KEYS
    if unknown:
        raise ReelgateError(
            f"config file: {sorted(unknown)} cannot be set for the synced model {model_id!r}; "
            f"choose from {sorted(_SYNCED_KEYS)}",
            code="bad_config",
        )
    price = values.get("price_per_second")
    if price is not None:
        if not isinstance(price, int) or isinstance(price, bool) or price < 0:
            raise ReelgateError(
                f"config file: price_per_second of {model_id!r} must be a whole number of "
                f"millicredits, 0 or more; got {price!r}",
                code="bad_config",
            )
        by_res = values.get("resolution_prices", {})
        if not isinstance(by_res, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in by_res.values()
        ):
            raise ReelgateError(
                f"config file: resolution_prices of {model_id!r} must be a table of "
                f'resolution = millicredits per second, e.g. {{ "1080p" = 25000 }}',
                code="bad_config",
            )
        source = str(values.get("price_source") or "the operator's config file")
        by_res = {str(k).lower(): v for k, v in by_res.items()}  # "1080P" as "1080p"
        out.prices[model_id] = SyncedPrice(price, by_res, f"operator: {source}")
    elif "resolution_prices" in values:
        raise ReelgateError(
            f"config file: resolution_prices of {model_id!r} needs price_per_second too",
            code="bad_config",
        )
    if "fallback" in values:
        out.fallback[model_id] = tuple(str(x) for x in values["fallback"])
    if "display_name" in values:
        out.display_name[model_id] = str(values["display_name"])
