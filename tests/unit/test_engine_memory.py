"""The engine on the in-memory store: whole jobs, step by step, on a driven clock.

No database and no sleeping: time jumps to the next wake-up. The store's
behaviour is the one tests/integration/test_store_contract.py holds the SQL store
to; the provider is the scripted one (tests/scripted.py), the video a real MP4.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelgate.catalog import Catalog, load_catalog
from reelgate.config import Settings
from reelgate.engine.events import EventHub
from reelgate.engine.steps import Stepper
from reelgate.job import Event, JobParams, JobState, PublicStatus
from reelgate.providers.registry import ProviderRegistry
from reelgate.storage import open_storage
from reelgate.store.ledger import Balance
from reelgate.store.memory import MemoryStore
from tests.scripted import ScriptedProvider
from tests.values import NOW as START
from tests.values import Clock, a_job

ACCOUNT = "acct_1"
BALANCE = 1_000_000
LEASE_MS = 30_000
SMALL = JobParams(duration_seconds=1, resolution="360p", aspect_ratio="16:9", width=640, height=360)


@dataclass
class Engine:
    store: MemoryStore
    clock: Clock
    provider: ScriptedProvider
    catalog: Catalog
    stepper: Stepper
    next_id: int = 0

    def stepper_for(self, worker_id: str) -> Stepper:
        return Stepper(
            store=self.store,
            catalog=self.catalog,
            providers=self.stepper.providers,
            storage=self.stepper.storage,
            settings=self.stepper.settings,
            hub=self.stepper.hub,
            worker_id=worker_id,
            clock=self.clock,
            uniform=lambda lo, hi: hi,
        )

    async def submit(self, prompt: str, *chain: str, deadline_s: int = 600) -> str:
        self.next_id += 1
        job_id = f"video_{self.next_id:04d}"
        now = self.clock()
        chain = chain or ("s-primary",)
        price = max(self.catalog.get(m).price_for("360p") for m in chain)
        async with self.store.begin() as tx:
            hold = await tx.place_hold(ACCOUNT, job_id, price * 1)
            job = a_job(
                job_id,
                account_id=ACCOUNT,
                model=chain[0],
                chain=tuple(chain),
                prompt=prompt,
                params=SMALL,
                deadline_at=now + deadline_s * 1000,
                created_at=now,
                updated_at=now,
                next_run_at=now,
                event_seq=1,
                hold_id=hold,
            )
            await tx.insert_job(job)
            await tx.record_event(job_id, 1, Event("video.queued", PublicStatus.QUEUED, 0), now)
        return job_id

    async def run(self, *, max_steps: int = 400) -> None:
        """Step every due job; when none is due, jump the clock to the next wake-up."""
        for _ in range(max_steps):
            due = await self.store.claim_due(
                self.stepper.worker_id, limit=8, lease_ms=LEASE_MS, now=self.clock()
            )
            if not due:
                wake = await self.store.next_wakeup()
                if wake is None:
                    return
                self.clock.now = max(self.clock.now + 1, wake)
                continue
            for job in due:
                await self.stepper.advance(job)
        raise AssertionError(f"still stepping after {max_steps} rounds")


@pytest.fixture
async def engine(tmp_path: Path, tiny_video: Path) -> Engine:
    clock = Clock()
    store = MemoryStore(clock)
    async with store.begin() as tx:
        await tx.create_account("test", ACCOUNT)
        await tx.grant(ACCOUNT, BALANCE, "test grant")
    provider = ScriptedProvider(video=tiny_video)
    local = load_catalog().get("local")
    catalog = Catalog(
        dataclasses.replace(
            local,
            id=model_id,
            provider="scripted",
            upstream_model=model_id,
            poll_interval_seconds=2.0,
            typical_seconds=20.0,
        )
        for model_id in ("s-primary", "s-backup")
    )
    stepper = Stepper(
        store=store,
        catalog=catalog,
        providers=ProviderRegistry(providers={"scripted": provider}),
        storage=open_storage(
            (tmp_path / "videos").as_uri(),
            public_base_url="http://testserver",
            signing_secret=b"s" * 32,
        ),
        settings=Settings(data_dir=tmp_path / "data", mirror_quick_retries=1),
        hub=EventHub(),
        worker_id="w1",
        clock=clock,
        uniform=lambda lo, hi: hi,
    )
    return Engine(store, clock, provider, catalog, stepper)


def price(engine: Engine, model: str) -> int:
    return engine.catalog.get(model).price_for("360p")


async def test_a_job_runs_to_completed_and_is_billed_once(engine: Engine) -> None:
    job_id = await engine.submit("a fox")
    await engine.run()
    job = engine.store.job(job_id)
    assert job.state is JobState.COMPLETED and job.progress == 100
    assert job.result is not None and job.result.key == f"videos/{ACCOUNT}/{job_id}.mp4"
    assert job.units_consumed == 1 and job.cost == price(engine, "s-primary")
    assert engine.store.balance(ACCOUNT).balance == BALANCE - job.cost
    assert engine.store.balance(ACCOUNT).held == 0
    kinds = [e.event.type for e in engine.store.events(job_id)]
    assert kinds[0] == "video.queued" and kinds[1] == "video.in_progress"
    assert kinds[-1] == "video.completed" and "video.progress" in kinds
    seqs = [e.seq for e in engine.store.events(job_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert engine.clock.now > START  # time was driven, not waited for


async def test_quota_falls_back_and_cools_the_deployment_for_the_next_job(
    engine: Engine,
) -> None:
    first = await engine.submit("quota please", "s-primary", "s-backup")
    await engine.run()
    job = engine.store.job(first)
    assert job.state is JobState.COMPLETED and job.delivered_by == "s-backup"
    assert [a.outcome.value for a in job.attempts] == ["quota", "completed"]
    creates = engine.provider.create_calls
    second = await engine.submit("a calm sea", "s-primary", "s-backup")
    await engine.run()
    again = engine.store.job(second)
    assert again.delivered_by == "s-backup"
    assert again.attempts[0].error is not None and again.attempts[0].error.code == "cooldown"
    assert engine.provider.create_calls == creates + 1  # s-primary was not asked


async def test_a_failed_upstream_job_is_polled_once_then_falls_back(engine: Engine) -> None:
    job_id = await engine.submit("jobfails", "s-primary", "s-backup")
    await engine.run()
    job = engine.store.job(job_id)
    assert job.state is JobState.FAILED and job.cost == 0
    assert engine.provider.polls == {"up_0": 1, "up_1": 1}
    assert engine.store.balance(ACCOUNT) == Balance(balance=BALANCE, held=0)


async def test_a_job_that_never_finishes_times_out_at_its_deadline_unbilled(
    engine: Engine,
) -> None:
    job_id = await engine.submit("never", deadline_s=120)
    await engine.run()
    job = engine.store.job(job_id)
    assert job.state is JobState.FAILED and job.error is not None
    assert job.error.code == "timeout" and job.completed_at == START + 120_000
    assert engine.provider.canceled == ["up_0"]
    assert engine.store.balance(ACCOUNT).balance == BALANCE


async def test_a_worker_that_dies_after_its_create_is_replaced_without_a_second_job(
    engine: Engine,
) -> None:
    job_id = await engine.submit("crash during submit")
    [claimed] = await engine.store.claim_due("doomed", limit=1, lease_ms=LEASE_MS, now=START)
    doomed = engine.stepper_for("doomed")

    class Crash(Exception):
        pass

    original = engine.provider.create

    async def create_then_die(request):  # type: ignore[no-untyped-def]
        await original(request)
        raise Crash

    engine.provider.create = create_then_die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await doomed.advance(claimed)
    engine.provider.create = original  # type: ignore[method-assign]
    stuck = engine.store.job(job_id)
    assert stuck.state is JobState.SUBMITTING and stuck.lease_owner == "doomed"
    await engine.run()  # the lease runs out on the driven clock; w1 takes over
    job = engine.store.job(job_id)
    assert job.state is JobState.COMPLETED
    assert len(engine.provider.creates) == 1 and engine.provider.create_calls == 2


async def test_a_stale_worker_cannot_settle_a_job_twice(engine: Engine) -> None:
    job_id = await engine.submit("a fox")
    await engine.run()
    done = engine.store.job(job_id)
    charged = engine.store.balance(ACCOUNT).balance
    late = engine.stepper_for("late")  # holds a copy of the job from before it finished
    stale = dataclasses.replace(done, state=JobState.MIRRORING, lease_owner="late")
    await late.advance(stale)
    assert engine.store.job(job_id) == done
    assert engine.store.balance(ACCOUNT).balance == charged


async def test_a_cancel_request_releases_the_hold_and_cancels_upstream(engine: Engine) -> None:
    job_id = await engine.submit("never")
    for _ in range(3):  # submitted and polled a little
        [job] = await engine.store.claim_due("w1", limit=1, lease_ms=LEASE_MS, now=engine.clock())
        await engine.stepper.advance(job)
        engine.clock.now = engine.store.job(job_id).next_run_at or engine.clock.now
    async with engine.store.begin() as tx:
        await tx.mark_cancel_requested(ACCOUNT, job_id, engine.clock())
    await engine.run()
    job = engine.store.job(job_id)
    assert job.state is JobState.CANCELED and job.cost == 0
    assert engine.provider.canceled == ["up_0"]
    assert engine.store.balance(ACCOUNT).held == 0


async def test_the_first_poll_moves_to_when_the_models_jobs_actually_finish(
    engine: Engine,
) -> None:
    """The scripted provider is done at every first look. Each such job teaches half of
    its look, so the first look of later jobs comes sooner, down to half a second."""
    firsts = []
    for i in range(8):
        job_id = await engine.submit(f"learn {i}")
        [job] = await engine.store.claim_due(
            engine.stepper.worker_id, limit=1, lease_ms=LEASE_MS, now=engine.clock()
        )
        await engine.stepper.advance(job)  # the create: running, its first look scheduled
        running = engine.store.job(job_id)
        assert running.state is JobState.RUNNING and running.running_since is not None
        firsts.append((running.next_run_at or 0) - running.running_since)
        await engine.run()
        assert engine.store.job(job_id).state is JobState.COMPLETED
        assert engine.provider.polls[running.upstream_id or ""] == 1
    # nothing learned: the poll interval (2 s), not the catalog's 20 s; then the median
    # of what the seen jobs taught (half of each look), with the jitter's 10 % at its top
    assert firsts[:2] == [2_200, 1_210]
    assert all(b <= a for a, b in itertools.pairwise(firsts))
    assert 500 <= firsts[-1] <= 550  # never sooner than half a second (plus jitter)
