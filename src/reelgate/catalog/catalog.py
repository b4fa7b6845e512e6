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
from datetime import date
from pathlib import Path
from typing import Any

from reelgate.catalog.defaults import DEFAULT_MODELS
from reelgate.catalog.models import Lifecycle, ModelSpec, Route
from reelgate.errors import ReelgateError, ValidationFailed

__all__ = ["Catalog", "load_catalog"]

_ALLOWED_KEYS = {
    "resolutions",
    "aspect_ratios",
    "durations",
    "image_input",
    "negative_prompt",
    "seed",
}


class Catalog:
    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models: dict[str, ModelSpec] = {m.id: m for m in models}

    def replace(self, models: Iterable[ModelSpec]) -> None:
        """Swap the models in force (a reloaded config): every holder of this catalog,
        the API and the workers alike, sees the new models at once."""
        self._models = {m.id: m for m in models}

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def ids(self) -> list[str]:
        return list(self._models)

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._models[model_id]
        except KeyError:
            raise ValidationFailed(
                f"Unknown model {model_id!r}. GET /v1/models lists the models you can use.",
                code="unknown_model",
                param="model",
                allowed=self.ids(),
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
    if config_file is not None:
        data = tomllib.loads(config_file.read_text())
        for model_id, values in data.get("models", {}).items():
            if model_id in models:
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
            if fb not in models:
                raise ReelgateError(
                    f"config file: {spec.id!r} falls back to unknown model {fb!r}",
                    code="bad_config",
                )
    return Catalog(models.values())
