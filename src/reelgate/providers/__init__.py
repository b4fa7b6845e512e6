"""Upstream adapters: one module per provider, one Protocol (``base.Provider``)."""

from reelgate.providers.base import (
    GenerationRequest,
    ImageInput,
    Provider,
    ResultLocation,
    Submitted,
    UpstreamState,
    UpstreamStatus,
)

__all__ = [
    "GenerationRequest",
    "ImageInput",
    "Provider",
    "ResultLocation",
    "Submitted",
    "UpstreamState",
    "UpstreamStatus",
]
