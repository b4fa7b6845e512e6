"""Outbound webhooks end to end, on SQLite and PostgreSQL: a real receiver on loopback,
every signature checked with the Standard Webhooks library (``standardwebhooks``), jobs
that complete, fail and are canceled, a receiver that refuses for a while, answers 410
or redirects, a rotation, a redelivery, and the outbox written with the change or not
at all."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reelgate.accounts.dev import ensure_dev_account
from reelgate.catalog import load_catalog
from reelgate.config import Settings
from reelgate.emulators.base import EmulatorServer
from reelgate.engine.commands import submit_job
from reelgate.engine.worker import Worker
from reelgate.runtime import Runtime, build_runtime
from reelgate.store.schema import job_events, webhook_outbox
from reelgate.webhooks.dispatch import retry_delay_seconds
from reelgate.webhooks.store import claim_due, create_endpoint, settle
from tests.conftest import DEV_ACCOUNT_ID, small_job, wait_for_status
from tests.integration.conftest import api_client, emulated_runtime
from tests.receiver import Receiver, running_receiver, wait_until
from tests.scripted import ScriptedProvider

FAST = {
    "webhook_poll_seconds": 0.05,
    "webhook_retry_base_seconds": 0.1,
    "webhook_progress_interval_seconds": 3600.0,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every runtime here (``rt``, ``client``, ``worker``) polls and retries quickly."""
    return settings.updated(**FAST)


async def _secret(client: httpx.AsyncClient) -> str:
    answer = await client.get("/v1/webhooks/default/secret")
    assert answer.status_code == 200, answer.text
    key: str = answer.json()["key"]
    assert key.startswith("whsec_")
    return key


def _local(prompt: str, hook: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "local",
        "prompt": prompt,
        "duration_seconds": 1,
        "resolution": "360p",
        "webhook_url": hook,
        **extra,
    }


async def test_a_request_webhook_gets_each_event_signed_with_the_default_secret(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker, receiver: Receiver
) -> None:
    answer = await client.post("/v1/videos", json=_local("a fox", f"{receiver.url}/hook"))
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert answer.json()["webhook_url"] == f"{receiver.url}/hook"
    await wait_until(
        lambda: any(r.event["type"] == "video.completed" for r in receiver.events()),
        what="video.completed",
    )
    secret = await _secret(client)
    events = [r.verify(secret) for r in receiver.events()]
    types = [e["type"] for e in events]
    assert types[0] == "video.queued" and types[-1] == "video.completed", types
    assert "video.in_progress" in types
    assert types.count("video.progress") <= 1  # throttled: one per interval per target
    for event in events:
        assert event["object"] == "event" and event["id"].startswith("evt_")
        assert event["data"]["id"] == job_id and event["data"]["object"] == "video"
    done = events[-1]["data"]
    assert done["status"] == "completed" and done["result"]["url"]
    ids = [r.msg_id for r in receiver.events()]
    assert len(set(ids)) == len(ids)  # one webhook-id per event and target
    with pytest.raises(WebhookVerificationError):  # another secret does not verify
        Webhook("whsec_" + "QUJD" * 8).verify(
            receiver.events()[0].body, receiver.events()[0].headers
        )
    listed = (await client.get(f"/v1/videos/{job_id}/webhooks")).json()["data"]
    assert {d["status"] for d in listed} == {"delivered"}
    assert sorted(d["id"] for d in listed) == sorted(ids)
    assert all(d["attempts"] == 1 and d["endpoint_id"] is None for d in listed)


async def test_account_endpoints_get_failed_and_canceled_jobs_filtered_by_event(
    rt: Runtime, client: httpx.AsyncClient, receiver: Receiver, tiny_video: Any
) -> None:
    created = await client.post(
        f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks",
        json={"url": f"{receiver.url}/ends", "events": ["video.failed", "video.canceled"]},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "enabled"
    listed = (await client.get(f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks")).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]  # shown once

    provider = ScriptedProvider(video=tiny_video)
    _script(rt, provider)
    refused = await client.post(
        "/v1/videos", json={"model": "s-primary", "prompt": "refuse this", "duration_seconds": 1}
    )
    assert refused.status_code == 202, refused.text
    queued = await client.post("/v1/videos", json=_local("never mind", f"{receiver.url}/req"))
    canceled = await client.post(f"/v1/videos/{queued.json()['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    wk = Worker.from_runtime(rt, concurrency=2, lease_seconds=10)
    task = asyncio.create_task(wk.run())
    try:
        await wait_for_status(client, refused.json()["id"], {"failed"})
        await wait_until(lambda: len(receiver.accepted("/ends")) == 2, what="two endpoint events")
        await wait_until(lambda: len(receiver.accepted("/req")) == 2, what="queued + canceled")
    finally:
        wk.stop()
        await task
    by_type = {r.verify(endpoint["secret"])["type"]: r for r in receiver.accepted("/ends")}
    assert set(by_type) == {"video.failed", "video.canceled"}  # no queued, no in_progress
    failed = by_type["video.failed"].event["data"]
    assert failed["id"] == refused.json()["id"] and failed["error"]["code"]
    assert by_type["video.canceled"].event["data"]["status"] == "canceled"
    secret = await _secret(client)
    assert [r.verify(secret)["type"] for r in receiver.accepted("/req")] == [
        "video.queued",
        "video.canceled",
    ]


def _script(rt: Runtime, provider: ScriptedProvider) -> None:
    rt.providers.providers["scripted"] = provider
    local = load_catalog().get("local")
    extra = [
        dataclasses.replace(
            local,
            id="s-primary",
            provider="scripted",
            upstream_model="s-primary",
            poll_interval_seconds=0.05,
            typical_seconds=1.0,
        )
    ]
    rt.catalog.replace([*rt.catalog, *extra])


async def test_a_refusing_receiver_gets_the_same_id_and_body_until_it_accepts(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker
) -> None:
    receiver = Receiver(script=lambda _req, seen: 503 if seen < 3 else 200)
    with running_receiver(receiver):
        job = await client.post("/v1/videos", json=_local("again", f"{receiver.url}/h"))
        job_id = job.json()["id"]
        await wait_until(
            lambda: any(r.event["type"] == "video.completed" for r in receiver.accepted()),
            what="completed accepted",
        )
    secret = await _secret(client)
    completed = [r for r in receiver.events() if r.event["type"] == "video.completed"]
    assert [r.answered for r in completed] == [503, 503, 503, 200]
    assert len({r.msg_id for r in completed}) == 1 and len({r.body for r in completed}) == 1
    for r in completed:
        r.verify(secret)  # each attempt signed afresh (its own timestamp)
    listed = (await client.get(f"/v1/videos/{job_id}/webhooks")).json()["data"]
    row = next(d for d in listed if d["event_type"] == "video.completed")
    assert row["status"] == "delivered" and row["attempts"] == 4
    assert [h["status"] for h in row["history"]] == [503, 503, 503, 200]
    assert row["history"][0]["error"] == "answered HTTP 503"


async def test_410_disables_the_endpoint_and_a_redirect_is_not_followed(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker
) -> None:
    def script(request: Any, _seen: int) -> int | tuple[int, dict[str, str]]:
        if request.url.path == "/gone":
            return 410
        if request.url.path == "/moved":
            return 307, {"Location": "/elsewhere"}
        return 200

    with running_receiver(Receiver(script=script)) as receiver:
        gone = await client.post(
            f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks",
            json={"url": f"{receiver.url}/gone", "events": ["video.queued"]},
        )
        job = await client.post("/v1/videos", json=_local("moved", f"{receiver.url}/moved"))
        await wait_until(lambda: len(receiver.events("/gone")) == 1, what="the 410")
        await wait_until(lambda: len(receiver.events("/moved")) >= 2, what="redirect retried")
        await wait_for_status(client, job.json()["id"], {"completed"})
        await asyncio.sleep(0.3)
        assert receiver.events("/elsewhere") == []  # never followed
        # read while the receiver still answers: a retry after it stops meets no server
        listed = (await client.get(f"/v1/videos/{job.json()['id']}/webhooks")).json()["data"]
    endpoint = (await client.get(f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks")).json()["data"][0]
    assert endpoint["id"] == gone.json()["id"]
    assert endpoint["status"] == "disabled" and "410" in endpoint["disabled_reason"]
    to_gone = [d for d in listed if d["endpoint_id"] == endpoint["id"]]
    assert [d["status"] for d in to_gone] == ["gone"]
    moved = [d for d in listed if d["endpoint_id"] is None]
    assert moved and all(d["status"] == "pending" for d in moved)
    assert "redirect" in moved[0]["last_error"] and moved[0]["last_status"] == 307
    # a disabled endpoint gets nothing more, and a redelivery to it is refused
    again = await client.post(
        f"/v1/videos/{job.json()['id']}/webhooks/{to_gone[0]['id']}/redeliver"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "endpoint_disabled"


async def test_rotation_signs_with_both_secrets_and_redelivery_keeps_the_id(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker, receiver: Receiver
) -> None:
    first = (
        await client.post(
            f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks",
            json={"url": f"{receiver.url}/e", "events": ["video.completed"]},
        )
    ).json()
    rotated = await client.post(f"/v1/admin/webhooks/{first['id']}/rotate", json={})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != first["secret"] and rotated.json()["previous_secret_valid_until"]
    job = await client.post("/v1/videos", json=_local("rotate", f"{receiver.url}/r"))
    job_id = job.json()["id"]
    await wait_until(lambda: len(receiver.accepted("/e")) == 1, what="completed to endpoint")
    got = receiver.accepted("/e")[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verify(first["secret"]) == got.verify(new_secret)  # either one verifies

    listed = (await client.get(f"/v1/videos/{job_id}/webhooks")).json()["data"]
    target = next(d for d in listed if d["endpoint_id"] == first["id"])
    again = await client.post(f"/v1/videos/{job_id}/webhooks/{target['id']}/redeliver")
    assert again.status_code == 200 and again.json()["status"] == "pending"
    await wait_until(lambda: len(receiver.accepted("/e")) == 2, what="the redelivery")
    second = receiver.accepted("/e")[1]
    assert second.msg_id == got.msg_id == target["id"] and second.body == got.body

    # without the overlap the old secret stops signing at once
    await client.post(f"/v1/admin/webhooks/{first['id']}/rotate", json={"keep_previous_hours": 0})
    await client.post(f"/v1/admin/webhooks/{first['id']}/disable")
    assert (await client.get(f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks")).json()["data"][0][
        "status"
    ] == "disabled"


async def test_the_openai_form_takes_a_webhook_url(
    rt: Runtime, client: httpx.AsyncClient, worker: Worker, receiver: Receiver
) -> None:
    fields = {
        "model": "local",
        "prompt": "form",
        "seconds": "1",
        "webhook_url": f"{receiver.url}/f",
    }
    # multipart/form-data, as OpenAI's SDK sends a create
    form = await client.post("/v1/videos", files={k: (None, v) for k, v in fields.items()})
    assert form.status_code == 202, form.text
    await wait_until(
        lambda: any(r.event["type"] == "video.completed" for r in receiver.accepted("/f")),
        what="form job completed",
    )


async def test_the_media_service_body_takes_a_webhook_url_as_an_extension(
    settings: Settings, emulators: dict[str, EmulatorServer], receiver: Receiver
) -> None:
    """Its events carry the ``/v2/jobs`` document, the shape its clients read."""
    async with emulated_runtime(settings, emulators) as rt2:
        wk = Worker.from_runtime(rt2, concurrency=2, lease_seconds=10)
        task = asyncio.create_task(wk.run())
        try:
            async with api_client(rt2) as c:
                media = await c.post(
                    "/v1/proxy/media-video-from-text",
                    json={"prompt": "media", "webhook_url": f"{receiver.url}/m"},
                )
                assert media.status_code == 202, media.text
                media_id = media.json()["job"]["id"]
                await wait_until(
                    lambda: any(
                        r.event["type"] == "video.completed" for r in receiver.accepted("/m")
                    ),
                    what="media job completed",
                )
                secret = (await c.get("/v1/webhooks/default/secret")).json()["key"]
        finally:
            wk.stop()
            await task
    done = next(r for r in receiver.accepted("/m") if r.event["type"] == "video.completed")
    data = done.verify(secret)["data"]
    assert data["id"] == media_id and data["service_name"] == "media-video-from-text"
    assert data["status"] == "completed" and data["result_data"]["video_url"]
    assert data["token_cost"] == 6.0  # the seed's $1.50/s for 4 s


async def test_private_targets_are_refused_unless_allowed(
    settings: Settings, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    refused = await client.post("/v1/videos", json=_local("x", "http://10.1.2.3/hook"))
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "webhook_url"
    assert refused.json()["error"]["code"] == "url_not_allowed"
    bad = await client.post(
        f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks",
        json={"url": f"{receiver.url}/x", "events": ["video.done"]},
    )
    assert bad.status_code == 400 and "video.completed" in bad.json()["error"]["allowed"]

    # at delivery time too: a name that resolves to loopback, without the allow-list
    strict = settings.updated(fetch_allow_private=[], fetch_allow_ports=[])
    rt2 = await build_runtime(strict, public_url="http://testserver")
    try:
        job = await submit_job(rt2, small_job("strict"))
        async with rt2.db.begin() as conn:
            await conn.execute(
                sa.text("UPDATE jobs SET webhook_url = :u WHERE id = :id"),
                {"u": f"http://localhost:{receiver.server.port}/p", "id": job.id},  # type: ignore[union-attr]
            )
            await conn.execute(
                webhook_outbox.insert().values(
                    job_id=job.id, seq=1, type="video.queued", created_at=job.created_at
                )
            )
        wk = Worker.from_runtime(rt2, concurrency=1, lease_seconds=10)
        assert wk.webhooks is not None
        await wk.webhooks.fan_out_once()
        await wk.webhooks.send_due_once(10)
        await wait_until(lambda: wk.webhooks is not None and wk.webhooks.attempts >= 1)
        await asyncio.sleep(0.2)
        async with rt2.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.text("SELECT status, last_error FROM webhook_deliveries WHERE job_id = :id"),
                    {"id": job.id},
                )
            ).one()
        assert row.status == "pending" and "not allowed" in row.last_error
        assert receiver.events("/p") == []
    finally:
        await rt2.aclose()


async def test_a_receiver_that_hangs_never_holds_up_a_job(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.delay_seconds = 5.0
    rt2 = await build_runtime(
        settings.updated(webhook_timeout_seconds=1.0), public_url="http://testserver"
    )
    try:
        await ensure_dev_account(rt2)
        wk = Worker.from_runtime(rt2, concurrency=2, lease_seconds=10)
        task = asyncio.create_task(wk.run())
        loop = asyncio.get_running_loop()
        started = loop.time()
        job = await submit_job(rt2, small_job("slow receiver"))
        async with rt2.db.begin() as conn:  # the account's endpoint, for every event
            await create_endpoint(conn, DEV_ACCOUNT_ID, f"{receiver.url}/slow", [], "", 0)
        while True:
            async with rt2.store.reading() as tx:
                current = await tx.get_job(job.id)
            assert current is not None
            if current.status.value == "completed":
                break
            assert loop.time() - started < 30
            await asyncio.sleep(0.05)
        wk.stop()
        await task
    finally:
        await rt2.aclose()


async def test_the_outbox_row_commits_with_the_event_or_not_at_all(rt: Runtime) -> None:
    quiet = await submit_job(rt, small_job("nobody listens"))
    async with rt.db.connect() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).select_from(webhook_outbox))
        ).scalar()
    assert count == 0  # no webhook_url, no endpoint: nothing to deliver, nothing written

    listened = await submit_job(
        rt, dataclasses.replace(small_job("listened"), webhook_url="http://h.test/")
    )
    event = {
        "job_id": listened.id,
        "seq": 2,
        "type": "video.in_progress",
        "status": "in_progress",
        "progress": 1,
        "created_at": listened.created_at,
    }

    async def change_that_fails() -> None:
        async with rt.db.begin() as conn:
            await conn.execute(job_events.insert().values(**event))
            raise RuntimeError("the change fails after its event was written")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    async with rt.db.connect() as conn:
        rows = (await conn.execute(sa.select(webhook_outbox.c.job_id, webhook_outbox.c.type))).all()
    assert [tuple(r) for r in rows] == [(listened.id, "video.queued")]  # the submit's, only
    async with rt.db.begin() as conn:
        await conn.execute(job_events.insert().values(**event))
    async with rt.db.connect() as conn:
        rows = (
            await conn.execute(sa.select(webhook_outbox.c.type).order_by(webhook_outbox.c.id))
        ).all()
    assert [r[0] for r in rows] == ["video.queued", "video.in_progress"]
    assert quiet.id != listened.id


def test_the_retry_schedule_spans_about_a_day() -> None:
    s = Settings()
    waits = [
        retry_delay_seconds(s.webhook_retry_base_seconds, n)
        for n in range(1, s.webhook_max_attempts)
    ]
    assert waits[:3] == [5.0, 20.0, 80.0]  # exponential
    assert max(waits) == 8 * 3600
    assert 22 * 3600 < sum(waits) < 26 * 3600  # ~23.6 h before the last attempt
    assert json.dumps(waits)


async def test_an_idempotency_key_replays_an_endpoint_create_without_its_secret(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {"url": f"{receiver.url}/once"}
    headers = {"Idempotency-Key": "make-endpoint-1"}
    first = await client.post(
        f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks", json=body, headers=headers
    )
    again = await client.post(
        f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks", json=body, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["secret"].startswith("whsec_")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["secret"] is None
    listed = (await client.get(f"/v1/admin/accounts/{DEV_ACCOUNT_ID}/webhooks")).json()["data"]
    assert len(listed) == 1  # made once


async def test_an_attempt_recorded_after_its_lease_ran_out_is_dropped(rt: Runtime) -> None:
    """Two claims of one delivery (the first sender's lease ran out): only the holder of
    the current lease records its attempt; the late one changes nothing."""
    job = await submit_job(
        rt, dataclasses.replace(small_job("lease"), webhook_url="http://h.test/")
    )
    wk = Worker.from_runtime(rt, concurrency=1, lease_seconds=10)
    assert wk.webhooks is not None
    await wk.webhooks.fan_out_once()
    now = job.created_at + 1000
    async with rt.db.begin() as conn:
        ((first, _),) = await claim_due(conn, now, 1000, 10)
    async with rt.db.begin() as conn:  # the lease is over: another sender claims it
        ((second, _),) = await claim_due(conn, now + 1500, 1000, 10)
    attempt = {"at": 0, "status": 200, "error": None, "ms": 1}
    kwargs: dict[str, Any] = {
        "next_attempt_at": None,
        "http_status": 200,
        "error": None,
        "attempt": attempt,
    }
    async with rt.db.begin() as conn:
        assert not await settle(conn, first, status="delivered", now=now + 1600, **kwargs)
        assert await settle(conn, second, status="delivered", now=now + 1600, **kwargs)
    async with rt.db.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT status, attempts FROM webhook_deliveries WHERE id = :id"),
                {"id": first.id},
            )
        ).one()
    assert tuple(row) == ("delivered", 1)
