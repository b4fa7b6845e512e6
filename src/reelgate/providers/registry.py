"""Which provider deployments exist in this process, built from settings.

Every provider module describes itself (``providers.plugin``); this builds a
deployment for each one its settings configure. A catalog model whose provider
kind has no deployment here is listed as unavailable, with its plug-in's hint
saying what to configure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reelgate.config import Settings
from reelgate.providers.base import Provider
from reelgate.providers.plugin import discover

__all__ = ["ProviderRegistry", "build_registry"]


@dataclass
class ProviderRegistry:
    providers: dict[str, Provider] = field(default_factory=dict)
    emulated: set[str] = field(default_factory=set)
    """Provider kinds aimed at a local emulator (``serve --emulators``), shown in /v1/models."""

    def get(self, kind: str) -> Provider | None:
        return self.providers.get(kind)

    def route_of(self, kind: str) -> str | None:
        """The route the configured deployment of ``kind`` is (None: none configured)."""
        provider = self.providers.get(kind)
        return provider.route if provider is not None else None

    def unavailable_reason(self, kind: str) -> str | None:
        if kind in self.providers:
            return None
        plugin = discover().get(kind)
        hint = plugin.setup_hint if plugin else f"no provider module declares kind {kind!r}"
        return f"provider {kind!r} is not configured: {hint}"

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


def build_registry(
    settings: Settings, *, emulated: frozenset[str] = frozenset()
) -> ProviderRegistry:
    registry = ProviderRegistry(emulated=set(emulated))
    for kind, plugin in discover().items():
        provider = plugin.from_settings(settings)
        if provider is not None:
            registry.providers[kind] = provider
    return registry
