"""Point the gateway's cloud providers at running emulators (``serve --emulators``).

For each provider kind: the settings that make ``providers.registry`` build a
deployment aimed at the emulator's base URL, with the emulator's key.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reelgate.config import Settings
from reelgate.emulators import emulated_kinds
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.engine.callbacks import HOOK_PATH
from reelgate.providers.plugin import discover

__all__ = ["emulated_settings", "running_emulators", "settings_for"]


def settings_for(kind: str, url: str, key: str) -> dict[str, Any]:
    """The settings that aim provider ``kind`` at its emulator at ``url``."""
    return discover()[kind].emulated_settings(url, key)


@contextlib.contextmanager
def running_emulators(
    video_dir: Path, *, job_seconds: float = 8.0, slow_create_seconds: float = 5.0
) -> Iterator[dict[str, EmulatorServer]]:
    """Start every emulator on its own loopback port for the block's duration."""
    with contextlib.ExitStack() as stack:
        servers = {
            kind: stack.enter_context(
                run_emulator(
                    kind,
                    EmulatorConfig(
                        api_key=f"emulator-{kind}",
                        job_seconds=job_seconds,
                        video_dir=video_dir,
                        slow_create_seconds=slow_create_seconds,
                    ),
                )
            )
            for kind in emulated_kinds()
        }
        yield servers


def emulated_settings(settings: Settings, servers: dict[str, EmulatorServer]) -> Settings:
    update: dict[str, Any] = {
        # results are fetched from the emulators, on loopback: allow exactly those
        "fetch_allow_private": [*settings.fetch_allow_private, "127.0.0.1/32"],
        "fetch_allow_ports": [*settings.fetch_allow_ports, *(s.port for s in servers.values())],
    }
    plugins = discover()
    for kind, server in servers.items():
        update |= settings_for(kind, server.url, f"emulator-{kind}")
        setting = plugins[kind].emulator_webhook_setting
        if setting is None:
            continue
        # a provider whose calls go to one registered endpoint: register this gateway's
        # (when it has a public address), as an operator would in the provider's console
        url = (
            f"{settings.public_url.rstrip('/')}{HOOK_PATH}/{kind}"
            if settings.public_url and settings.inbound_webhooks
            else None
        )
        emulator = importlib.import_module(plugins[kind].emulator or "")
        secret = emulator.point_webhooks(server, url)
        if url is not None:
            update[setting] = secret
    return settings.updated(**update)
