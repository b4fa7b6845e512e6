"""Per-deployment configuration: keys and base URLs from the config file (never shown),
per-provider timeouts, and a cap on jobs submitted upstream at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import sqlalchemy as sa

from reelgate.config import Settings, with_config_file
from reelgate.emulators.base import EmulatorConfig, run_emulator
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.schema import jobs
from tests.conftest import wait_for_status
from tests.scripted import ScriptedProvider


async def test_provider_keys_from_the_config_file_enable_it_and_stay_secret(
    settings: Settings, tmp_path: Path
) -> None:
    with run_emulator(
        "grok", EmulatorConfig(api_key="xai-secret-123", video_dir=tmp_path / "v")
    ) as server:
        cfg = tmp_path / "reelgate.toml"
        cfg.write_text(
            '[providers.grok]\napi_key = "xai-secret-123"\n'
            f'base_url = "{server.url}/v1"\ntimeout_seconds = 12\nmax_concurrent_jobs = 3\n'
        )
        rt = await build_runtime(
            settings.model_copy(update={"config_file": cfg}), public_url="http://testserver"
        )
        try:
            assert "grok" in rt.providers.providers
            from reelgate.accounts.dev import ensure_dev_account
            from reelgate.api.app import create_app

            key = await ensure_dev_account(rt)
            transport = httpx.ASGITransport(app=create_app(rt))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t", headers={"Authorization": f"Bearer {key}"}
            ) as c:
                body = (await c.get("/v1/models")).text
            assert "xai-secret-123" not in body
            assert '"id":"grok-video"' in body.replace(" ", "")
        finally:
            await rt.aclose()
    applied = with_config_file(settings.model_copy(update={"config_file": cfg}))
    assert applied.timeout_for("grok") == 12.0
    assert applied.provider_max_concurrent == {"grok": 3}
    assert applied.xai_api_key is not None and "xai-secret-123" not in repr(applied)


async def test_environment_keys_win_over_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "reelgate.toml"
    cfg.write_text('[providers.wan]\napi_key = "from-file"\n')
    settings = Settings(data_dir=tmp_path, config_file=cfg, dashscope_api_key="from-env")  # type: ignore[arg-type]
    applied = with_config_file(settings)
    assert applied.dashscope_api_key is not None
    assert applied.dashscope_api_key.get_secret_value() == "from-env"


async def test_a_capped_deployment_runs_at_most_n_jobs_upstream_at_once(
    client: httpx.AsyncClient, rt: Runtime, scripted: ScriptedProvider
) -> None:
    rt.settings = rt.settings.model_copy(update={"provider_max_concurrent": {"scripted": 1}})
    ids = []
    for i in range(3):
        r = await client.post(
            "/v1/videos",
            json={
                "model": "s-primary",
                "prompt": f"slowpoll {i}",
                "duration_seconds": 1,
                "resolution": "360p",
            },
        )
        ids.append(r.json()["id"])
    wk = Worker.from_runtime(rt, concurrency=4)
    task = asyncio.create_task(wk.run())
    peak = 0
    try:
        for _ in range(400):
            async with rt.db.connect() as conn:
                occupying = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(jobs)
                        .where(jobs.c.active_provider == "scripted")
                    )
                ).scalar_one()
                done = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(jobs)
                        .where(jobs.c.state == "completed")
                    )
                ).scalar_one()
            peak = max(peak, int(occupying))
            if done == 3:
                break
            await asyncio.sleep(0.02)
        for job_id in ids:
            final = (await wait_for_status(client, job_id, {"completed", "failed"}))[-1]
            assert final["status"] == "completed"
    finally:
        wk.stop()
        await task
    assert peak == 1
