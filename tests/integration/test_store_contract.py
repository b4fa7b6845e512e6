"""One contract for every store: SQLite, PostgreSQL and the in-memory twin.

The engine's tests without a database are only worth what this contract proves:
whatever the memory store does here, the SQL store does too, on real databases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from reelgate.errors import NotFound, PaymentRequired, ValidationFailed
from reelgate.job import (
    Attempt,
    AttemptOutcome,
    Event,
    Job,
    JobError,
    JobResult,
    JobState,
    MirrorStatus,
    PublicStatus,
)
from reelgate.store.base import AmbiguousRecord, Store
from reelgate.store.db import create_engine
from reelgate.store.hooks import KEEP_MS
from reelgate.store.idempotency import KeyRecord
from reelgate.store.ledger import MAX_BALANCE, Balance
from reelgate.store.memory import MemoryStore
from reelgate.store.sql import SqlStore
from reelgate.store.step import StepWrite, record_step_in
from reelgate.store.submit import JobSubmission, StoredAnswer, SubmitOutcome
from tests.values import NOW, PARAMS, Clock
from tests.values import a_job as values_job

ACCOUNT = "acct_1"
OTHER = "acct_other"
BALANCE = 100_000
API_KEY = "rg_contract_key_0123456789abcdefghijklmnop"
FLAGS = {"allowed_models": ["sora-2"], "prc_opt_in": True}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """ "memory", or the URL of a fresh migrated database."""
    if request.param == "memory":
        return "memory"
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
async def store(backend: str) -> AsyncIterator[Store]:
    engine = None if backend == "memory" else create_engine(backend)
    store: Store = MemoryStore(Clock()) if engine is None else SqlStore(engine)
    async with store.begin() as tx:
        for account_id in (ACCOUNT, OTHER):
            await tx.create_account(account_id, account_id)
        await tx.grant(ACCOUNT, BALANCE, "contract")
        await tx.create_key(ACCOUNT, key=API_KEY, scopes=["jobs:read"])
        await tx.set_flags(ACCOUNT, FLAGS)
    yield store
    if engine is not None:
        await engine.dispose()


def a_job(job_id: str = "video_1", **overrides: object) -> Job:
    values: dict[str, object] = {"account_id": ACCOUNT, "metadata": {"order": "42"}}
    return values_job(job_id, **{**values, **overrides})


async def put(store: Store, *jobs: Job) -> None:
    async with store.begin() as tx:
        for job in jobs:
            await tx.insert_job(job)


async def get(store: Store, job_id: str, **kw: object) -> Job | None:
    async with store.reading() as tx:
        return await tx.get_job(job_id, **kw)  # type: ignore[arg-type]


async def test_a_job_reads_back_exactly_as_written(store: Store) -> None:
    full = a_job(
        state=JobState.MIRRORING,
        params=replace(a_job().params, negative_prompt="blur", seed=7, image_key="inputs/x"),
        attempts=(
            Attempt(
                model="local",
                started_at=NOW,
                outcome=AttemptOutcome.QUOTA,
                upstream_id="up_1",
                error=JobError("quota", "429", error_class="quota", upstream_status=429),
                ended_at=NOW + 5,
            ),
            Attempt(
                model="other",
                started_at=NOW + 6,
                outcome=AttemptOutcome.RUNNING,
                create_sent_at=NOW + 6,
                adopted=True,
                last_error=JobError("x", "y", lookup_error="z"),
            ),
        ),
        result=JobResult(
            upstream_url="https://cdn/x.mp4",
            mirror_status=MirrorStatus.FAILED,
            duration_seconds=4.0,
            mirror_tries=2,
            mirror_retry_at=NOW + 9,
        ),
        error=JobError("timeout", "late"),
        completed_at=NOW + 10,
        cost=4000,
        units_consumed=4,
        hold_id="hold_x",
        delivered_by="other",
        chain_index=1,
        attempt_no=2,
    )
    await put(store, full)
    assert await get(store, "video_1") == full


async def test_another_accounts_job_and_a_hidden_job_read_as_missing(store: Store) -> None:
    await put(store, a_job(), a_job("video_2", deleted_at=NOW))
    async with store.reading() as tx:
        assert await tx.get_job("video_1", OTHER) is None
        assert await tx.get_job("video_1", ACCOUNT) is not None
        assert await tx.get_job("video_2") is None
        assert await tx.get_job("video_2", include_deleted=True) is not None


async def test_claims_take_due_free_jobs_most_overdue_first(store: Store) -> None:
    await put(
        store,
        a_job("video_a", next_run_at=NOW - 10),
        a_job("video_b", next_run_at=NOW - 50),
        a_job("video_c", next_run_at=NOW + 1000),  # not due
        a_job("video_d", next_run_at=None, state=JobState.COMPLETED),  # final
        a_job("video_e", next_run_at=NOW - 90),
    )
    first = await store.claim_due("w1", limit=2, lease_ms=30_000, now=NOW)
    assert [j.id for j in first] == ["video_e", "video_b"]
    assert all(j.lease_owner == "w1" and j.lease_expires_at == NOW + 30_000 for j in first)
    rest = await store.claim_due("w2", limit=10, lease_ms=30_000, now=NOW, in_hand=())
    assert [j.id for j in rest] == ["video_a"]
    assert await store.claim_due("w2", limit=10, lease_ms=30_000, now=NOW) == []


async def test_a_lapsed_lease_is_taken_over_but_never_by_the_worker_still_stepping_it(
    store: Store,
) -> None:
    await put(store, a_job())
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=1000, now=NOW)
    later = NOW + 2000
    assert await store.claim_due("w1", limit=1, lease_ms=1000, now=later, in_hand=["video_1"]) == []
    [taken] = await store.claim_due("w2", limit=1, lease_ms=1000, now=later)
    assert taken.lease_owner == "w2"
    async with store.begin() as tx:  # the first worker's write is fenced out
        moved = replace(claimed, progress=50)
        assert not await tx.write_step(claimed, moved, "w1", release=True)
        assert await tx.write_step(taken, replace(taken, progress=7), "w2", release=True)
    after = await get(store, "video_1")
    assert after is not None and after.progress == 7 and after.lease_owner is None


async def test_concurrent_claimers_never_share_a_job(store: Store) -> None:
    await put(store, *(a_job(f"video_{i:02d}", next_run_at=NOW - i) for i in range(30)))
    batches = await asyncio.gather(
        *(store.claim_due(f"w{n}", limit=7, lease_ms=30_000, now=NOW) for n in range(6))
    )
    ids = [j.id for batch in batches for j in batch]
    assert len(ids) == len(set(ids)) == 30


async def test_a_step_writes_only_what_it_changed(store: Store) -> None:
    await put(store, a_job())
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW)
    async with store.begin() as tx:  # the API marks it for cancel meanwhile
        await tx.mark_cancel_requested(ACCOUNT, "video_1", NOW + 1)
    async with store.begin() as tx:
        step = replace(claimed, progress=3, state=JobState.SUBMITTING)
        assert await tx.write_step(claimed, step, "w1", release=False)
    after = await get(store, "video_1")
    assert after is not None and after.cancel_requested and after.progress == 3
    assert after.state is JobState.SUBMITTING and after.lease_owner == "w1"


async def test_a_provider_call_during_a_step_is_not_undone_by_the_steps_write(
    store: Store,
) -> None:
    """A call lands while a worker polls the job (lease held): the poll's "still
    running, look again in 5 minutes" must not push back the call's "due now"."""
    job = a_job(
        state=JobState.RUNNING, upstream_id="up_1", next_run_at=NOW - 1, running_since=NOW - 10
    )
    await put(store, job)
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW)
    pushed = JobResult(upstream_url="https://v.example/r.mp4", content_type="video/mp4")
    async with store.begin() as tx:
        assert await tx.poll_now("video_1", "up_1", NOW + 5, pushed)
    async with store.begin() as tx:
        step = replace(claimed, next_run_at=NOW + 300_000, poll_count=1)
        assert await tx.write_step(claimed, step, "w1", release=True)
    after = await get(store, "video_1")
    assert after is not None and after.next_run_at == NOW + 5 and after.result == pushed
    assert after.poll_count == 1
    # with nothing bumped meanwhile, a step's own schedule is written as it is
    [again] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW + 10)
    async with store.begin() as tx:
        assert await tx.write_step(
            again, replace(again, next_run_at=NOW + 60_000), "w1", release=True
        )
    after = await get(store, "video_1")
    assert after is not None and after.next_run_at == NOW + 60_000


async def test_an_exception_rolls_the_whole_transaction_back(store: Store) -> None:
    async def write_then_fail() -> None:
        async with store.begin() as tx:
            await tx.insert_job(a_job())
            await tx.place_hold(ACCOUNT, "video_1", 500)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    assert await get(store, "video_1") is None
    async with store.reading() as tx:
        balance = await tx.get_balance(ACCOUNT)
    assert (balance.balance, balance.held) == (BALANCE, 0)


async def test_holds_capture_what_was_delivered_once_and_release_the_rest(store: Store) -> None:
    async with store.begin() as tx:
        hold = await tx.place_hold(ACCOUNT, "video_1", 4000)
        assert (await tx.get_balance(ACCOUNT)).available == BALANCE - 4000
    async with store.begin() as tx:
        assert await tx.capture_hold(hold, 3000)
        assert not await tx.capture_hold(hold, 3000)  # exactly once
        assert not await tx.release_hold(hold)
        balance = await tx.get_balance(ACCOUNT)
    assert (balance.balance, balance.held) == (BALANCE - 3000, 0)
    async with store.begin() as tx:
        capped = await tx.place_hold(ACCOUNT, "video_2", 1000)
        assert await tx.capture_hold(capped, 99_999)  # never more than the hold
        released = await tx.place_hold(ACCOUNT, "video_3", 1000)
        assert await tx.release_hold(released)
        balance = await tx.get_balance(ACCOUNT)
    assert (balance.balance, balance.held) == (BALANCE - 4000, 0)


async def test_a_hold_the_balance_cannot_cover_is_refused_with_the_numbers(store: Store) -> None:
    async def hold(account_id: str) -> str:
        async with store.begin() as tx:
            return await tx.place_hold(account_id, "video_1", 1)

    with pytest.raises(PaymentRequired) as refused:
        await hold(OTHER)
    assert refused.value.details["shortfall"] == "0.001"
    with pytest.raises(NotFound):
        await hold("acct_nobody")


async def test_cancel_on_the_spot_only_for_a_free_queued_job(store: Store) -> None:
    await put(store, a_job(), a_job("video_2", state=JobState.RUNNING))
    async with store.begin() as tx:
        assert await tx.cancel_if_queued(OTHER, "video_1", NOW) is None  # not theirs
        assert await tx.cancel_if_queued(ACCOUNT, "video_2", NOW) is None  # running
        canceled = await tx.cancel_if_queued(ACCOUNT, "video_1", NOW + 5)
    assert canceled is not None and canceled.state is JobState.CANCELED
    assert (canceled.completed_at, canceled.cost, canceled.event_seq) == (NOW + 5, 0, 1)
    assert canceled.next_run_at is None and await get(store, "video_1") == canceled


async def test_a_held_queued_job_is_only_marked_for_cancel(store: Store) -> None:
    await put(store, a_job())
    await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW)
    async with store.begin() as tx:
        assert await tx.cancel_if_queued(ACCOUNT, "video_1", NOW + 1) is None
        await tx.mark_cancel_requested(ACCOUNT, "video_1", NOW + 1)
    job = await get(store, "video_1")
    assert job is not None and job.cancel_requested and job.state is JobState.QUEUED


async def test_a_delivered_video_is_never_marked_for_cancel(store: Store) -> None:
    await put(store, a_job(state=JobState.MIRRORING, completed_at=NOW, next_run_at=NOW + 60))
    async with store.begin() as tx:
        await tx.mark_cancel_requested(ACCOUNT, "video_1", NOW + 1)
    job = await get(store, "video_1")
    assert job is not None and not job.cancel_requested


async def test_hiding_a_delivered_job_ends_its_mirror_retries(store: Store) -> None:
    await put(
        store,
        a_job(state=JobState.MIRRORING, completed_at=NOW, next_run_at=NOW + 60),
        a_job("video_2", state=JobState.RUNNING),  # not finished: stays
    )
    async with store.begin() as tx:
        await tx.hide_job(ACCOUNT, "video_1", NOW + 1)
        await tx.hide_job(ACCOUNT, "video_2", NOW + 1)
    hidden = await get(store, "video_1", include_deleted=True)
    assert hidden is not None and hidden.deleted_at == NOW + 1
    assert hidden.state is JobState.COMPLETED and hidden.next_run_at is None
    assert await get(store, "video_2") is not None


async def test_a_mirror_restart_loses_to_a_concurrent_change(store: Store) -> None:
    failed = JobResult(upstream_url="u", mirror_status=MirrorStatus.FAILED)
    await put(store, a_job(state=JobState.COMPLETED, completed_at=NOW, result=failed))
    read = await get(store, "video_1")
    assert read is not None
    pending = replace(failed, mirror_status=MirrorStatus.PENDING)
    async with store.begin() as tx:
        stale = replace(read, updated_at=read.updated_at - 1)
        assert not await tx.restart_mirror(stale, pending, NOW + 5)
        assert await tx.restart_mirror(read, pending, NOW + 5)
    job = await get(store, "video_1")
    assert job is not None and job.state is JobState.MIRRORING and job.result == pending
    assert job.next_run_at == NOW + 5


async def test_totals_and_counts_that_caps_read(store: Store) -> None:
    await put(
        store,
        a_job("video_1", active_provider="local", state=JobState.SUBMITTING),
        a_job("video_2", active_provider="local", state=JobState.RUNNING, upstream_id="up_2"),
        a_job("video_3", active_provider="other", upstream_id="up_3"),
        a_job("video_4", state=JobState.COMPLETED, next_run_at=None, upstream_id="up_4"),
        a_job("video_5", account_id=OTHER),
    )
    async with store.reading() as tx:
        assert await tx.in_flight_totals(ACCOUNT) == (3, 12)
        assert await tx.count_occupying("local", "video_9") == 2
        assert await tx.count_occupying("local", "video_1") == 1
        assert await tx.count_submitting("local", "video_9") == 1
        assert await tx.active_upstream_ids("local") == {"up_2"}
    record = AmbiguousRecord("video_1", 1, "local", "local", "up_9", NOW, "unknown", "n")
    async with store.begin() as tx:
        await tx.record_ambiguous(record, NOW)
    async with store.reading() as tx:
        assert await tx.known_upstream_ids(["up_2", "up_4", "up_9", "up_x"]) == {
            "up_2",
            "up_4",
            "up_9",
        }


async def test_events_are_kept_in_order(store: Store) -> None:
    await put(store, a_job())
    async with store.begin() as tx:
        await tx.record_event("video_1", 1, Event("video.queued", PublicStatus.QUEUED, 0), NOW)
        done = Event("video.completed", PublicStatus.COMPLETED, 100)
        await tx.record_event("video_1", 2, done, NOW + 1)
        await tx.wake("video_1")
    async with store.reading() as tx:
        after_one = await tx.events_after("video_1", 1)
        assert [e.seq for e in await tx.events_after("video_1", 0)] == [1, 2]
    assert [(e.seq, e.event, e.created_at) for e in after_one] == [(2, done, NOW + 1)]


async def test_leases_renew_release_and_set_the_next_wake_up(store: Store) -> None:
    await put(store, a_job(next_run_at=NOW + 100), a_job("video_2", next_run_at=NOW - 1))
    assert await store.count_active() == 2
    assert await store.next_wakeup() == NOW - 1
    await store.claim_due("w1", limit=5, lease_ms=1000, now=NOW)
    assert await store.next_wakeup() == NOW + 100  # the free job's wake-up
    assert await store.renew_leases("w1", ["video_2"], 5000, NOW) == 1
    assert await store.renew_leases("w2", ["video_2"], 5000, NOW) == 0
    await store.claim_due("w1", limit=5, lease_ms=1000, now=NOW + 200)
    assert await store.next_wakeup() == NOW + 1200  # video_1's lease, now held
    assert await store.release_leases("w1") == 2
    assert await store.next_wakeup() == NOW - 1


async def test_a_cooldown_keeps_its_latest_end(store: Store) -> None:
    await store.start_cooldown("local:x", NOW + 60_000, "429", NOW)
    await store.start_cooldown("local:x", NOW + 10_000, "earlier", NOW)
    assert (await store.list_cooling(NOW)).get("local:x") == NOW + 60_000
    assert (await store.list_cooling(NOW + 60_000)).get("local:x") is None
    assert (await store.list_cooling(NOW)).get("other:y") is None


async def test_cooldowns_are_listed_while_in_force(store: Store) -> None:
    await store.start_cooldown("fal:fal:a", NOW + 60_000, "429", NOW)
    await store.start_cooldown("replicate:replicate:b", NOW + 5_000, "429", NOW)
    assert await store.list_cooling(NOW) == {
        "fal:fal:a": NOW + 60_000,
        "replicate:replicate:b": NOW + 5_000,
    }
    assert await store.list_cooling(NOW + 5_000) == {"fal:fal:a": NOW + 60_000}


async def test_a_provider_call_wakes_its_running_job_once_and_hands_over_its_video(
    store: Store,
) -> None:
    running = a_job(
        "video_run", state=JobState.RUNNING, upstream_id="up_1", next_run_at=NOW + 300_000
    )
    queued = a_job("video_q", state=JobState.QUEUED, next_run_at=NOW + 300_000)
    await put(store, running, queued)
    pushed = JobResult(upstream_url="https://v.example/r.mp4", content_type="video/mp4")
    async with store.begin() as tx:
        # a project-wide call names the upstream job only: it finds the job running it
        assert await tx.running_job_for("up_1") == "video_run"
        assert await tx.running_job_for("up_other") is None
        assert await tx.record_delivery("msg_1", "replicate", "video_run", NOW)
        assert not await tx.poll_now("video_run", "up_other", NOW)  # another attempt's
        assert not await tx.poll_now("video_q", "up_1", NOW)  # not running
        assert await tx.poll_now("video_run", "up_1", NOW, pushed)
    job = await get(store, "video_run")
    assert job is not None and job.next_run_at == NOW and job.result == pushed
    async with store.begin() as tx:
        # a replay of the same delivery is recognised; an unseen one is not
        assert not await tx.record_delivery("msg_1", "replicate", "video_run", NOW + 1)
        assert await tx.record_delivery("msg_2", "replicate", "video_run", NOW + 1)
    async with store.begin() as tx:
        # delivery ids are forgotten once a replay would be refused on its timestamp
        assert await tx.record_delivery("msg_1", "replicate", "video_run", NOW + KEEP_MS + 2)


async def test_a_key_finds_its_account_scopes_and_flags(store: Store) -> None:
    async with store.reading() as tx:
        info = await tx.lookup_key(API_KEY, NOW)
        assert info is not None and (info.account_id, info.scopes) == (ACCOUNT, ("jobs:read",))
        assert await tx.lookup_key(API_KEY + "x", NOW) is None
        assert await tx.get_flags(ACCOUNT) == FLAGS
        assert await tx.get_flags(OTHER) == {}


async def test_accounts_are_created_once_and_their_flags_merge(store: Store) -> None:
    async with store.begin() as tx:
        new = await tx.create_account("studio")
        assert new.startswith("acct_") and await tx.account_exists(new)
        assert await tx.ensure_account("acct_dev", "dev") is True
        assert await tx.ensure_account("acct_dev", "dev") is False
        assert await tx.set_flags(new, {"prc_opt_in": True}) == {"prc_opt_in": True}
        merged = await tx.set_flags(new, {"allowed_models": ["local"]})
    assert merged == {"prc_opt_in": True, "allowed_models": ["local"]}
    async with store.reading() as tx:
        assert not await tx.account_exists("acct_nobody")
        assert await tx.get_flags(new) == merged
        assert await tx.get_balance(new) == Balance(0, 0)


async def test_grants_add_and_remove_but_never_below_what_is_held(store: Store) -> None:
    async with store.begin() as tx:
        assert await tx.grant(ACCOUNT, 5_000, "top-up") == Balance(BALANCE + 5_000, 0)
        await tx.place_hold(ACCOUNT, "video_1", 100_000)
    for amount, refused in (
        (-6_000, PaymentRequired),
        (MAX_BALANCE, ValidationFailed),
    ):
        with pytest.raises(refused):
            async with store.begin() as tx:
                await tx.grant(ACCOUNT, amount, "refused")
    with pytest.raises(NotFound):
        async with store.begin() as tx:
            await tx.grant("acct_nobody", 1, "refused")
    async with store.begin() as tx:
        assert await tx.grant(ACCOUNT, -5_000, "take back") == Balance(BALANCE, 100_000)


async def test_keys_are_listed_revoked_and_expire(store: Store) -> None:
    async with store.begin() as tx:
        key = await tx.create_key(OTHER, scopes=["jobs:read", "admin"], name="ops")
        old = await tx.create_key(OTHER, name="old", expires_at=NOW - 1)
        await tx.ensure_key(OTHER, key, "again")  # already stored: no second row
        row = await tx.key_row(key)
    assert key.startswith("rg_") and len(key) > 40
    assert (row.account_id, row.name, row.prefix, row.scopes) == (
        OTHER,
        "ops",
        key[:10],
        ["jobs:read", "admin"],
    )
    assert key not in str(row.to_wire())  # only the prefix is ever shown again
    async with store.reading() as tx:
        assert {r.name for r in await tx.key_rows(OTHER)} == {"ops", "old"}
        assert await tx.lookup_key(old, NOW) is None  # expired
        found = await tx.lookup_key(key, NOW)
        assert found is not None and found.scopes == ("jobs:read", "admin")
    async with store.begin() as tx:
        assert await tx.revoke_key(row.id, ACCOUNT, NOW) is False  # another account's
        assert await tx.revoke_key(row.id, OTHER, NOW) is True
        assert await tx.revoke_key(row.id, None, NOW) is False  # already revoked
        assert await tx.revoke_key("key_nothing", None, NOW) is None
    async with store.reading() as tx:
        assert await tx.lookup_key(key, NOW) is None
        assert (await tx.key_row(key)).revoked_at == NOW


async def test_ambiguous_creates_are_listed_until_an_operator_resolves_them(
    store: Store,
) -> None:
    async with store.begin() as tx:
        for n in (1, 2):
            record = AmbiguousRecord(
                f"video_{n}", 1, "local", "local", f"up_{n}", NOW, "unknown", "x" * 600
            )
            await tx.record_ambiguous(record, NOW + n)
    async with store.reading() as tx:
        listed = await tx.list_ambiguous()
    assert {(r.job_id, r.upstream_id, r.created_at) for r in listed} == {
        ("video_1", "up_1", NOW + 1),
        ("video_2", "up_2", NOW + 2),
    }
    assert [len(r.note) for r in listed] == [500, 500]
    assert [r.id for r in listed] == sorted((r.id for r in listed), reverse=True)
    first = listed[0]
    async with store.begin() as tx:
        assert await tx.resolve_ambiguous(first.id, "checked: not billed", NOW + 9)
        assert not await tx.resolve_ambiguous(first.id, "twice", NOW + 10)
        assert not await tx.resolve_ambiguous("amb_nothing", "?", NOW + 10)
    async with store.reading() as tx:
        assert [r.id for r in await tx.list_ambiguous()] == [listed[1].id]
        everything = await tx.list_ambiguous(include_resolved=True, limit=1)
    assert [(r.id, r.resolved_at, r.resolution) for r in everything] == [
        (first.id, NOW + 9, "checked: not billed")
    ]


async def test_job_lists_page_filter_and_keep_to_their_account(store: Store) -> None:
    await put(
        store,
        a_job("video_01"),
        a_job("video_02", state=JobState.COMPLETED, next_run_at=None, completed_at=NOW),
        a_job("video_03", state=JobState.MIRRORING, completed_at=NOW, delivered_by="other"),
        a_job("video_04", state=JobState.MIRRORING),  # still being stored: in progress
        a_job("video_05", deleted_at=NOW),
        a_job("video_06", account_id=OTHER),
    )

    async def ids(**kw: object) -> list[str]:
        async with store.reading() as tx:
            return [j.id for j in await tx.list_jobs(ACCOUNT, **kw)]  # type: ignore[arg-type]

    assert await ids(limit=10) == ["video_04", "video_03", "video_02", "video_01"]
    assert await ids(limit=2, after="video_03") == ["video_02", "video_01"]
    assert await ids(limit=2, order="asc", after="video_01") == ["video_02", "video_03"]
    assert await ids(limit=10, status=PublicStatus.COMPLETED) == ["video_03", "video_02"]
    assert await ids(limit=10, status=PublicStatus.IN_PROGRESS) == ["video_04"]
    assert await ids(limit=10, model="other") == ["video_03"]
    assert "video_05" in await ids(limit=10, include_deleted=True)


async def test_usage_counts_what_was_delivered_per_day_and_model(store: Store) -> None:
    day = 86_400_000
    await put(
        store,
        a_job(
            "video_1",
            state=JobState.COMPLETED,
            completed_at=NOW,
            delivered_by="local",
            units_consumed=4,
            cost=400,
            next_run_at=None,
        ),
        a_job(
            "video_2",
            state=JobState.MIRRORING,
            completed_at=NOW + 1,
            delivered_by="local",
            units_consumed=2,
            cost=200,
        ),  # delivered; its copy is still retried
        a_job("video_3", state=JobState.FAILED, completed_at=NOW, cost=0, next_run_at=None),
        a_job(
            "video_4",
            state=JobState.COMPLETED,
            completed_at=NOW + day,
            delivered_by="other",
            units_consumed=1,
            cost=50,
            next_run_at=None,
        ),
    )
    async with store.reading() as tx:
        rows = await tx.daily_usage(ACCOUNT, NOW - NOW % day, NOW - NOW % day + 2 * day)
    first = NOW // day
    assert [(r.day, r.model, r.jobs, r.seconds, r.cost) for r in rows] == [
        (first, "local", 2, 6, 600),
        (first + 1, "other", 1, 1, 50),
    ]


async def test_an_idempotency_key_is_held_completed_replayed_and_taken_over(store: Store) -> None:
    async def claim(owner: str, now: int, request: str = "h1") -> KeyRecord | None:
        async with store.begin() as tx:
            return await tx.claim_idempotency(
                ACCOUNT, "k1", request, owner=owner, now=now, lease_ms=1000, ttl_ms=86_400_000
            )

    assert await claim("a", NOW) is None  # ours
    held = await claim("b", NOW + 10)
    assert held is not None and held.state == "in_flight" and held.lease_expires_at == NOW + 1000
    assert await claim("b", NOW + 2000) is None  # a's lease ran out: taken over
    async with store.begin() as tx:
        assert not await tx.complete_idempotency(ACCOUNT, "k1", "a", 202, {"id": "x"})
        assert await tx.complete_idempotency(ACCOUNT, "k1", "b", 202, {"id": "video_9"})
    done = await claim("c", NOW + 5000)
    assert done is not None and (done.state, done.response_status) == ("done", 202)
    assert done.response_body == {"id": "video_9"}
    other = await claim("c", NOW + 5000, request="h2")
    assert other is not None and other.request_hash == "h1"  # reused for another request
    assert await claim("d", NOW + 86_400_001 + 5000) is None  # past its ttl: a new record


async def test_a_released_key_is_free_at_once(store: Store) -> None:
    async with store.begin() as tx:
        args = dict(owner="a", now=NOW, lease_ms=60_000, ttl_ms=86_400_000)
        assert await tx.claim_idempotency(ACCOUNT, "k2", "h", **args) is None  # type: ignore[arg-type]
        await tx.release_idempotency(ACCOUNT, "k2", "a")
    async with store.begin() as tx:
        again = await tx.claim_idempotency(
            ACCOUNT, "k2", "h", owner="b", now=NOW + 1, lease_ms=60_000, ttl_ms=86_400_000
        )
    assert again is None


# ── the submit in one call ──


def a_submission(
    job_id: str = "video_1", *, amount: int = 1_000, answer: StoredAnswer | None = None, **kw: Any
) -> JobSubmission:
    job = a_job(job_id, hold_id=f"hold_{job_id}", event_seq=1, **kw)
    return JobSubmission(
        job=job,
        hold_amount=amount,
        event=Event("video.queued", PublicStatus.QUEUED, 0),
        max_jobs=3,
        max_seconds=10,
        answer=answer,
    )


async def test_a_submit_writes_the_job_its_hold_and_its_first_event_at_once(
    store: Store,
) -> None:
    result = await store.submit(a_submission())
    assert result.outcome is SubmitOutcome.OK
    assert result.balance == Balance(BALANCE, 1_000)
    assert (result.jobs_in_flight, result.seconds_in_flight) == (1, 4)
    job = await get(store, "video_1")
    assert job == a_job("video_1", hold_id="hold_video_1", event_seq=1)
    async with store.reading() as tx:
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE, 1_000)
        assert await tx.in_flight_totals(ACCOUNT) == (1, 4)
        [event] = await tx.events_after("video_1", 0)
    assert (event.seq, event.event.type, event.created_at) == (1, "video.queued", NOW)
    async with store.begin() as tx:  # the hold is the job's: it captures once
        assert await tx.capture_hold("hold_video_1", 400)
        assert not await tx.capture_hold("hold_video_1", 400)
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE - 400, 0)


async def test_a_refused_submit_writes_nothing_and_says_why_with_the_numbers(
    store: Store,
) -> None:
    too_dear = await store.submit(a_submission(amount=BALANCE + 1))
    assert too_dear.outcome is SubmitOutcome.NOT_ENOUGH
    assert too_dear.balance == Balance(BALANCE, 0)
    for i in (1, 2):
        assert (await store.submit(a_submission(f"video_{i}"))).outcome is SubmitOutcome.OK
    # 8 s in flight of 10: a 4 s job passes the seconds cap
    over_seconds = await store.submit(a_submission("video_3"))
    assert over_seconds.outcome is SubmitOutcome.TOO_MANY_SECONDS
    assert (over_seconds.jobs_in_flight, over_seconds.seconds_in_flight) == (2, 8)
    short = replace(PARAMS, duration_seconds=1)
    assert (await store.submit(a_submission("video_3", params=short))).outcome == "ok"
    over_jobs = await store.submit(a_submission("video_4", params=short))
    assert over_jobs.outcome is SubmitOutcome.TOO_MANY_JOBS
    assert over_jobs.jobs_in_flight == 3
    nobody = await store.submit(a_submission("video_5", account_id="acct_nobody"))
    assert nobody.outcome is SubmitOutcome.NO_ACCOUNT
    for missing in ("video_4", "video_5"):
        assert await get(store, missing, include_deleted=True) is None
    async with store.reading() as tx:
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE, 3_000)
        assert await tx.in_flight_totals(ACCOUNT) == (3, 9)
        assert await tx.events_after("video_4", 0) == []


async def test_a_submit_stores_its_answer_only_while_it_holds_the_key(store: Store) -> None:
    async with store.begin() as tx:
        for key in ("k1", "k2"):
            await tx.claim_idempotency(
                ACCOUNT, key, "h", owner="me", now=NOW, lease_ms=1_000, ttl_ms=10_000
            )
    body = {"id": "video_1", "status": "queued"}
    ok = await store.submit(a_submission(answer=StoredAnswer("k1", "me", 202, body)))
    assert ok.outcome is SubmitOutcome.OK
    taken = await store.submit(a_submission("video_2", answer=StoredAnswer("k2", "you", 202, {})))
    assert taken.outcome is SubmitOutcome.KEY_TAKEN
    assert await get(store, "video_2") is None
    async with store.begin() as tx:
        replay = await tx.claim_idempotency(
            ACCOUNT, "k1", "h", owner="other", now=NOW + 1, lease_ms=1_000, ttl_ms=10_000
        )
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE, 1_000)
    assert replay is not None and (replay.state, replay.response_status) == ("done", 202)
    assert replay.response_body == body


async def test_concurrent_submits_are_counted_one_after_another(store: Store) -> None:
    subs = [
        a_submission(f"video_{i}", params=replace(PARAMS, duration_seconds=1)) for i in range(8)
    ]
    results = await asyncio.gather(*(store.submit(s) for s in subs))
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["ok"] * 3 + ["too_many_jobs"] * 5
    async with store.reading() as tx:
        assert await tx.in_flight_totals(ACCOUNT) == (3, 3)
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE, 3_000)


async def test_in_flight_counts_follow_every_way_a_job_starts_and_stops(store: Store) -> None:
    """The SQL store keeps the counts with triggers; whatever path finishes or revives a
    job, they equal a count of the account's jobs with a wake-up."""
    await store.submit(a_submission("video_1"))
    await put(
        store,
        a_job("video_2"),
        a_job("video_3", state=JobState.COMPLETED, next_run_at=None, completed_at=NOW),
        a_job("video_4", account_id=OTHER),
    )
    async with store.reading() as tx:
        assert await tx.in_flight_totals(ACCOUNT) == (2, 8)
        assert await tx.in_flight_totals(OTHER) == (1, 4)
    async with store.begin() as tx:  # canceled on the spot
        assert await tx.cancel_if_queued(ACCOUNT, "video_2", NOW + 1) is not None
    [claimed] = await store.claim_due("w", limit=1, lease_ms=60_000, now=NOW + 2)
    done = replace(claimed, state=JobState.COMPLETED, next_run_at=None, completed_at=NOW + 3)
    polled = replace(claimed, next_run_at=NOW + 10)
    async with store.begin() as tx:  # a step that only moves the wake-up changes nothing
        assert await tx.write_step(claimed, polled, "w", release=False)
    async with store.reading() as tx:
        assert await tx.in_flight_totals(ACCOUNT) == (1, 4)
    async with store.begin() as tx:
        assert await tx.write_step(polled, done, "w", release=True)
    async with store.reading() as tx:
        assert await tx.in_flight_totals(ACCOUNT) == (0, 0)
    # a finished job whose copy is retried is in flight again until the copy is done
    failed = JobResult(upstream_url="u", mirror_status=MirrorStatus.FAILED)
    finished = await get(store, "video_3")
    assert finished is not None
    async with store.begin() as tx:
        assert await tx.restart_mirror(finished, failed, NOW + 4)
    async with store.reading() as tx:
        assert await tx.in_flight_totals(ACCOUNT) == (1, 4)
    async with store.begin() as tx:
        await tx.hide_job(ACCOUNT, "video_3", NOW + 5)
        assert await tx.in_flight_totals(ACCOUNT) == (0, 0)
        assert await tx.in_flight_totals(OTHER) == (1, 4)


# ── a step's write in one call (store.step) ──────────────────────────────────────────


async def write_step_by(way: str, store: Store, step: StepWrite) -> bool:
    """``one_call``: ``Store.record_step`` (PostgreSQL's function, SQLite's writer
    thread); ``in_tx``: the same write statement by statement in a transaction."""
    if way == "one_call":
        return await store.record_step(step)
    async with store.begin() as tx:
        return await record_step_in(tx, step)


STEP_WAYS = pytest.mark.parametrize("way", ["one_call", "in_tx"])
DELIVERED = Event("video.completed", PublicStatus.COMPLETED, 100)


@STEP_WAYS
async def test_a_step_writes_its_change_its_event_and_settles_its_hold_together(
    store: Store, way: str
) -> None:
    assert (await store.submit(a_submission(amount=4_000))).outcome is SubmitOutcome.OK
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW)
    done = replace(
        claimed,
        state=JobState.COMPLETED,
        progress=100,
        next_run_at=None,
        completed_at=NOW + 7,
        units_consumed=3,
        cost=3_000,
        event_seq=2,
        result=JobResult(upstream_url="https://v.example/r.mp4", duration_seconds=3.0),
    )
    step = StepWrite(claimed, done, "w1", True, DELIVERED, 3_000, NOW + 7)
    assert await write_step_by(way, store, step)
    assert await get(store, "video_1") == replace(
        done, updated_at=NOW + 7, lease_owner=None, lease_expires_at=None
    )
    async with store.reading() as tx:
        events = await tx.events_after("video_1", 1)
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE - 3_000, 0)
        assert await tx.in_flight_totals(ACCOUNT) == (0, 0)
    async with store.begin() as tx:
        assert not await tx.release_hold("hold_video_1")  # settled, exactly once
    assert [(e.seq, e.event, e.created_at) for e in events] == [(2, DELIVERED, NOW + 7)]


@STEP_WAYS
async def test_a_step_whose_lease_was_lost_writes_nothing_at_all(store: Store, way: str) -> None:
    assert (await store.submit(a_submission(amount=4_000))).outcome is SubmitOutcome.OK
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=1_000, now=NOW)
    [taken] = await store.claim_due("w2", limit=1, lease_ms=1_000, now=NOW + 5_000)
    failed = replace(claimed, state=JobState.FAILED, next_run_at=None, event_seq=2)
    event = Event("video.failed", PublicStatus.FAILED, 0)
    assert not await write_step_by(
        way, store, StepWrite(claimed, failed, "w1", True, event, 0, NOW)
    )
    assert await get(store, "video_1") == taken
    async with store.reading() as tx:
        assert await tx.events_after("video_1", 1) == []
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE, 4_000)


@STEP_WAYS
async def test_a_step_keeps_a_sooner_wake_up_set_while_it_ran(store: Store, way: str) -> None:
    job = a_job(
        state=JobState.RUNNING, upstream_id="up_1", next_run_at=NOW - 1, running_since=NOW - 10
    )
    await put(store, job)
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW)
    async with store.begin() as tx:
        assert await tx.poll_now("video_1", "up_1", NOW + 5, None)
    later = replace(claimed, next_run_at=NOW + 300_000, poll_count=1)
    assert await write_step_by(way, store, StepWrite(claimed, later, "w1", True, None, None, NOW))
    after = await get(store, "video_1")
    assert after is not None and (after.next_run_at, after.poll_count) == (NOW + 5, 1)
    # held on: the lease stays, and a schedule nobody moved is written as it is
    [again] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW + 10)
    sooner = replace(again, next_run_at=NOW + 60_000, progress=40)
    assert await write_step_by(way, store, StepWrite(again, sooner, "w1", False, None, None, NOW))
    after = await get(store, "video_1")
    assert after is not None and (after.next_run_at, after.progress) == (NOW + 60_000, 40)
    assert after.lease_owner == "w1"


@STEP_WAYS
@pytest.mark.parametrize("charge", [0, 2_500, 4_000, 99_999])
async def test_a_step_settles_a_hold_as_the_ledger_does(
    store: Store, way: str, charge: int
) -> None:
    assert (await store.submit(a_submission(amount=4_000))).outcome is SubmitOutcome.OK
    [claimed] = await store.claim_due("w1", limit=1, lease_ms=30_000, now=NOW)
    end = replace(claimed, state=JobState.FAILED, next_run_at=None)
    assert await write_step_by(way, store, StepWrite(claimed, end, "w1", True, None, charge, NOW))
    async with store.reading() as tx:
        assert await tx.get_balance(ACCOUNT) == Balance(BALANCE - min(charge, 4_000), 0)
