"""Whether a model is still served: its life cycle on the configured route (data, in
the catalog) and the marks the engine leaves when a provider says a model is gone.

A model retired on its route is refused at submit (410 ``model_retired``, naming its
successor) unless the operator routes it to the successor (``route_to_successor``).
A model its provider answered "gone" for (``errors.ModelGone``) is marked
``Unavailable`` for a long while: the engine skips it down the job's chain and
/v1/models shows why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from reelgate.catalog.catalog import Catalog
from reelgate.catalog.models import Lifecycle, ModelSpec
from reelgate.catalog.routing import RouteOf, served_routes
from reelgate.errors import Gone

__all__ = ["RouteOf", "Unavailable", "in_service", "retired_error", "retired_here", "today"]


def retired_here(spec: ModelSpec, route_of: RouteOf, day: date) -> bool:
    """Every route serving ``spec`` here is retired on ``day`` (with no route set up, the
    one its own provider would be deployed on counts)."""
    served = served_routes(spec, route_of)
    if not served:
        return spec.route(route_of(spec.provider)).lifecycle_on(day) is Lifecycle.RETIRED
    return all(s.retired_on(day) for s in served)


def today(now_ms: int | None = None) -> date:
    """The UTC day of ``now_ms`` (now when None): life-cycle dates are UTC days."""
    if now_ms is None:
        return datetime.now(UTC).date()
    return datetime.fromtimestamp(now_ms / 1000, UTC).date()


def retired_error(spec: ModelSpec, route: str | None, param: str) -> Gone:
    """The 410 for a request naming a model its route no longer serves."""
    r = spec.route(route)
    since = f" on {r.retires_at.isoformat()}" if r.retires_at else ""
    where = f" on its {route} route" if route else ""
    move = (
        f" Use {spec.successor!r} instead (GET /v1/models lists it)."
        if spec.successor
        else " GET /v1/models lists the models in service."
    )
    return Gone(
        f"Model {spec.id!r} was retired by its provider{where}{since}.{move}",
        code="model_retired",
        param=param,
        model=spec.id,
        successor=spec.successor,
        retired_at=r.retires_at.isoformat() if r.retires_at else None,
    )


def in_service(catalog: Catalog, model_id: str, route_of: RouteOf, day: date) -> str | None:
    """The model that serves a request for ``model_id`` today: itself; its successor
    when it is retired and the operator routes it there; None when it is retired and
    not routed (the caller refuses it with ``retired_error``, or drops it from an
    operator's default chain)."""
    seen: set[str] = set()
    spec = catalog.get(model_id)
    while retired_here(spec, route_of, day):
        seen.add(spec.id)
        if not (spec.route_to_successor and spec.successor) or spec.successor in seen:
            return None
        spec = catalog.get(spec.successor)
    return spec.id


@dataclass(frozen=True)
class Unavailable:
    """A model its provider no longer serves on a route, until ``until`` (ms)."""

    deployment: str
    """``provider:upstream_model``, as for cooldowns (``engine.planner.deployment``)."""
    model: str
    """The catalog model that met the answer."""
    reason: str
    marked_at: int
    until: int
