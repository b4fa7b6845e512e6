"""``reelgate providers check``: every configured deployment against its emulator,
including the answers a retired model gets, as an operator would run it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reelgate.cli.main import app
from reelgate.emulators.base import EmulatorServer
from reelgate.emulators.wiring import running_emulators, settings_for


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EmulatorServer]]:
    videos = tmp_path_factory.mktemp("check-videos")
    with running_emulators(videos, job_seconds=0.3) as running:
        yield running


def _env(servers: dict[str, EmulatorServer], tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "REELGATE_DATA_DIR": str(tmp_path / "data"),
        "REELGATE_FETCH_ALLOW_PRIVATE": json.dumps(["127.0.0.1/32"]),
        "REELGATE_FETCH_ALLOW_PORTS": json.dumps([s.port for s in servers.values()]),
    }
    for kind, server in servers.items():
        values: dict[str, Any] = settings_for(kind, server.url, f"emulator-{kind}")
        env |= {f"REELGATE_{name.upper()}": str(value) for name, value in values.items()}
    return env | extra


def _rows(result: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_every_deployment_takes_its_credential_and_lists_its_models(
    servers: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["providers", "check", "--json"], env=_env(servers, tmp_path))
    rows = _rows(result)
    credentials = {r["provider"]: r for r in rows if r["subject"] == "credential"}
    assert {k for k, r in credentials.items() if r["ok"]} >= {"veo", "sora", "wan", "grok"}
    by_model = {r["subject"]: r for r in rows if r["subject"] != "credential"}
    assert by_model["veo-3-1"]["route"] == "vertex" and by_model["veo-3-1"]["ok"]
    assert "veo-3.1-generate-001" in by_model["veo-3-1"]["detail"]
    assert by_model["sora-2"]["route"] == "compatible" and by_model["sora-2"]["ok"]
    assert result.exit_code == 0, result.stdout


def test_a_wrong_key_fails_with_the_reason_and_exit_1(
    servers: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    env = _env(servers, tmp_path, REELGATE_XAI_API_KEY="xai-wrong-key-0123456789")
    result = CliRunner().invoke(app, ["providers", "check", "--json", "-p", "grok"], env=env)
    [row] = _rows(result)
    assert (row["subject"], row["ok"]) == ("credential", False)
    assert "upstream_auth" in row["detail"] and "xai-wrong-key" not in result.stdout
    assert result.exit_code == 1


def test_generate_makes_a_video_per_model_and_names_a_retired_one(
    servers: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    # the Gemini API route: its Veo ids are retired by date; an operator who believes
    # the key still works says so in the config file, and the check tells the truth
    config = tmp_path / "reelgate.toml"
    config.write_text('[models."veo-3-1-fast".routes.gemini]\nlifecycle = "ga"\nretires_at = ""\n')
    env = _env(
        servers,
        tmp_path,
        REELGATE_CONFIG_FILE=str(config),
        REELGATE_VERTEX_ACCESS_TOKEN="",
        REELGATE_GEMINI_API_KEY="emulator-veo",
        REELGATE_GEMINI_BASE_URL=f"{servers['veo'].url}/v1beta",
    )
    result = CliRunner().invoke(
        app,
        [
            *("providers", "check", "--json", "--generate", "-p", "veo", "-p", "wan"),
            *("-m", "veo-3-1", "-m", "veo-3-1-fast", "-m", "wan-2-1"),
        ],
        env=env,
    )
    rows = {r["subject"]: r for r in _rows(result)}
    assert rows["veo-3-1-fast"]["route"] == "gemini" and not rows["veo-3-1-fast"]["ok"]
    assert "gone" in rows["veo-3-1-fast"]["detail"]
    assert "is no longer available" in rows["veo-3-1-fast"]["detail"]
    assert not rows["veo-3-1"]["ok"] and "retired on this route" in rows["veo-3-1"]["detail"]
    assert rows["wan-2-1"]["ok"] and "made and downloaded" in rows["wan-2-1"]["detail"]
    assert rows["wan-2-1"]["seconds"] > 0
    assert "wan-2-5" not in rows  # -m keeps to the models named
    assert result.exit_code == 1


def test_marks_are_listed_and_lifted_by_model(sqlite_url: str, tmp_path: Path) -> None:
    import asyncio

    from reelgate.catalog.lifecycle import Unavailable
    from reelgate.store.db import create_engine
    from reelgate.store.jobs import now_ms
    from reelgate.store.sql import SqlStore

    async def mark() -> None:
        db = create_engine(sqlite_url)
        now = now_ms()
        store = SqlStore(db)
        for deployment, model in (
            ("veo:gemini:veo-3.1-generate-preview", "veo-3-1"),
            ("wan:intl:wan2.5-i2v-preview", "wan-2-5"),
        ):
            await store.mark_unavailable(
                Unavailable(deployment, model, "HTTP 404 model_gone", now, now + 60_000)
            )
        await db.dispose()

    asyncio.run(mark())
    env = {"REELGATE_DATABASE_URL": sqlite_url, "REELGATE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["providers", "marks", "--json"], env=env).stdout)
    assert {m["model"] for m in listed} == {"veo-3-1", "wan-2-5"}
    lifted = runner.invoke(app, ["providers", "unmark", "veo-3-1"], env=env)
    assert "lifted 1 mark(s): veo:gemini:veo-3.1-generate-preview" in lifted.stdout
    left = json.loads(runner.invoke(app, ["providers", "marks", "--json"], env=env).stdout)
    assert [m["model"] for m in left] == ["wan-2-5"]
