"""The catalog as a Markdown table (docs/models.md): every model, its routes, limits,
price and the sources of those facts.

    python -m reelgate.catalog.table > docs/models.md

``tests/unit/test_catalog.py`` fails when docs/models.md and the catalog disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from decimal import Decimal

from reelgate.billing.money import MILLICREDITS_PER_USD
from reelgate.catalog.defaults import DEFAULT_MODELS
from reelgate.catalog.models import ModelSpec, Route

__all__ = ["markdown"]

HEADER = """\
# Models

Generated from the catalog (`src/reelgate/catalog/defaults.py`, `hosted.py`) by
`python -m reelgate.catalog.table > docs/models.md`; a unit test keeps the two in
step. Prices are reelgate's list prices in credits per second (1 credit = 1,000
millicredits = one US cent by default, `REELGATE_CREDIT_VALUE`; the dollar figure is at
that value: {rate} millicredits per USD). A route's upstream cost ranks
otherwise equal routes (docs/providers.md, "Several routes per model"); "?" where no
public figure was found. `GET /v1/models` gives the same facts live, with each route's
state on this gateway.
"""


def _usd(millicredits: int) -> str:
    if millicredits < 0:
        return "-" + _usd(-millicredits)
    value = (Decimal(millicredits) / MILLICREDITS_PER_USD).quantize(Decimal("0.0001"))
    return f"${value.normalize():f}"  # at the default credit value (billing.money)


def _price(spec: ModelSpec) -> str:
    text = f"{spec.price_per_second / 1000:g} cr/s ({_usd(spec.price_per_second)})"
    others = [
        f"{res} {_usd(p)}"
        for res, p in spec.resolution_prices.items()
        if res in spec.allowed.resolutions
    ]
    return text + (f"; {', '.join(others)}" if others else "")


def _limits(spec: ModelSpec) -> str:
    a = spec.allowed
    durations = a.durations
    if len(durations) > 3 and list(durations) == list(range(durations[0], durations[-1] + 1)):
        seconds = f"{durations[0]} to {durations[-1]} s"
    else:
        seconds = "/".join(str(d) for d in durations) + " s"
    parts = [seconds, "/".join(a.resolutions), "/".join(a.aspect_ratios) or "any ratio"]
    parts.append("text + image" if a.image_input else "text only")
    for res, allowed in sorted(a.durations_by_resolution.items()):
        parts.append(f"{res}: {'/'.join(str(d) for d in allowed)} s")
    return "; ".join(parts)


def _cost(route: Route) -> str:
    if route.cost_per_second is None and not route.cost_by_resolution:
        return "?"
    base = _usd(route.cost_per_second) + "/s" if route.cost_per_second is not None else "?"
    others = [f"{res} {_usd(c)}" for res, c in route.cost_by_resolution]
    return base + (f" ({', '.join(others)})" if others else "")


def _routes(spec: ModelSpec) -> list[tuple[str, str, str, str]]:
    """(route, provider, upstream id, cost) per route, the model's own first."""
    out: list[tuple[str, str, str, str]] = []
    for name, route in spec.routes.items():
        out.append((name, route.provider or spec.provider, route.upstream_model, _cost(route)))
    if not out:
        out.append(("—", spec.provider, spec.upstream_model, "—"))
    return out


def markdown(models: Iterable[ModelSpec] = DEFAULT_MODELS) -> str:
    specs = list(models)
    lines = [HEADER.format(rate=f"{MILLICREDITS_PER_USD:,}"), ""]
    lines += [
        "| model | routes (provider: upstream id, cost) | limits | price |",
        "|---|---|---|---|",
    ]
    for spec in specs:
        routes = "<br>".join(
            f"`{name}` {kind}: `{upstream}`, {cost}" for name, kind, upstream, cost in _routes(spec)
        )
        lines.append(
            f"| `{spec.id}` {spec.display_name} | {routes} | {_limits(spec)} | {_price(spec)} |"
        )
    lines += ["", *margins(specs)]
    lines += ["", "## Sources", ""]
    for spec in specs:
        sourced = [(n, r) for n, r in spec.routes.items() if r.source or r.cost_source]
        if not sourced:
            continue
        lines.append(f"- `{spec.id}`:")
        for name, route in sourced:
            if route.source:
                lines.append(f"  - `{name}`: {route.source}")
            if route.cost_source:
                lines.append(f"  - `{name}` cost: {route.cost_source}")
    return "\n".join(lines) + "\n"


def margins(specs: Iterable[ModelSpec]) -> list[str]:
    """Price, upstream cost and margin per second of video, per model, costed route and
    resolution (at the default credit value)."""
    lines = [
        "## Price, upstream cost and margin",
        "",
        "Per second of video at the default credit value, for every route whose upstream",
        "cost is known (a provider's own figure per job, such as xAI's cost ticks, replaces",
        "the list cost in the usage report). Sources and dates are under Sources below.",
        "",
        "| model | route | resolution | price cr/s | price $/s | upstream $/s | margin $/s "
        "| margin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        for name, route in spec.routes.items():
            for res in spec.allowed.resolutions:
                cost = route.cost_for(res)
                if cost is None:
                    continue
                price = spec.price_for(res)
                margin = price - cost
                share = f"{Decimal(margin * 100) / price:.0f} %" if price else "—"
                lines.append(
                    f"| `{spec.id}` | `{name}` | {res} | {price / 1000:g} | {_usd(price)} | "
                    f"{_usd(cost)} | {_usd(margin)} | {share} |"
                )
    return lines


if __name__ == "__main__":
    sys.stdout.write(markdown())
