"""Which deployments serve a model here, in the order they are tried.

A model is served by its own provider (``ModelSpec.provider``, on the route its
deployment is) and by every route the catalog lists with another provider kind
(``Route.provider``: Wan through DashScope and through fal, say). A route counts
only when its provider is configured in this process, on that route. They are
tried by operator priority (``Settings.provider_priority``), then by what they
cost upstream, then in catalog order; the engine skips a route that is retired,
marked gone or cooling down, and moves to the model's next route on a quota or
"gone" answer before it moves to the next model of the fallback chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from reelgate.catalog.models import Lifecycle, ModelSpec, Route

__all__ = ["DEFAULT_PRIORITY", "RouteOf", "Served", "deployment_key", "served_routes"]

RouteOf = Callable[[str], str | None]
"""Provider kind -> the route its deployment here is (None: not configured)."""

DEFAULT_PRIORITY = 100


def deployment_key(kind: str, route: str | None, upstream_model: str) -> str:
    """What a cooldown or an unavailable mark applies to: the provider, its route (a
    region's marks do not block another's) and the upstream model the route serves."""
    return f"{kind}:{route or '-'}:{upstream_model}"


@dataclass(frozen=True)
class Served:
    """One route that serves a model in this process."""

    kind: str
    """The provider kind (a key of the provider registry)."""
    name: str
    """The route's name (``Provider.route`` of that deployment)."""
    route: Route

    @property
    def upstream_model(self) -> str:
        return self.route.upstream_model

    @property
    def key(self) -> str:
        return deployment_key(self.kind, self.name, self.route.upstream_model)

    def retired_on(self, day: date) -> bool:
        return self.route.lifecycle_on(day) is Lifecycle.RETIRED


def _priority(spec: ModelSpec, kind: str, priorities: Mapping[str, int]) -> int:
    found = priorities.get(f"{spec.id}:{kind}", priorities.get(kind))
    return DEFAULT_PRIORITY if found is None else found


def served_routes(
    spec: ModelSpec, route_of: RouteOf, priorities: Mapping[str, int] | None = None
) -> list[Served]:
    """The routes serving ``spec`` here, best first (none: no provider of it is set up)."""
    found: list[Served] = []
    own = route_of(spec.provider)
    if own is not None:
        found.append(Served(spec.provider, own, spec.route(own)))
    for name, route in spec.routes.items():
        kind = route.provider
        if kind is None or kind == spec.provider or route_of(kind) != name:
            continue
        found.append(Served(kind, name, route))
    prio = priorities or {}
    order = {s.key: i for i, s in enumerate(found)}

    def rank(s: Served) -> tuple[int, float, int]:
        cost = s.route.cost_per_second
        return (
            _priority(spec, s.kind, prio),
            float("inf") if cost is None else cost,
            order[s.key],
        )

    return sorted(found, key=rank)


def find_served(spec: ModelSpec, route_of: RouteOf, kind: str, name: str | None) -> Served | None:
    """The route ``kind``/``name`` of ``spec`` if it serves it here."""
    for s in served_routes(spec, route_of):
        if s.kind == kind and (name is None or s.name == name):
            return s
    return None
