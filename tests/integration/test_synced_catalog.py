"""The synced catalog end to end (issue 16): ``reelgate catalog sync`` against the fal
and Replicate emulators serving schemas recorded from public sources
(``emulators/recorded``, each file with its SOURCE), then jobs on models nobody wrote by
hand, a schema change and a removal between two syncs, and requests refused with the
schema's own allowed values.

The emulators check what they are sent against the recorded schema with ``jsonschema``
(not with the gateway's mapping), so a mapping mistake fails here as fal's or Replicate's
422 would. Both databases.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from reelgate.catalog.synced.prices import PRICES, SyncedPrice
from reelgate.catalog.synced.store import load_into
from reelgate.catalog.synced.sync import SyncReport, SyncSource, run_sync
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.fal import FalEmulator
from reelgate.emulators.fal import emulator_of as fal_of
from reelgate.emulators.recorded import fal_records, replicate_records
from reelgate.emulators.replicate import ReplicateEmulator
from reelgate.emulators.replicate import emulator_of as replicate_of
from reelgate.emulators.wiring import emulated_settings
from reelgate.engine.catalog_sync import CatalogSyncer
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime
from reelgate.store.jobs import now_ms
from tests.conftest import wait_for_status
from tests.integration.conftest import api_client, emulated_runtime

FAL_T2V = "fal:wan/v2.6/text-to-video"
ENUM_MODEL = "replicate:kwaivgi/kling-v3-video"
"""Its ``mode`` input (standard, pro) is no field of reelgate's: a provider_param."""


@dataclass
class Synced:
    rt: Runtime
    client: httpx.AsyncClient
    fal: FalEmulator
    replicate: ReplicateEmulator
    source: SyncSource

    async def sync(self) -> SyncReport:
        report = await run_sync(
            self.rt.db, self.source, prices=self.rt.catalog.synced_settings.prices
        )
        await load_into(self.rt.catalog, self.rt.db)
        return report

    async def run(self, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        made = await self.client.post("/v1/videos", json=body)
        assert made.status_code == 202, made.text
        seen = await wait_for_status(
            self.client, made.json()["id"], {"completed", "failed", "canceled"}, timeout
        )
        return seen[-1]


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[dict[str, EmulatorServer]]:
    """fal and Replicate of its own for each test: tests change and remove models."""
    with contextlib.ExitStack() as stack:
        yield {
            kind: stack.enter_context(
                run_emulator(
                    kind,
                    EmulatorConfig(
                        api_key=f"emulator-{kind}", job_seconds=0.4, video_dir=tmp_path / "v"
                    ),
                )
            )
            for kind in ("fal", "replicate")
        }


@contextlib.asynccontextmanager
async def synced(
    settings: Settings, servers: dict[str, EmulatorServer], tmp_path: Path
) -> AsyncIterator[Synced]:
    async with emulated_runtime(settings, servers, local_work_dir=tmp_path / "r") as rt:
        rt.catalog.synced_settings.typical_seconds = 0.5
        rt.catalog.synced_settings.poll_interval_seconds = 0.2
        configured = emulated_settings(settings, servers)
        fal_cfg = configured.provider_settings("fal")
        source = SyncSource(
            fal_platform_url=fal_cfg.fal_platform_url,  # type: ignore[attr-defined]
            fal_api_key=None,  # fal's model list needs no key
            replicate_base_url=servers["replicate"].url + "/v1",
            replicate_token="emulator-replicate",
        )
        wk = Worker.from_runtime(rt, concurrency=4, lease_seconds=10, idle_poll_seconds=0.1)
        working = asyncio.create_task(wk.run())
        try:
            async with api_client(rt) as client:
                yield Synced(
                    rt,
                    client,
                    fal_of(servers["fal"]),
                    replicate_of(servers["replicate"]),
                    source,
                )
        finally:
            wk.stop()
            await asyncio.wait_for(working, 30)


def _png(width: int = 64, height: int = 36) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _sent(g: Synced, provider: str, prompt: str) -> dict[str, Any]:
    """What the emulator received for ``prompt``: fal's input, Replicate's ``input``."""
    if provider == "fal":
        found = next(r for r in reversed(g.fal.received) if r["input"].get("prompt") == prompt)
        return dict(found["input"], _app=found["app_id"])
    found = next(
        r for r in reversed(g.replicate.received) if r.get("input", {}).get("prompt") == prompt
    )
    return dict(found["input"], _path=found["_path"])


# ── the sync ────────────────────────────────────────────────────────────────────────


async def test_a_sync_stores_every_recorded_model_and_a_second_finds_nothing_new(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    fal_n, rep_n = len(fal_records()), len(replicate_records())
    assert fal_n >= 20 and rep_n >= 10, "the issue asks for 20 fal and 10 Replicate schemas"
    async with synced(settings, upstreams, tmp_path) as g:
        first = await g.sync()
        assert not first.errors and not first.skipped
        assert len(first.new) == fal_n + rep_n
        assert sum(m.startswith("fal:") for m in first.new) == fal_n
        c = first.counts
        assert c["active"] == fal_n + rep_n
        assert c["mapped"] + c["unmappable"] == c["active"]
        assert c["usable"] + c["unpriced"] == c["mapped"]
        assert c["usable"] >= 10 and c["unmappable"] >= 1
        # fal's list is paged (100 a page; the emulator's limit): the cursor was followed
        listed = [p for m, p, _ in g.fal.calls if p == "/v1/models"]
        assert len(listed) >= 2  # one per category at least
        second = await g.sync()
        assert (second.new, second.changed, second.gone) == ([], [], [])
        assert second.unchanged == fal_n + rep_n
        models = await g.client.get("/v1/models", params={"source": "synced", "limit": 500})
        assert models.status_code == 200, models.text
        assert models.json()["total"] == fal_n + rep_n


async def test_a_failed_fetch_retires_nothing(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        g.source = SyncSource(
            g.source.fal_platform_url, None, g.source.replicate_base_url, "a-wrong-token"
        )
        report = await g.sync()
        assert "replicate" in report.errors and "401" in report.errors["replicate"]
        assert report.gone == []
        assert report.counts["retired"] == 0


# ── jobs on synced models ─────────────────────────────────────────────────────────────


async def test_text_to_video_on_a_synced_fal_model(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        prompt = "a lighthouse at dusk, synced t2v"
        job = await g.run(
            {"model": FAL_T2V, "prompt": prompt, "duration_seconds": 10, "resolution": "720p"}
        )
        assert job["status"] == "completed", job
        sent = _sent(g, "fal", prompt)
        # wan/v2.6's schema: duration is the string enum "5" | "10" | "15"
        assert sent["_app"] == "wan/v2.6/text-to-video"
        assert sent["duration"] == "10" and sent["resolution"] == "720p"
        assert job["model"] == FAL_T2V
        # billed at the curated price for the seconds delivered
        assert job["seconds"] in ("10", 10)


async def _available(g: Synced) -> int:
    answer = await g.client.get("/v1/balance")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["millicredits"]["available"])


async def test_a_synced_model_is_billed_at_its_price_per_second_delivered_and_never_for_a_failure(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        # an operator prices a model the curated table has no price for
        magi = "fal:fal-ai/magi"
        g.rt.catalog.synced_settings.prices[magi] = SyncedPrice(1_234, {}, "operator: test")
        await g.sync()
        curated = PRICES[FAL_T2V]
        start = await _available(g)
        job = await g.run(
            {"model": FAL_T2V, "prompt": "billed", "duration_seconds": 10, "resolution": "720p"}
        )
        assert job["status"] == "completed", job
        expected = curated.by_resolution["720p"] * 10
        assert job["cost"]["millicredits"] == expected
        after_one = await _available(g)
        assert start - after_one == expected
        listed = (await g.client.get(f"/v1/models/{magi}")).json()
        assert listed["priced"] and listed["price"]["millicredits_per_second"] == 1_234
        job = await g.run({"model": magi, "prompt": "billed by the operator's price"})
        assert job["status"] == "completed", job
        seconds = int(job["seconds"])
        assert job["cost"]["millicredits"] == 1_234 * seconds
        after_two = await _available(g)
        assert after_one - after_two == 1_234 * seconds
        # a failure upstream: the hold is released, nothing is charged
        job = await g.run({"model": FAL_T2V, "prompt": "fails [fault:fail]", "duration_seconds": 5})
        assert job["status"] == "failed", job
        assert job["cost"] is None or job["cost"]["millicredits"] == 0
        assert await _available(g) == after_two


IMAGE_FIELDS = [
    # (model, the provider, its start-image input)
    ("fal:fal-ai/kling-video/v2.1/standard/image-to-video", "fal", "image_url"),
    ("fal:fal-ai/kling-video/o1/image-to-video", "fal", "start_image_url"),
    ("replicate:minimax/hailuo-2.3-fast", "replicate", "first_frame_image"),
    ("replicate:wan-video/wan-2.6-i2v", "replicate", "image"),
    ("replicate:kwaivgi/kling-v2.6", "replicate", "start_image"),
    ("replicate:wan-video/wan-2.7-i2v", "replicate", "first_frame"),
]


async def test_image_to_video_sends_the_image_under_each_models_own_field(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        listing = await g.client.get("/v1/models", params={"capability": "image_input"})
        by_id = {m["id"]: m for m in listing.json()["data"]}
        image = _png(48, 64)  # portrait: the output keeps the picture's shape
        jobs = []
        for model, provider, field in IMAGE_FIELDS:
            assert by_id[model]["synced"]["mapping"]["fields"]["image"] == field
            prompt = f"a kite rising, through {field} of {model}"
            made = await g.client.post(
                "/v1/videos", json={"model": model, "prompt": prompt, "image": image}
            )
            assert made.status_code == 202, made.text
            jobs.append((made.json()["id"], model, provider, field, prompt))
        for job_id, model, provider, field, prompt in jobs:
            seen = await wait_for_status(g.client, job_id, {"completed", "failed"}, 40)
            assert seen[-1]["status"] == "completed", (model, seen[-1])
            sent = _sent(g, provider, prompt)
            assert sent[field].startswith("data:image/png;base64,"), (model, sorted(sent))
            others = {f for _, _, f in IMAGE_FIELDS} - {field}
            assert not others & set(sent), (model, sorted(sent))


async def test_provider_params_reach_the_model_and_an_enum_violation_is_refused(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        model = (await g.client.get(f"/v1/models/{ENUM_MODEL}")).json()
        mode = model["synced"]["provider_params"]["mode"]
        assert mode["enum"] == ["standard", "pro"]
        bad = await g.client.post(
            "/v1/videos",
            json={"model": ENUM_MODEL, "prompt": "a fox", "provider_params": {"mode": "ultra"}},
        )
        assert bad.status_code == 400, bad.text
        err = bad.json()["error"]
        assert err["code"] == "schema_violation"
        assert err["param"] == "provider_params.mode"
        assert err["allowed"] == ["standard", "pro"]
        assert "ultra" in err["message"]
        assert not any(r.get("input", {}).get("prompt") == "a fox" for r in g.replicate.received)
        prompt = "a fox in the snow, standard mode"
        job = await g.run(
            {
                "model": ENUM_MODEL,
                "prompt": prompt,
                "duration_seconds": 5,
                "audio": True,
                "provider_params": {"mode": "standard"},
            }
        )
        assert job["status"] == "completed", job
        assert job["params"]["provider_params"] == {"mode": "standard"}
        assert job["params"]["audio"] is True
        sent = _sent(g, "replicate", prompt)
        assert sent["mode"] == "standard"
        assert sent["generate_audio"] is True
        assert sent["duration"] == 5
        assert sent["_path"] == "/v1/models/kwaivgi/kling-v3-video/predictions"


async def test_requests_a_synced_model_cannot_take_are_refused_before_anything_is_sent(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        sent_before = len(g.fal.received) + len(g.replicate.received)

        async def refused(body: dict[str, Any]) -> dict[str, Any]:
            answer = await g.client.post("/v1/videos", json={"prompt": "a cat", **body})
            assert 400 <= answer.status_code < 500, answer.text
            error: dict[str, Any] = answer.json()["error"]
            error["status"] = answer.status_code
            return error

        # an input that is no input of the model: the 400 lists its own
        err = await refused({"model": ENUM_MODEL, "provider_params": {"moode": "pro"}})
        assert err["code"] == "unknown_provider_param" and "mode" in err["allowed"]
        # a mapped field sent natively is pointed to reelgate's own name
        err = await refused({"model": ENUM_MODEL, "provider_params": {"duration": 5}})
        assert "send it as duration_seconds" in err["message"]
        # a length the schema does not offer: the allowed lengths, in seconds
        err = await refused({"model": FAL_T2V, "duration_seconds": 7})
        assert err["param"] == "duration_seconds" and err["allowed"] == [5, 10, 15]
        # no audio switch in the schema
        err = await refused({"model": FAL_T2V, "audio": True})
        assert err["param"] == "audio"
        # an image-to-video model without its image
        err = await refused({"model": "fal:fal-ai/kling-video/o1/image-to-video"})
        assert err["param"] == "image"
        # an input the schema requires and reelgate has no field for: provider_params
        err = await refused(
            {"model": "fal:fal-ai/veo3.1/first-last-frame-to-video", "image_url": _png()}
        )
        assert (err["code"], err["param"]) == ("schema_violation", "provider_params.last_frame_url")
        # unpriced: listed, refused at submit with a clear reason
        err = await refused({"model": "fal:fal-ai/magi"})
        assert (err["status"], err["code"]) == (403, "model_unpriced")
        assert "price_per_second" in err["message"]
        # unmappable: listed, refused with why
        err = await refused({"model": "fal:fal-ai/bytedance/omnihuman/v1.5"})
        assert err["code"] == "model_unmappable" and "duration" in err["message"]
        # provider_params on a hand-written model
        err = await refused({"model": "local", "provider_params": {"x": 1}})
        assert err["param"] == "provider_params"
        # a synced id nobody synced
        err = await refused({"model": "fal:fal-ai/nothing-here"})
        assert err["code"] == "unknown_model" and "catalog sync" in err["message"]
        assert len(g.fal.received) + len(g.replicate.received) == sent_before


# ── a change and a removal between two syncs ─────────────────────────────────────────

GONE = "fal:fal-ai/sora-2/text-to-video"
BACKUP = "fal:fal-ai/veo3"
CHANGED = "fal:fal-ai/kling-video/v2.1/standard/image-to-video"


async def test_a_changed_schema_is_flagged_and_a_removed_model_falls_back(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()
        # fal drops Sora 2 (as it did between April and August 2026) ...
        g.fal.remove(GONE.removeprefix("fal:"))
        # ... a job sent before the next sync finds it gone upstream and falls back
        prompt = "a red balloon over a city, before the sync"
        job = await g.run(
            {"model": GONE, "prompt": prompt, "duration_seconds": 8, "fallback": [BACKUP]}
        )
        assert job["status"] == "completed", job
        assert (job["model"], job["delivered_by"]) == (GONE, BACKUP)
        outcomes = [(a["model"], a["outcome"]) for a in job["attempts"]]
        assert outcomes == [(GONE, "gone"), (BACKUP, "completed")], outcomes
        # ... and kling 2.1's start image is renamed: the mapping no longer fits
        endpoint = CHANGED.removeprefix("fal:")
        record = copy.deepcopy(g.fal.catalog[endpoint])
        schemas = record["openapi"]["components"]["schemas"]
        name = next(n for n, s in schemas.items() if "image_url" in s.get("properties", {}))
        props = schemas[name]["properties"]
        props["reference_image"] = props.pop("image_url")
        schemas[name]["required"] = [
            "reference_image" if r == "image_url" else r for r in schemas[name]["required"]
        ]
        g.fal.set_record(endpoint, record)
        report = await g.sync()
        assert report.gone == [GONE]
        assert report.changed == [CHANGED]
        assert any("unmappable" in line for line in report.flagged[CHANGED])
        listed = (await g.client.get(f"/v1/models/{GONE}")).json()
        assert listed["lifecycle"] == "retired" and listed["synced"]["status"] == "retired"
        changed = (await g.client.get(f"/v1/models/{CHANGED}")).json()
        assert changed["synced"]["mapping"]["status"] == "unmappable"
        # after the sync: the retired model is skipped, its fallback serves at once
        prompt = "a red balloon over a city, after the sync"
        job = await g.run(
            {"model": GONE, "prompt": prompt, "duration_seconds": 8, "fallback": [BACKUP]}
        )
        assert job["status"] == "completed", job
        assert job["delivered_by"] == BACKUP
        assert not any(
            r["app_id"] == GONE.removeprefix("fal:") and r["input"]["prompt"] == prompt
            for r in g.fal.received
        )
        # alone, the retired model is refused with its lifecycle
        alone = await g.client.post("/v1/videos", json={"model": GONE, "prompt": "x"})
        assert alone.status_code in (400, 410), alone.text
        # fal lists it again: it comes back active
        g.fal.set_record(GONE.removeprefix("fal:"), fal_records()[GONE.removeprefix("fal:")])
        back = await g.sync()
        assert back.returned == [GONE]


# ── finding a model ──────────────────────────────────────────────────────────────────


async def test_models_search_filters_and_cursor_pages(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        await g.sync()

        async def listed(**params: Any) -> dict[str, Any]:
            answer = await g.client.get("/v1/models", params=params)
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        kling = await listed(search="kling")
        assert kling["total"] >= 8
        assert all(
            "kling" in m["id"].lower() or "kling" in m["display_name"].lower()
            for m in kling["data"]
        )
        rep = await listed(search="kling", provider="replicate")
        assert {m["id"] for m in rep["data"]} >= {"replicate:kwaivgi/kling-v2.6"}
        # a model served through Replicate on any of its routes (kling-2-5-turbo: fal too)
        assert all(
            any(r["provider"] == "replicate" for r in m["routes"].values()) for m in rep["data"]
        )
        audio = await listed(capability=["audio", "image_input"], source="synced")
        assert audio["total"] >= 5
        assert all({"audio", "image_input"} <= set(m["capabilities"]) for m in audio["data"])
        long = await listed(max_duration_gte=15, source="synced")
        assert long["data"] and all(m["max_duration_seconds"] >= 15 for m in long["data"])
        cheap = await listed(price_lte=50_000, price_gte=1, source="synced")
        assert cheap["data"]
        assert all(1 <= m["price"]["millicredits_per_second"] <= 50_000 for m in cheap["data"])
        unpriced = await listed(priced="false")
        assert unpriced["data"] and all(not m["priced"] for m in unpriced["data"])
        assert all(m["synced"]["priced"] is False for m in unpriced["data"])
        # listed, but not offered: usable says so, with the reason a submit would give
        assert all(not m["usable"] for m in unpriced["data"])
        assert all(
            m["not_usable_reason"].startswith("unpriced" if mapped else "not mapped")
            for m in unpriced["data"]
            for mapped in [m["synced"]["mapping"]["status"] == "mapped"]
        )
        omni = (await g.client.get("/v1/models/fal:fal-ai/bytedance/omnihuman/v1.5")).json()
        assert not omni["usable"] and omni["not_usable_reason"].startswith("not mapped")
        assert (await g.client.get(f"/v1/models/{FAL_T2V}")).json()["usable"]
        # pages of 7 walk every model exactly once
        everything = await listed(limit=500)
        seen: list[str] = []
        after = None
        while True:
            page = await listed(limit=7, **({"after": after} if after else {}))
            seen += [m["id"] for m in page["data"]]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            after = page["next_cursor"]
        assert seen == [m["id"] for m in everything["data"]]
        assert len(seen) == everything["total"] == len(set(seen))
        bad = await g.client.get("/v1/models", params={"after": "!!"})
        assert bad.status_code == 400
        # one model by its id, a synced one's derived parameters with it
        one = (await g.client.get(f"/v1/models/{FAL_T2V}")).json()
        assert one["allowedParams"]["duration_seconds"] == [5, 10, 15]
        assert one["synced"]["mapping"]["fields"]["duration_seconds"] == "duration"
        assert "enable_prompt_expansion" in one["synced"]["provider_params"]
        missing = await g.client.get("/v1/models/fal:fal-ai/none")
        assert missing.status_code == 404


# ── the periodic sync in the workers ────────────────────────────────────────────────


def _list_calls(g: Synced) -> int:
    return sum(1 for _m, path, _r in g.fal.calls if path == "/v1/models")


async def test_a_worker_syncs_by_itself_when_the_last_sync_is_older_than_catalog_sync_hours(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    every = settings.updated(catalog_sync_hours=1.0)
    async with synced(every, upstreams, tmp_path) as g:
        # the table is empty: the worker's catalog-sync loop syncs at once
        for _ in range(200):
            if FAL_T2V in g.rt.catalog:
                break
            await asyncio.sleep(0.05)
        assert FAL_T2V in g.rt.catalog, "the worker never synced"
        assert CatalogSyncer(g.rt).providers() == ["fal", "replicate"]
        # just synced: a look now finds nothing due, and fetches nothing
        listed = _list_calls(g)
        assert await CatalogSyncer(g.rt).sync_once() is None
        assert _list_calls(g) == listed
        # an hour on, fal has dropped a model: the next look retires it
        g.fal.remove(FAL_T2V.removeprefix("fal:"))
        later = CatalogSyncer(g.rt, clock=lambda: now_ms() + 3_600_000)
        report = await later.sync_once()
        assert report is not None and report.gone == [FAL_T2V]
        listed = (await g.client.get(f"/v1/models/{FAL_T2V}")).json()
        assert listed["lifecycle"] == "retired" and listed["synced"]["status"] == "retired"


async def test_without_a_replicate_token_the_periodic_sync_reads_fal_alone(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings.updated(catalog_sync_hours=1.0), upstreams, tmp_path) as g:
        no_token = g.rt.settings.updated(replicate_api_token="")
        g.rt.settings = no_token
        assert CatalogSyncer(g.rt).providers() == ["fal"]


# ── official and community Replicate models ───────────────────────────────────────────
# Replicate's own words (the full list with dates: providers/replicate.py, above Target):
#   OpenAPI models.predictions.create: "Create a prediction using an official model. If
#     you're _not_ running an official model, use the predictions.create operation
#     instead." predictions.create ``version``: "`{owner_name}/{model_name}` - Use this
#     format for official models [...] For all other models, the specific version is
#     required." The model object: "is_official": "Boolean indicating whether the model
#     is officially maintained by Replicate." (tryAGI/Replicate@1625ee75 openapi.json)
#   replicate.com/changelog/2025-08-05: "{owner}/{name}:{version_id} - For community
#     models"; the models route "will still be supported for running official models".

OFFICIAL_REP = "replicate:runwayml/gen-4.5"
"""Recorded with ``is_official: true``."""
COMMUNITY_REP = "community-lab/kling-v2.6-finetune"
"""Not among the recorded models (all official): a copy of kling-v2.6 under another
owner, marked ``is_official: false`` with its own version id."""
COMMUNITY_VERSION = "f5f1b5ee7c68f01561562cff9dd98909d4b09b0c929c7118d18848c689d32ce5"


def _community_record(emulator: ReplicateEmulator) -> dict[str, Any]:
    record = copy.deepcopy(emulator.catalog["kwaivgi/kling-v2.6"])
    owner, name = COMMUNITY_REP.split("/")
    model = record["model"]
    model.update(
        owner=owner, name=name, url=f"https://replicate.com/{COMMUNITY_REP}", is_official=False
    )
    model["latest_version"]["id"] = COMMUNITY_VERSION
    return record


def _created(g: Synced, prompt: str) -> dict[str, Any]:
    """The create body Replicate received for ``prompt``, with its route."""
    return next(
        r for r in reversed(g.replicate.received) if r.get("input", {}).get("prompt") == prompt
    )


async def test_a_community_replicate_model_runs_by_its_version_an_official_one_by_name(
    settings: Settings, upstreams: dict[str, EmulatorServer], tmp_path: Path
) -> None:
    async with synced(settings, upstreams, tmp_path) as g:
        g.replicate.set_record(COMMUNITY_REP, _community_record(g.replicate))
        model_id = f"replicate:{COMMUNITY_REP}"
        g.rt.catalog.synced_settings.prices[model_id] = SyncedPrice(1_000, {}, "operator: test")
        report = await g.sync()
        assert model_id in report.new
        info = g.rt.catalog.get(model_id).synced
        assert info is not None and info.version == COMMUNITY_VERSION
        # a community model: POST /v1/predictions with the version the sync read
        prompt = "a paper boat on a stream, community model"
        job = await g.run({"model": model_id, "prompt": prompt, "duration_seconds": 5})
        assert job["status"] == "completed", job
        sent = _created(g, prompt)
        assert sent["_path"] == "/v1/predictions"
        assert sent["version"] == COMMUNITY_VERSION
        assert sent["input"]["duration"] == 5
        assert not any(
            r["_path"] == f"/v1/models/{COMMUNITY_REP}/predictions" for r in g.replicate.received
        )
        ran = next(p for p in g.replicate.predictions.values() if p.prompt == prompt)
        assert (ran.model, ran.version) == (COMMUNITY_REP, COMMUNITY_VERSION)
        # an official model: still by name on the models route, no version
        prompt = "a paper boat on a stream, official model"
        job = await g.run({"model": OFFICIAL_REP, "prompt": prompt})
        assert job["status"] == "completed", job
        sent = _created(g, prompt)
        assert sent["_path"] == "/v1/models/runwayml/gen-4.5/predictions"
        assert "version" not in sent


async def test_the_replicate_emulator_runs_a_community_model_by_version_only(
    upstreams: dict[str, EmulatorServer],
) -> None:
    server = upstreams["replicate"]
    emulator = replicate_of(server)
    emulator.set_record(COMMUNITY_REP, _community_record(emulator))
    auth = {"Authorization": "Bearer emulator-replicate"}
    base = server.url + "/v1"
    good = {"prompt": "a heron", "duration": 5}
    async with httpx.AsyncClient(base_url=base, headers=auth) as http:
        page = (await http.get(f"/models/{COMMUNITY_REP}")).json()
        assert page["is_official"] is False
        assert page["latest_version"]["id"] == COMMUNITY_VERSION
        official = (await http.get("/models/runwayml/gen-4.5")).json()
        assert official["is_official"] is True
        # every model page says which it is (the API's model object always does)
        kling = (await http.get("/models/kwaivgi/kling-v2.6")).json()
        assert kling["is_official"] is True

        async def create(path: str, body: dict[str, Any]) -> httpx.Response:
            return await http.post(path, json=body)

        # a community model on the official-model route: Replicate's 422
        refused = await create(f"/models/{COMMUNITY_REP}/predictions", {"input": good})
        assert refused.status_code == 422, refused.text
        assert refused.json()["title"] == "Invalid version or not permitted"
        # ... or by name on the version route
        refused = await create("/predictions", {"version": COMMUNITY_REP, "input": good})
        assert refused.status_code == 422
        # by its version id (bare, or owner/name:id) it runs
        for ref in (COMMUNITY_VERSION, f"{COMMUNITY_REP}:{COMMUNITY_VERSION}"):
            made = await create("/predictions", {"version": ref, "input": good})
            assert made.status_code == 201, made.text
            assert (made.json()["model"], made.json()["version"]) == (
                COMMUNITY_REP,
                COMMUNITY_VERSION,
            )
        # checked against its recorded schema, as on the models route
        bad = await create(
            "/predictions", {"version": COMMUNITY_VERSION, "input": {**good, "duration": 7}}
        )
        assert bad.status_code == 422 and bad.json()["title"] == "Input validation failed"
        assert bad.json()["invalid_fields"][0]["field"] == "input.duration"
        # a version id under another model's name is not it
        wrong = await create(
            "/predictions", {"version": f"kwaivgi/kling-v2.6:{COMMUNITY_VERSION}", "input": good}
        )
        assert wrong.status_code == 422
        # an official model runs by name (either route), not by its version id
        by_name = await create("/predictions", {"version": "runwayml/gen-4.5", "input": good})
        assert by_name.status_code == 201, by_name.text
        assert by_name.json()["version"] == "hidden"
        by_version = await create(
            "/predictions", {"version": official["latest_version"]["id"], "input": good}
        )
        assert by_version.status_code == 422
        assert by_version.json()["title"] == "Invalid version or not permitted"


async def test_the_replicate_adapter_sends_a_versioned_synced_model_to_the_version_route(
    upstreams: dict[str, EmulatorServer],
) -> None:
    """The adapter's half, whatever the catalog names: a synced model's reference with a
    version goes to ``POST /v1/predictions``, without one to the models route."""
    from datetime import UTC, datetime, timedelta

    from reelgate.errors import ModelGone
    from reelgate.providers.base import GenerationRequest
    from reelgate.providers.http import HttpDeployment
    from reelgate.providers.replicate import ReplicateProvider, target_of
    from tests.conftest import LOOPBACK_DOWNLOADS

    server = upstreams["replicate"]
    emulator = replicate_of(server)
    emulator.set_record(COMMUNITY_REP, _community_record(emulator))
    deployment = HttpDeployment(
        base_url=f"{server.url}/v1", api_key="emulator-replicate", downloads=LOOPBACK_DOWNLOADS
    )
    provider = ReplicateProvider(deployment)

    def request(upstream: str, prompt: str) -> GenerationRequest:
        return GenerationRequest(
            job_id="video_community",
            attempt=1,
            model=f"replicate:{COMMUNITY_REP}",
            upstream_model=upstream,
            prompt=prompt,
            duration_seconds=5,
            resolution="720p",
            aspect_ratio="16:9",
            width=1280,
            height=720,
            native_input={"prompt": prompt, "duration": 5},
            native_image_field="start_image",
        )

    since = datetime.now(UTC) - timedelta(minutes=1)
    try:
        versioned = request(f"{COMMUNITY_REP}:{COMMUNITY_VERSION}", "a heron, by version")
        target = target_of(versioned)
        assert (target.model, target.version, target.path) == (
            COMMUNITY_REP,
            COMMUNITY_VERSION,
            "/predictions",
        )
        assert target.body == {
            "version": COMMUNITY_VERSION,
            "input": {"prompt": "a heron, by version", "duration": 5},
        }
        submitted = await provider.create(versioned)
        ran = emulator.predictions[submitted.upstream_id]
        assert (ran.model, ran.version) == (COMMUNITY_REP, COMMUNITY_VERSION)
        # a lost create is found again by its model and version
        assert await provider.find_created(versioned, since, frozenset()) == [submitted.upstream_id]
        # by name alone Replicate refuses a community model (422): gone, as it was
        with pytest.raises(ModelGone):
            await provider.create(request(COMMUNITY_REP, "a heron, by name"))
        # an official one by name stays on the models route
        official = target_of(request("runwayml/gen-4.5", "a heron, official"))
        assert (official.path, official.version) == ("/models/runwayml/gen-4.5/predictions", None)
    finally:
        await provider.aclose()
