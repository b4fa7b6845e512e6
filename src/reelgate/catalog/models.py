"""The model catalog: what each public model id accepts, costs and runs on.

A catalog entry is pure data. Validation of a request against it lives here so
the API and the engine agree on what a model can take.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelgate.catalog.synced.model import SyncedInfo

__all__ = ["AllowedParams", "Lifecycle", "ModelSpec", "Route", "resolution_dims"]

_SHORT_SIDE = {
    "360p": 360,
    "480p": 480,
    "512p": 512,
    "540p": 540,
    "720p": 720,
    "768p": 768,
    "1080p": 1080,
}
_ASPECTS = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "1:1": (1, 1),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "21:9": (21, 9),
    "9:21": (9, 21),
}


def _even(n: float) -> int:
    return round(n / 2.0) * 2


def resolution_dims(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Width and height of a named resolution (its short side) at an aspect ratio.

    ``720p`` at ``16:9`` is 1280x720, at ``9:16`` 720x1280, at ``1:1`` 720x720.
    """
    short = _SHORT_SIDE[resolution.lower()]
    aw, ah = _ASPECTS[aspect_ratio]
    if aw >= ah:
        return _even(short * aw / ah), short
    return short, _even(short * ah / aw)


@dataclass(frozen=True)
class AllowedParams:
    resolutions: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    durations: tuple[int, ...]
    image_input: bool
    negative_prompt: bool = True
    seed: bool = True
    durations_by_resolution: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Combination rules a flat list cannot say, e.g. Veo renders 1080p only at 8 s."""

    def durations_for(self, resolution: str) -> tuple[int, ...]:
        return self.durations_by_resolution.get(resolution, self.durations)

    def to_wire(self) -> dict[str, Any]:
        return {
            "resolution": list(self.resolutions),
            "aspect_ratio": list(self.aspect_ratios),
            "duration_seconds": list(self.durations),
            "duration_seconds_by_resolution": {
                k: list(v) for k, v in self.durations_by_resolution.items()
            },
            "image_input": self.image_input,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
        }


class Lifecycle(enum.StrEnum):
    """Where a model is in its provider's life cycle, on one route."""

    PREVIEW = "preview"
    GA = "ga"
    DEPRECATED = "deprecated"
    """Still served, with a retirement announced or expected: plan the move."""
    RETIRED = "retired"
    """No longer served: a create would fail upstream, so reelgate refuses it first."""


@dataclass(frozen=True)
class Route:
    """How one route of the model's provider serves it: the id it answers to there,
    and that id's life cycle. A route is a provider's deployment flavour (``gemini`` or
    ``vertex`` for Veo, ``openai`` or ``azure`` for Sora, a DashScope region for Wan);
    a provider deployment says which one it is (``Provider.route``)."""

    upstream_model: str
    lifecycle: Lifecycle = Lifecycle.GA
    deprecated_at: date | None = None
    retires_at: date | None = None
    """From this day on the route no longer serves the model."""
    source: str = ""
    """Where the facts above come from (a public doc or SDK source, and its date)."""
    provider: str | None = None
    """The provider kind serving this route, when it is not the model's own provider
    (``fal`` or ``replicate`` serving a Wan or a Veo model, say)."""
    cost_per_second: int | None = None
    """What the route costs upstream per second of video, in millicredits at the default
    credit value (one US cent, ``billing.money``): ranks otherwise equal routes."""
    cost_by_resolution: tuple[tuple[str, int], ...] = ()
    """(resolution, cost) where the provider prices by resolution; others cost
    ``cost_per_second``."""
    cost_source: str = ""
    """Where the cost comes from, with its date (a list price page, or the operator)."""

    def cost_for(self, resolution: str) -> int | None:
        """The upstream cost per second at ``resolution`` (None: not known)."""
        return dict(self.cost_by_resolution).get(resolution, self.cost_per_second)

    def lifecycle_on(self, today: date) -> Lifecycle:
        """The stage on ``today``: the dates move a model along without a release."""
        if self.lifecycle is Lifecycle.RETIRED or (
            self.retires_at is not None and today >= self.retires_at
        ):
            return Lifecycle.RETIRED
        if self.lifecycle is Lifecycle.DEPRECATED or (
            self.deprecated_at is not None and today >= self.deprecated_at
        ):
            return Lifecycle.DEPRECATED
        return self.lifecycle

    def to_wire(self, today: date) -> dict[str, Any]:
        return {
            "upstream_model": self.upstream_model,
            "lifecycle": self.lifecycle_on(today).value,
            "deprecated_at": self.deprecated_at.isoformat() if self.deprecated_at else None,
            "retires_at": self.retires_at.isoformat() if self.retires_at else None,
            "provider": self.provider,
        }


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider: str
    """The provider kind (a key of the provider registry)."""
    upstream_model: str
    display_name: str
    strengths: str
    notes: str
    allowed: AllowedParams
    price_per_second: int
    """Millicredits per second of delivered video (1 credit = 1000)."""
    default_resolution: str
    default_aspect_ratio: str
    default_duration: int
    typical_seconds: float
    """How long a generation usually takes; drives the progress estimate."""
    deadline_seconds: int | None = None
    """Per-model deadline; None means the gateway default (1 h)."""
    poll_interval_seconds: float = 5.0
    resolution_prices: dict[str, int] = field(default_factory=dict)
    availability: str | None = None
    """A named availability rule ("allow_list", "prc_opt_in"), enforced per account."""
    fallback: tuple[str, ...] = ()
    """Operator default fallback chain."""
    routes: Mapping[str, Route] = field(default_factory=dict)
    """Per route of the provider (``Provider.route``): its upstream id and life cycle.
    A route not listed serves ``upstream_model``, generally available."""
    successor: str | None = None
    """The catalog model to move to when this one retires (named in the refusal)."""
    route_to_successor: bool = False
    """The operator's choice: once retired, serve requests for this model with
    ``successor`` instead of refusing them."""
    synced: SyncedInfo | None = None
    """Set for a model the catalog sync made from its provider's schema
    (``catalog.synced``): the schema, the mapping onto it and where its price is from."""

    def route(self, name: str | None) -> Route:
        """How the route ``name`` serves this model (None: no deployment is configured)."""
        found = self.routes.get(name) if name is not None else None
        return found if found is not None else Route(self.upstream_model)

    @property
    def max_duration(self) -> int:
        return max(self.allowed.durations)

    def price_for(self, resolution: str) -> int:
        return self.resolution_prices.get(resolution, self.price_per_second)

    def price_for_request(
        self,
        resolution: str,
        audio: bool | None = None,
        provider_params: Mapping[str, Any] | None = None,
    ) -> int:
        """Per second for a request: a synced model's price may depend on its audio
        switch and its own inputs (``SyncedPrice.for_request``; a fallback reads only
        the inputs it has). A combination with no known price is refused at submit, so
        the list price stands in only if the price table changed since."""
        info = self.synced
        price = info.price if info is not None else None
        if info is None or price is None:
            return self.price_for(resolution)
        own = {k: v for k, v in (provider_params or {}).items() if k in info.mapping.native}
        found = price.for_request(resolution, audio if info.audio else None, own)
        return self.price_for(resolution) if found is None else found
