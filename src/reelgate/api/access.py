"""May this key use these models here: the account's availability rules, and whether
each model's provider is configured. Shared by every route that creates jobs."""

from __future__ import annotations

from reelgate.catalog.availability import access_denied
from reelgate.errors import Forbidden, ValidationFailed
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo

__all__ = ["check_available"]


async def check_available(rt: Runtime, key: KeyInfo, chain: list[str]) -> None:
    async with rt.store.reading() as tx:
        flags = await tx.get_flags(key.account_id)
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
        reason = rt.providers.unavailable_reason(spec.provider)
        if reason:
            raise ValidationFailed(
                f"Model {model_id!r} is unavailable on this gateway: {reason}.",
                code="model_unavailable",
                param="model" if model_id == chain[0] else "fallback",
                model=model_id,
            )
