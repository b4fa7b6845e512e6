"""Faithful stand-ins for the upstream providers, on loopback.

Each module here speaks one provider's real wire format (paths, fields,
status words, failure signals) and exposes ``create_app(config) -> ASGI app``.
They keep jobs in memory, advance them over time, and serve real MP4s.
Used by the tests, by ``reelgate emulate <provider>`` and by
``reelgate serve --emulators``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from reelgate.emulators.base import EmulatorConfig

__all__ = ["EMULATORS", "EmulatorConfig", "emulator_app"]

# provider kind -> module; each module defines create_app(EmulatorConfig)
EMULATORS: dict[str, str] = {
    "veo": "reelgate.emulators.veo",
    "sora": "reelgate.emulators.sora",
    "wan": "reelgate.emulators.wan",
    "grok": "reelgate.emulators.grok",
    "video_gateway": "reelgate.emulators.video_gateway",
}


def emulator_app(kind: str, config: EmulatorConfig) -> Any:
    module = importlib.import_module(EMULATORS[kind])
    factory: Callable[[EmulatorConfig], Any] = module.create_app
    return factory(config)
