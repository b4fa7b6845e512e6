"""Every registered provider brings every part (docs/adding-a-provider.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reelgate.catalog import load_catalog
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig
from reelgate.providers.base import FindsLostCreates, Provider, ReceivesWebhooks
from reelgate.providers.plugin import ProviderPlugin, ProviderSettings, discover

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = discover()
SECRET = "sk-plugin-test-secret-4711"


def test_the_known_providers_are_found_by_themselves() -> None:
    assert {"local", "veo", "sora", "wan", "grok", "video_gateway"} <= set(PLUGINS)


def test_every_catalog_model_has_a_provider_plugin() -> None:
    kinds = {spec.provider for spec in load_catalog()}
    kinds |= {r.provider for spec in load_catalog() for r in spec.routes.values() if r.provider}
    assert kinds <= set(PLUGINS), kinds - set(PLUGINS)


@pytest.mark.parametrize("kind", sorted(PLUGINS))
def test_a_provider_brings_every_part(kind: str, tmp_path: Path) -> None:
    plugin: ProviderPlugin[Any] = PLUGINS[kind]
    assert plugin.kind == kind
    assert issubclass(plugin.settings, ProviderSettings)
    assert plugin.setup_hint
    # a model of its own, or a route of another's it serves (fal serving Wan, say)
    assert any(
        spec.provider == kind or any(r.provider == kind for r in spec.routes.values())
        for spec in load_catalog()
    ), "no catalog entry"
    assert (ROOT / "docs" / "providers" / f"{kind}.md").is_file(), "no docs page"
    for name in (plugin.key_setting, plugin.base_url_setting):
        assert name is None or name in plugin.settings.model_fields
    if plugin.base_url_setting:
        default = plugin.settings.model_fields[plugin.base_url_setting].default
        # a default built from other settings (Vertex: from the location) is a template
        assert default == plugin.default_base_url or (
            default == "" and "{" in plugin.default_base_url
        )
    # Unconfigured, it builds nothing (except what needs no account).
    bare = plugin.from_settings(Settings(data_dir=tmp_path))
    assert (bare is None) == (plugin.key_setting is not None)


@pytest.mark.parametrize("kind", sorted(k for k, p in PLUGINS.items() if p.key_setting))
async def test_a_cloud_provider_has_an_emulator_it_can_be_aimed_at(
    kind: str, tmp_path: Path
) -> None:
    plugin = PLUGINS[kind]
    assert plugin.emulator is not None, "no emulator"
    app = plugin.emulator_app(EmulatorConfig(video_dir=tmp_path / "videos"))
    assert callable(app)
    aimed = Settings(data_dir=tmp_path, **plugin.emulated_settings("http://127.0.0.1:9", SECRET))
    provider = plugin.from_settings(aimed)
    assert isinstance(provider, Provider)
    try:
        # the description's capabilities are the adapter's
        caps = plugin.capabilities
        assert provider.supports_cancel == caps.cancel
        assert provider.idempotent_create == caps.idempotent_create
        assert isinstance(provider, FindsLostCreates) == caps.finds_lost_creates
        assert isinstance(provider, ReceivesWebhooks) == caps.inbound_webhooks
        assert SECRET not in repr(provider)  # the credential never shows
    finally:
        await provider.aclose()


def test_the_config_file_reaches_a_providers_own_settings(tmp_path: Path) -> None:
    config = tmp_path / "reelgate.toml"
    config.write_text(
        '[providers.grok]\napi_key = "xai-from-file"\nbase_url = "https://x.test/v1"\n'
    )
    from reelgate.config import with_config_file

    settings = with_config_file(Settings(data_dir=tmp_path, config_file=config))
    grok = settings.provider_settings("grok")
    assert grok.xai_api_key.get_secret_value() == "xai-from-file"  # type: ignore[attr-defined]
    assert grok.xai_base_url == "https://x.test/v1"  # type: ignore[attr-defined]
    config.write_text('[providers.nope]\napi_key = "x"\n')
    with pytest.raises(ValueError, match="unknown provider 'nope'"):
        with_config_file(Settings(data_dir=tmp_path, config_file=config))


def test_a_misspelt_provider_setting_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opnai_api_key"):
        Settings(data_dir=tmp_path, opnai_api_key="x")
