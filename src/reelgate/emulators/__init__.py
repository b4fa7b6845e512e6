"""Faithful stand-ins for the upstream providers, on loopback.

Each module here speaks one provider's real wire format (paths, fields,
status words, failure signals) and exposes ``create_app(config) -> ASGI app``;
a provider's plug-in (``providers.plugin``) names its emulator module.
They keep jobs in memory, advance them over time, and serve real MP4s.
Used by the tests, by ``reelgate emulate <provider>`` and by
``reelgate serve --emulators``.
"""

from __future__ import annotations

from typing import Any

from reelgate.emulators.base import EmulatorConfig

__all__ = ["EmulatorConfig", "emulated_kinds", "emulator_app"]


def emulated_kinds() -> list[str]:
    """The provider kinds whose plug-in brings an emulator."""
    from reelgate.providers.plugin import discover

    return [kind for kind, plugin in discover().items() if plugin.emulator is not None]


def emulator_app(kind: str, config: EmulatorConfig) -> Any:
    from reelgate.providers.plugin import discover

    return discover()[kind].emulator_app(config)
