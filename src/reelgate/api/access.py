"""May this key use these models here: the account's availability rules, whether each
model's provider is configured, and whether any model of the chain is still served (one
its provider said is gone is skipped by the engine; a chain of only such models is
refused). Shared by every route that creates jobs."""

from __future__ import annotations

from typing import Any

from reelgate.catalog.availability import access_denied
from reelgate.catalog.catalog import SYNCED_PREFIXES
from reelgate.catalog.lifecycle import today
from reelgate.catalog.routing import served_routes
from reelgate.catalog.synced.store import CHECK_SECONDS, refresh
from reelgate.errors import Forbidden, ValidationFailed
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.jobs import now_ms

__all__ = ["account_flags", "check_available", "synced_models_fresh"]


async def account_flags(rt: Runtime, account_id: str) -> dict[str, Any]:
    """The account's flags, read at most once a second per process (``store.recent``)."""

    async def read() -> dict[str, Any]:
        async with rt.store.reading() as tx:
            return await tx.get_flags(account_id)

    return await rt.flags.get(account_id, read)


async def synced_models_fresh(rt: Runtime, model_ids: list[str]) -> None:
    """Before a request names models: the synced ones as the last sync left them (read
    again now if one is not known here or is a synced id, else at most every
    ``CHECK_SECONDS``)."""
    if any(m not in rt.catalog for m in model_ids):
        await refresh(rt.catalog, rt.db, max_age=0.0)
    elif any(m.startswith(SYNCED_PREFIXES) for m in model_ids):
        await refresh(rt.catalog, rt.db, max_age=CHECK_SECONDS)


async def check_available(rt: Runtime, key: KeyInfo, chain: list[str]) -> None:
    flags = await account_flags(rt, key.account_id)
    for model_id in chain:
        spec = rt.catalog.get(model_id)
        denied = access_denied(spec, flags)
        if denied:
            raise Forbidden(
                denied,
                code="model_not_allowed",
                param="model" if model_id == chain[0] else "fallback",
                model=model_id,
                rule=spec.availability,
            )
        served = served_routes(spec, rt.providers.route_of)
        reason = None if served else rt.providers.unavailable_reason(spec.provider)
        if reason:
            raise ValidationFailed(
                f"Model {model_id!r} is unavailable on this gateway: {reason}.",
                code="model_unavailable",
                param="model" if model_id == chain[0] else "fallback",
                model=model_id,
            )
    now = now_ms()
    listed = await rt.gone.get("", lambda: rt.store.list_unavailable(now))
    marks = {m.deployment: m for m in listed if m.until > now}
    if not marks:
        return  # validation already refused a chain of only retired models
    day = today()
    gone = []
    for model_id in chain:
        spec = rt.catalog.get(model_id)
        in_service = [
            s for s in served_routes(spec, rt.providers.route_of) if not s.retired_on(day)
        ]
        if not in_service:
            gone.append(f"{model_id} (retired)")
            continue
        marked = [marks[s.key] for s in in_service if s.key in marks]
        if len(marked) < len(in_service):
            return
        gone.append(f"{model_id} ({marked[0].reason})")
    raise ValidationFailed(
        f"No model of this request is served by its provider now: {'; '.join(gone)}. "
        "Choose another model (GET /v1/models shows which are available), or add one "
        "as a fallback.",
        code="model_unavailable",
        param="model",
        model=chain[0],
    )
