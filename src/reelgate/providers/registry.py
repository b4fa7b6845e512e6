"""Which provider deployments exist in this process, built from settings.

This is the only place that knows provider kinds by name. A catalog model
whose provider kind has no deployment here is listed as unavailable, with the
reason saying what to configure.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from reelgate.config import Settings
from reelgate.providers.base import Provider
from reelgate.providers.http import DownloadRules, configure_downloads
from reelgate.providers.local import LocalProvider

__all__ = ["ProviderRegistry", "build_registry"]

# What an operator sets to enable each cloud provider kind.
_SETUP_HINTS: Mapping[str, str] = {
    "veo": "set REELGATE_GEMINI_API_KEY (or the REELGATE_VERTEX_* settings)",
    "sora": "set REELGATE_OPENAI_API_KEY",
    "wan": "set REELGATE_DASHSCOPE_API_KEY",
    "grok": "set REELGATE_XAI_API_KEY",
    "video_gateway": "set REELGATE_VIDEO_GATEWAY_API_KEY and REELGATE_VIDEO_GATEWAY_BASE_URL",
}


@dataclass
class ProviderRegistry:
    providers: dict[str, Provider] = field(default_factory=dict)
    emulated: set[str] = field(default_factory=set)
    """Provider kinds aimed at a local emulator (``serve --emulators``), shown in /v1/models."""

    def get(self, kind: str) -> Provider | None:
        return self.providers.get(kind)

    def unavailable_reason(self, kind: str) -> str | None:
        if kind in self.providers:
            return None
        hint = _SETUP_HINTS.get(kind, f"configure a deployment for provider {kind!r}")
        return f"provider {kind!r} is not configured: {hint}"

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


# Each cloud adapter module offers from_settings(settings) -> provider | None
# (None: not configured). Imported lazily so a broken optional dependency of one
# provider cannot stop the gateway from starting.
_CLOUD = {
    "veo": "reelgate.providers.veo",
    "sora": "reelgate.providers.sora",
    "wan": "reelgate.providers.wan",
    "grok": "reelgate.providers.grok",
    "video_gateway": "reelgate.providers.video_gateway",
}


def build_registry(
    settings: Settings, *, emulated: frozenset[str] = frozenset()
) -> ProviderRegistry:
    configure_downloads(
        DownloadRules(
            policy=settings.net_policy(),
            max_bytes=settings.mirror_max_bytes,
            timeout_seconds=settings.mirror_timeout_seconds,
        )
    )
    registry = ProviderRegistry(emulated=set(emulated))
    registry.providers["local"] = LocalProvider(settings.resolved_local_work_dir())
    for kind, module_name in _CLOUD.items():
        module = importlib.import_module(module_name)
        provider = module.from_settings(settings)
        if provider is not None:
            registry.providers[kind] = provider
    return registry
