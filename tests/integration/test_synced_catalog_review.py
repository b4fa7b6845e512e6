"""What an outside review of the synced catalog (issue 16) found, each caused here:
prices that move with audio and a model's own inputs, a schema that changes under a
queued job, a schema that cannot be read at a sync, two syncs at once, and synced
models in storyboards. Both databases; the emulators serve the recorded schemas."""

from __future__ import annotations

import asyncio
import base64
import copy
from pathlib import Path

from reelgate.catalog.synced.prices import PRICES
from reelgate.catalog.synced.store import load_into
from reelgate.catalog.synced.sync import SyncSource, run_sync
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorServer
from reelgate.emulators.fal import emulator_of as fal_of
from reelgate.emulators.wiring import emulated_settings
from reelgate.engine.worker import Worker
from tests.conftest import wait_for_status
from tests.integration.conftest import api_client, emulated_runtime
from tests.integration.test_synced_catalog import (
    ENUM_MODEL,
    FAL_T2V,
    _available,
    _sent,
    synced,
)
from tests.integration.test_synced_catalog import upstreams as _upstreams

upstreams = _upstreams  # the fixture: fal and Replicate emulators of this test's own

VEO = "fal:fal-ai/veo3.1"
BACKUP = "replicate:wan-video/wan-2.6-t2v"
PIXVERSE = "replicate:pixverse/pixverse-v5.6"


# ── prices that move with audio and the model's own inputs ──────────────────────────


async def test_audio_and_mode_are_billed_at_the_price_known_for_them(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        # Kling 3 on Replicate: pro without audio is the base; standard with audio $0.252/s
        start = await _available(g)
        job = await g.run(
            {
                "model": ENUM_MODEL,
                "prompt": "kling standard with audio, billed",
                "duration_seconds": 5,
                "audio": True,
                "provider_params": {"mode": "standard"},
            }
        )
        assert job["status"] == "completed", job
        per_second = PRICES[ENUM_MODEL].for_request("720p", True, {"mode": "standard"})
        assert per_second == 25_200
        assert job["cost"]["millicredits"] == per_second * 5
        assert start - await _available(g) == per_second * 5
        # Veo 3.1 on fal with audio off: $0.20/s, not the $0.40/s of its default
        job = await g.run(
            {"model": VEO, "prompt": "veo without audio", "duration_seconds": 8, "audio": False}
        )
        assert job["status"] == "completed", job
        assert _sent(g, "fal", "veo without audio")["generate_audio"] is False
        assert job["cost"]["millicredits"] == 20_000 * 8
        # PixVerse 5.6 is priced without audio only: audio on is refused, not guessed
        answer = await g.client.post(
            "/v1/videos", json={"model": PIXVERSE, "prompt": "pixverse", "audio": True}
        )
        assert answer.status_code == 403, answer.text
        err = answer.json()["error"]
        assert (err["code"], err["param"]) == ("model_unpriced", "audio")
        assert err["allowed"] == [{"audio": False}]


# ── a schema that changes under a queued job ────────────────────────────────────────


async def test_a_job_queued_before_its_model_dropped_what_it_asks_falls_back_without_a_mark(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with emulated_runtime(settings, upstreams, local_work_dir=tmp_path / "r") as rt:
        rt.catalog.synced_settings.typical_seconds = 0.5
        rt.catalog.synced_settings.poll_interval_seconds = 0.2
        fal_cfg = emulated_settings(settings, upstreams).provider_settings("fal")
        source = SyncSource(
            fal_platform_url=fal_cfg.fal_platform_url,  # type: ignore[attr-defined]
            fal_api_key=None,
            replicate_base_url=upstreams["replicate"].url + "/v1",
            replicate_token="emulator-replicate",
        )
        await run_sync(rt.db, source)
        await load_into(rt.catalog, rt.db)
        async with api_client(rt) as client:
            # queued with no worker running: 15 s on wan 2.6 at fal, falling back to
            # wan 2.6 at Replicate, which offers 15 s too
            made = await client.post(
                "/v1/videos",
                json={
                    "model": FAL_T2V,
                    "prompt": "queued before the change",
                    "duration_seconds": 15,
                    "resolution": "720p",
                    "fallback": [BACKUP],
                },
            )
            assert made.status_code == 202, made.text
            # fal drops the 15 s length from wan 2.6, and a sync sees it
            fal = fal_of(upstreams["fal"])
            endpoint = FAL_T2V.removeprefix("fal:")
            record = copy.deepcopy(fal.catalog[endpoint])
            schemas = record["openapi"]["components"]["schemas"]
            for schema in schemas.values():
                duration = schema.get("properties", {}).get("duration")
                if duration and "enum" in duration:
                    duration["enum"] = [v for v in duration["enum"] if v != "15"]
            fal.set_record(endpoint, record)
            report = await run_sync(rt.db, source)
            assert report.changed == [FAL_T2V]
            await load_into(rt.catalog, rt.db)
            worker = Worker.from_runtime(rt, concurrency=2, lease_seconds=10, idle_poll_seconds=0.1)
            working = asyncio.create_task(worker.run())
            try:
                seen = await wait_for_status(
                    client, made.json()["id"], {"completed", "failed", "canceled"}, 30
                )
            finally:
                worker.stop()
                await asyncio.wait_for(working, 30)
            job = seen[-1]
            outcomes = [(a["model"], a["outcome"]) for a in job["attempts"]]
            assert outcomes == [(FAL_T2V, "gone"), (BACKUP, "completed")], outcomes
            assert job["attempts"][0]["error"]["code"] == "model_changed"
            assert "duration_seconds=15 is not offered" in job["attempts"][0]["error"]["message"]
            # nothing was sent for it, and the model is not marked unavailable
            assert not any(
                r["input"].get("prompt") == "queued before the change" and r["app_id"] == endpoint
                for r in fal.received
            )
            listed = (await client.get(f"/v1/models/{FAL_T2V}")).json()
            assert listed["available"] and listed["unavailable_since"] is None


# ── a schema that cannot be read at a sync ──────────────────────────────────────────


async def test_a_model_listed_with_an_unreadable_schema_is_flagged_not_retired(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        endpoint = FAL_T2V.removeprefix("fal:")
        record = copy.deepcopy(g.fal.catalog[endpoint])
        record["openapi"]["paths"] = {}
        g.fal.set_record(endpoint, record)
        report = await g.sync()
        assert report.gone == []
        assert any(s.startswith(FAL_T2V) for s in report.skipped)
        assert "schema unreadable" in report.flagged[FAL_T2V][0]
        listed = (await g.client.get(f"/v1/models/{FAL_T2V}")).json()
        assert listed["synced"]["status"] == "active" and listed["usable"]


# ── two syncs at once ───────────────────────────────────────────────────────────────


async def test_two_syncs_at_once_on_an_empty_table_both_succeed(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        one, two = await asyncio.gather(run_sync(g.rt.db, g.source), run_sync(g.rt.db, g.source))
        assert not one.errors and not two.errors
        assert one.counts == two.counts and one.counts["active"] == 73
        third = await g.sync()
        assert third.new == [] and third.unchanged == 73


# ── synced models in storyboards ────────────────────────────────────────────────────


async def test_a_storyboard_shot_on_a_synced_model_is_checked_with_its_prompt(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        shot = {"model": FAL_T2V, "prompt": "a shot on wan", "duration_seconds": 5}
        answer = await g.client.post("/v1/storyboards", json={"shots": [shot, shot]})
        assert answer.status_code == 202, answer.text


# ── what /v1/models says about prices and pages ─────────────────────────────────────


async def test_models_show_each_priced_combination_and_a_stale_cursor_is_refused(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        kling = (await g.client.get(f"/v1/models/{ENUM_MODEL}")).json()
        combos = kling["synced"]["price_by_inputs"]
        assert combos[0] == {
            "when": {"mode": "pro", "audio": False},
            "millicredits_per_second": kling["price"]["millicredits_per_second"],
            "by_resolution": {},
        }
        priced = {tuple(sorted(c["when"].items())): c["millicredits_per_second"] for c in combos}
        assert priced[(("audio", True), ("mode", "standard"))] == 25_200
        plain = (await g.client.get(f"/v1/models/{FAL_T2V}")).json()
        assert plain["synced"]["price_by_inputs"] == []
        # a cursor ending at a hand-written model no longer in the catalog
        gone = base64.urlsafe_b64encode(b"a-model-removed-by-a-reload").decode().rstrip("=")
        answer = await g.client.get("/v1/models", params={"after": gone})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "cursor_expired"


# ── the command line ────────────────────────────────────────────────────────────────


def test_reelgate_catalog_sync_narrows_to_a_provider_and_category_and_prints_what_moved(
    upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from reelgate.emulators.recorded import fal_records

    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        REELGATE_DATA_DIR=str(tmp_path / "data"),
        REELGATE_FAL_PLATFORM_URL=upstreams["fal"].url,
        REELGATE_REPLICATE_BASE_URL=upstreams["replicate"].url + "/v1",
        REELGATE_REPLICATE_API_TOKEN="emulator-replicate",
    )

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "reelgate.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cli("db", "upgrade")
    t2v = [e for e, r in fal_records().items() if r["category"] == "text-to-video"]
    first = cli("catalog", "sync", "--provider", "fal", "--category", "text-to-video")
    assert f"new: {len(t2v)}, changed: 0, gone: 0" in " ".join(first.split())
    assert f"+ fal:{t2v[0]}" in first
    again = cli("catalog", "sync", "-p", "fal", "-c", "text-to-video")
    assert f"unchanged: {len(t2v)}" in " ".join(again.split())
    listed = cli("catalog", "synced", "--json")
    assert f"fal:{t2v[0]}" in listed and "replicate:" not in listed  # Replicate not synced
