"""``reelgate providers check``: does each configured deployment work, from here, now?

For each configured deployment: whether it accepts our credential (a cheap
authenticated read, ``Verifies.verify``), and, per catalog model of its kind, the
model's life cycle on the deployment's route; with ``generate``, the cheapest,
shortest job of each model in service, created, polled to the end and its first
bytes downloaded (it is billed by the provider). Each row has its latency and, for
a failure, the reason in the provider's words. Nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable

from reelgate.catalog import Catalog, ModelSpec, resolution_dims
from reelgate.catalog.models import Lifecycle
from reelgate.errors import ProviderError
from reelgate.providers.base import GenerationRequest, Provider, UpstreamState
from reelgate.providers.registry import ProviderRegistry

__all__ = ["CheckRow", "Verifies", "cheapest", "check_providers"]

CHECK_PROMPT = "reelgate providers check: a red ball rolls across a white table"


@runtime_checkable
class Verifies(Protocol):
    """A provider with a cheap authenticated read that proves the credential works."""

    async def verify(self) -> None:
        """Raise a ``ProviderError`` (``upstream_auth``, quota...) when it does not."""
        ...


@dataclass(frozen=True)
class CheckRow:
    provider: str
    route: str | None
    subject: str
    """"credential", or a catalog model id."""
    ok: bool
    detail: str
    seconds: float | None = None


def cheapest(spec: ModelSpec) -> tuple[int, str, str]:
    """The shortest duration, the cheapest resolution (then the smallest) and an aspect
    ratio the model takes at that resolution."""
    allowed = spec.allowed
    resolution = min(
        allowed.resolutions,
        key=lambda r: (spec.price_for(r), resolution_dims(r, allowed.aspect_ratios[0])[1]),
    )
    return min(allowed.durations_for(resolution)), resolution, allowed.aspect_ratios[0]


async def _generate(
    provider: Provider, spec: ModelSpec, route: str | None, job_seconds: float
) -> str:
    seconds, resolution, aspect = cheapest(spec)
    width, height = resolution_dims(resolution, aspect)
    request = GenerationRequest(
        job_id=f"check_{int(time.time())}",
        attempt=1,
        model=spec.id,
        upstream_model=spec.route(route).upstream_model,
        prompt=CHECK_PROMPT,
        duration_seconds=seconds,
        resolution=resolution,
        aspect_ratio=aspect,
        width=width,
        height=height,
    )
    async with asyncio.timeout(job_seconds):
        submitted = await provider.create(request)
        while True:
            status = await provider.status(submitted.upstream_id)
            if status.state is UpstreamState.SUCCEEDED and status.result is not None:
                break
            await asyncio.sleep(min(spec.poll_interval_seconds, 5.0))
        async for chunk in provider.download(status.result):
            if chunk:
                break
    return f"{seconds} s at {resolution}: made and downloaded (upstream {submitted.upstream_id})"


async def check_providers(
    registry: ProviderRegistry,
    catalog: Catalog,
    *,
    generate: bool = False,
    kinds: Sequence[str] = (),
    models: Sequence[str] = (),
    job_seconds: float = 900.0,
    day: date | None = None,
) -> list[CheckRow]:
    day = day or date.today()
    rows: list[CheckRow] = []
    for kind, provider in sorted(registry.providers.items()):
        if kinds and kind not in kinds:
            continue
        route = registry.route_of(kind)
        if isinstance(provider, Verifies):
            started = time.monotonic()
            try:
                await provider.verify()
                rows.append(CheckRow(kind, route, "credential", True, "accepted", _since(started)))
            except ProviderError as exc:
                rows.append(CheckRow(kind, route, "credential", False, _why(exc), _since(started)))
                continue  # nothing else can work without the credential
        for spec in catalog:
            if spec.provider != kind or (models and spec.id not in models):
                continue
            served = spec.route(route)
            stage = served.lifecycle_on(day)
            if stage is Lifecycle.RETIRED:
                when = f" on {served.retires_at.isoformat()}" if served.retires_at else ""
                rows.append(CheckRow(kind, route, spec.id, False, f"retired on this route{when}"))
                continue
            if not generate:
                detail = f"{stage.value} as {served.upstream_model} (not generated: --generate)"
                rows.append(CheckRow(kind, route, spec.id, True, detail))
                continue
            started = time.monotonic()
            try:
                detail = await _generate(provider, spec, route, job_seconds)
                rows.append(CheckRow(kind, route, spec.id, True, detail, _since(started)))
            except ProviderError as exc:
                rows.append(CheckRow(kind, route, spec.id, False, _why(exc), _since(started)))
            except TimeoutError:
                rows.append(
                    CheckRow(
                        kind,
                        route,
                        spec.id,
                        False,
                        f"no video in {job_seconds:.0f} s",
                        _since(started),
                    )
                )
    return rows


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _why(exc: ProviderError) -> str:
    status = f"HTTP {exc.upstream_status}, " if exc.upstream_status else ""
    return f"{exc.error_class.value} ({status}{exc.code}): {exc.message}"
