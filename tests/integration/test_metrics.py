"""``GET /metrics`` scraped during and after a run and compared with the jobs table:
jobs finished by status, jobs in flight, upstream calls by outcome class, steps,
mirror bytes, refusals, credits; another process's counters summed in; open, token
and off."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from reelgate import metrics
from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.catalog import load_catalog
from reelgate.config import Settings
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.schema import jobs
from tests.conftest import TEST_KEY, wait_for_status
from tests.scripted import ScriptedProvider

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


async def _scrape(c: httpx.AsyncClient, **headers: str) -> Samples:
    answer = await c.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return _parse(answer.text)


@pytest.fixture
async def mrt(settings: Settings, tiny_video: Path) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(settings, public_url="http://testserver")
    await ensure_dev_account(runtime)
    runtime.providers.providers["scripted"] = ScriptedProvider(video=tiny_video)
    local = load_catalog().get("local")
    scripted = dataclasses.replace(
        local,
        id="s-primary",
        provider="scripted",
        upstream_model="s-primary",
        poll_interval_seconds=0.05,
        typical_seconds=1.0,
    )
    runtime.catalog.replace([*runtime.catalog, scripted])
    yield runtime
    await runtime.aclose()


async def test_a_scrape_agrees_with_the_jobs_table(mrt: Runtime) -> None:
    assert metrics.enabled()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(mrt)),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as c:
        before = await _scrape(c)
        job = {"duration_seconds": 1, "resolution": "360p"}
        ok = [
            (await c.post("/v1/videos", json={"model": "s-primary", "prompt": f"ok {i}", **job}))
            for i in range(3)
        ]
        refused = await c.post(
            "/v1/videos", json={"model": "s-primary", "prompt": "refuse it", **job}
        )
        canceled = await c.post("/v1/videos", json={"model": "local", "prompt": "no", **job})
        assert (await c.post(f"/v1/videos/{canceled.json()['id']}/cancel")).status_code == 200
        queued = await c.post("/v1/videos", json={"model": "local", "prompt": "waits", **job})

        during = await _scrape(c)  # no worker yet: everything queued is in flight, due
        assert _sum(during, "reelgate_jobs_in_flight", state="queued") == 5
        assert _sum(during, "reelgate_queue_due") == 5
        assert _sum(during, "reelgate_queue_oldest_due_age_seconds") >= 0
        assert _sum(during, "reelgate_credits_held_millicredits") == 5 * 1000

        # a refusal: an account without credits
        account = (
            await c.post("/v1/admin/accounts", json={"name": "broke", "credits": "0"})
        ).json()["id"]
        key = (await c.post(f"/v1/admin/accounts/{account}/keys", json={})).json()["key"]
        broke = await c.post(
            "/v1/videos",
            json={"model": "local", "prompt": "x", **job},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert broke.status_code == 402

        wk = Worker.from_runtime(mrt, concurrency=4, lease_seconds=10)
        task = asyncio.create_task(wk.run())
        try:
            for answer in (*ok, queued):
                await wait_for_status(c, answer.json()["id"], {"completed"})
            await wait_for_status(c, refused.json()["id"], {"failed"})
        finally:
            wk.stop()
            await task
        after = await _scrape(c)

    async with mrt.db.connect() as conn:
        table = Counter(
            dict(
                (
                    await conn.execute(
                        sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
                    )
                ).all()
            )
        )
    assert table == {"completed": 4, "failed": 1, "canceled": 1}

    def delta(name: str, **labels: str) -> float:
        return _sum(after, name, **labels) - _sum(before, name, **labels)

    # counted by the worker (its steps) and the API (the cancel of a queued job is the
    # API's own write, not a step: it is not a finish the worker saw)
    assert delta("reelgate_jobs_finished_total", status="completed") == table["completed"]
    assert delta("reelgate_jobs_finished_total", status="failed") == table["failed"]
    assert delta("reelgate_jobs_finished_total", status="completed", model="s-primary") == 3
    assert _sum(after, "reelgate_jobs_in_flight") == 0 and _sum(after, "reelgate_queue_due") == 0
    assert _sum(after, "reelgate_credits_held_millicredits") == 0
    assert (
        delta(
            "reelgate_upstream_calls_total", provider="scripted", operation="create", outcome="ok"
        )
        == 3
    )
    assert delta("reelgate_upstream_calls_total", provider="scripted", outcome="refused") == 1
    assert (
        delta("reelgate_upstream_call_seconds_count", provider="scripted", operation="create") == 4
    )
    assert delta("reelgate_step_seconds_count") >= 4 * 3  # submit, poll, mirror at least
    assert delta("reelgate_mirror_seconds_count", outcome="stored") == 4
    assert delta("reelgate_mirror_bytes_total") > 0
    assert delta("reelgate_refusals_total", code="insufficient_credits") == 1
    assert delta("reelgate_credits_captured_millicredits_total") == 4 * 1000


def test_counters_of_every_process_of_the_host_are_summed(mrt: Runtime, tmp_path: Path) -> None:
    """A second process (a worker, say) records into the same directory; this one's
    scrape includes its counts, after it has exited too."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    code = (
        "from pathlib import Path; from reelgate import metrics; "
        f"metrics.enable(Path({directory!r})); "
        "[metrics.webhook_attempt('gone') for _ in range(7)]"
    )
    before = _parse(metrics.exposition(metrics.Snapshot())[0].decode())
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
    after = _parse(metrics.exposition(metrics.Snapshot())[0].decode())
    assert (
        _sum(after, "reelgate_webhook_attempts_total", outcome="gone")
        - _sum(before, "reelgate_webhook_attempts_total", outcome="gone")
        == 7
    )


async def test_metrics_behind_a_token_or_off(settings: Settings) -> None:
    for mode, token in (("token", "scrape-me"), ("off", None)):
        rt2 = await build_runtime(
            settings.updated(metrics=mode, metrics_token=token), public_url="http://testserver"
        )
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(rt2)), base_url="http://testserver"
            ) as c:
                if mode == "token":
                    assert (await c.get("/metrics")).status_code == 401
                    wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
                    assert wrong.status_code == 401 and wrong.json()["error"]["code"]
                    assert (
                        "reelgate_queue_due"
                        in (
                            await c.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
                        ).text
                    )
                else:
                    off = await c.get("/metrics")
                    assert off.status_code == 404 and "off" in off.json()["error"]["message"]
        finally:
            await rt2.aclose()
    with pytest.raises(ValueError, match="metrics_token"):
        settings.updated(metrics="token")
