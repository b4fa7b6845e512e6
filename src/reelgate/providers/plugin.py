"""What a provider module exports: one description, ``PLUGIN``, of everything it brings.

The registry, the settings, the config file and the emulator wiring read these
descriptions and hold no provider-specific table. A provider module in this
package that defines ``PLUGIN`` is found by itself (``discover``); adding a
provider touches its adapter, its emulator, its catalog entries and its docs
page (docs/adding-a-provider.md), and tests/unit/test_plugins.py fails if a
registered provider lacks a part.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic_settings import BaseSettings, SettingsConfigDict

from reelgate.providers.base import Provider
from reelgate.providers.http import DownloadRules

if TYPE_CHECKING:
    from reelgate.config import Settings

__all__ = [
    "BuildContext",
    "Capabilities",
    "ProviderPlugin",
    "ProviderSettings",
    "discover",
]


class ProviderSettings(BaseSettings):
    """A provider's own settings. Field names are setting names: ``gemini_api_key`` is
    ``REELGATE_GEMINI_API_KEY`` in the environment, and ``Settings(gemini_api_key=...)``
    in code. Read at the edge, with the rest of ``config.Settings``."""

    model_config = SettingsConfigDict(env_prefix="REELGATE_", extra="forbid")


S = TypeVar("S", bound=ProviderSettings)


@dataclass(frozen=True)
class Capabilities:
    cancel: bool
    """Jobs can be canceled upstream."""
    idempotent_create: bool
    """Re-sending a create with the same key cannot start a second job."""
    finds_lost_creates: bool = False
    """Its API lists recent jobs, so a create whose answer was lost can be looked for."""
    inbound_webhooks: bool = False
    """It can call reelgate back when a job finishes (instead of being polled)."""
    regions: tuple[str, ...] = ()
    """Named regions or endpoints an operator may choose between (empty: one)."""


@dataclass(frozen=True)
class BuildContext:
    """What every deployment gets besides its own settings."""

    timeout_seconds: float
    downloads: DownloadRules
    data_dir: Path


@dataclass(frozen=True)
class ProviderPlugin(Generic[S]):
    kind: str
    """The catalog's ``provider`` value for this provider's models."""
    settings: type[S]
    build: Callable[[S, BuildContext], Provider | None]
    """A deployment from the settings, or None when they do not configure one."""
    setup_hint: str
    """What an operator sets to enable it (shown when its models are unavailable)."""
    capabilities: Capabilities
    default_base_url: str = ""
    key_setting: str | None = None
    """The settings field holding its credential (``[providers.<kind>] api_key``)."""
    base_url_setting: str | None = None
    """The settings field holding its base URL (``[providers.<kind>] base_url``)."""
    emulator: str | None = None
    """The module of its emulator (``create_app(EmulatorConfig)``), if it has one."""
    emulator_base_path: str = ""
    """The API prefix under the emulator's root (``/v1beta`` for Gemini, say)."""
    emulator_extra: Mapping[str, Any] = field(default_factory=dict)
    """More settings that aim a deployment at the emulator."""
    emulator_url_settings: Mapping[str, str] = field(default_factory=dict)
    """Settings that hold another URL of the provider, as paths under the emulator's
    root (fal's webhook keys: ``{"fal_jwks_url": "/.well-known/jwks.json"}``)."""
    emulator_webhook_setting: str | None = None
    """For a provider that calls one registered endpoint (not per job): the setting that
    holds that endpoint's signing secret. Its emulator module has
    ``point_webhooks(server, url) -> secret`` to register the gateway's endpoint."""

    def emulated_settings(self, url: str, key: str) -> dict[str, Any]:
        """The settings that aim this provider at its emulator at ``url``."""
        values: dict[str, Any] = dict(self.emulator_extra)
        if self.key_setting:
            values[self.key_setting] = key
        if self.base_url_setting:
            values[self.base_url_setting] = url + self.emulator_base_path
        for setting, path in self.emulator_url_settings.items():
            values[setting] = url + path
        return values

    def from_settings(self, settings: Settings) -> Provider | None:
        """This provider's deployment as ``settings`` configure it (None: they do not)."""
        context = BuildContext(
            timeout_seconds=settings.timeout_for(self.kind),
            downloads=DownloadRules(
                policy=settings.net_policy(),
                max_bytes=settings.mirror_max_bytes,
                timeout_seconds=settings.mirror_timeout_seconds,
            ),
            data_dir=settings.data_dir,
        )
        own = settings.provider_settings(self.kind)
        assert isinstance(own, self.settings)
        return self.build(own, context)

    def emulator_app(self, config: Any) -> Any:
        if self.emulator is None:
            raise LookupError(f"provider {self.kind!r} has no emulator")
        factory: Callable[[Any], Any] = importlib.import_module(self.emulator).create_app
        return factory(config)


@functools.cache
def discover() -> dict[str, ProviderPlugin[Any]]:
    """Every provider module of this package that exports ``PLUGIN``, by kind."""
    import reelgate.providers as package

    found: dict[str, ProviderPlugin[Any]] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        plugin = getattr(module, "PLUGIN", None)
        if isinstance(plugin, ProviderPlugin):
            if plugin.kind in found:
                raise ValueError(f"two provider modules declare kind {plugin.kind!r}")
            found[plugin.kind] = plugin
    return found
