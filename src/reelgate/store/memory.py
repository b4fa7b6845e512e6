"""The store in memory: the twin of ``store.sql`` for engine tests without a database.

Held to the same contract tests as the SQL store. A transaction works on a
copy of the state and swaps it in on commit, so readers only ever see committed
data and an exception rolls everything back; transactions run one at a time
(like SQLite's single writer). Time comes from ``clock`` (the tests drive it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from reelgate.catalog.lifecycle import Unavailable
from reelgate.errors import NotFound
from reelgate.ids import new_id
from reelgate.job import ACTIVE_STATES, Event, Job, JobResult, JobState, PublicStatus
from reelgate.store import hooks
from reelgate.store.accounts import ALL_SCOPES, KeyInfo, KeyRow, hash_key, new_key
from reelgate.store.ambiguous import AmbiguousCreate
from reelgate.store.base import AmbiguousRecord, Store
from reelgate.store.codec import changed_fields
from reelgate.store.events import StoredEvent
from reelgate.store.idempotency import KeyRecord
from reelgate.store.jobs import now_ms
from reelgate.store.ledger import Balance, check_grant, not_enough
from reelgate.store.step import StepWrite, record_step_in
from reelgate.store.submit import JobSubmission, SubmitOutcome, SubmitResult, check_submission
from reelgate.store.usage import DAY_MS, UsageDay

__all__ = ["Hold", "LedgerEntry", "MemoryStore", "MemoryTx"]


@dataclass(frozen=True)
class Hold:
    id: str
    account_id: str
    job_id: str
    amount: int
    status: str = "open"
    captured: int = 0


@dataclass(frozen=True)
class LedgerEntry:
    account_id: str
    kind: str
    balance_delta: int
    held_delta: int
    hold_id: str | None


@dataclass(frozen=True)
class _KeyState:
    request_hash: str
    created_at: int
    owner: str | None
    lease_expires_at: int | None
    status: int | None = None
    body: Any = None


@dataclass
class _State:
    jobs: dict[str, Job] = field(default_factory=dict)
    accounts: dict[str, Balance] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    events: dict[str, list[StoredEvent]] = field(default_factory=dict)
    ambiguous: list[AmbiguousCreate] = field(default_factory=list)
    cooldowns: dict[str, tuple[int, str]] = field(default_factory=dict)
    unavailable: dict[str, Unavailable] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], _KeyState] = field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, KeyRow] = field(default_factory=dict)
    """API keys by their hash."""
    deliveries: dict[str, int] = field(default_factory=dict)
    """Inbound webhook delivery ids, with when they came."""

    def copy(self) -> _State:
        return _State(
            jobs=dict(self.jobs),
            accounts=dict(self.accounts),
            names=dict(self.names),
            holds=dict(self.holds),
            ledger=list(self.ledger),
            events={k: list(v) for k, v in self.events.items()},
            ambiguous=list(self.ambiguous),
            cooldowns=dict(self.cooldowns),
            unavailable=dict(self.unavailable),
            idempotency=dict(self.idempotency),
            flags={k: dict(v) for k, v in self.flags.items()},
            keys=dict(self.keys),
            deliveries=dict(self.deliveries),
        )


class MemoryTx:
    def __init__(self, state: _State, clock: Callable[[], int], *, writable: bool) -> None:
        self.s = state
        self.clock = clock
        self.writable = writable
        self.woken: list[str] = []

    def _write(self) -> _State:
        if not self.writable:
            raise RuntimeError("a write through a read-only store connection")
        return self.s

    # ── jobs ──

    async def get_job(
        self, job_id: str, account_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        job = self.s.jobs.get(job_id)
        if job is None or (account_id is not None and job.account_id != account_id):
            return None
        if job.deleted_at is not None and not include_deleted:
            return None
        return job

    async def insert_job(self, job: Job) -> None:
        s = self._write()
        if job.id in s.jobs:
            raise ValueError(f"job {job.id} exists")
        s.jobs[job.id] = job

    async def write_step(
        self, before: Job, after: Job, worker_id: str, *, release: bool, now: int | None = None
    ) -> bool:
        s = self._write()
        current = s.jobs.get(before.id)
        if current is None or current.lease_owner != worker_id:
            return False
        changed = changed_fields(before, after)
        changed["updated_at"] = self.clock() if now is None else now
        if release:
            changed.update(lease_owner=None, lease_expires_at=None)
        later = changed.get("next_run_at")
        bumped = current.next_run_at is not None and current.next_run_at != before.next_run_at
        if later is not None and bumped and current.next_run_at < later:
            changed["next_run_at"] = current.next_run_at  # made due sooner meanwhile
        s.jobs[before.id] = replace(current, **changed)
        return True

    def _owned(self, account_id: str, job_id: str) -> Job | None:
        job = self.s.jobs.get(job_id)
        return job if job is not None and job.account_id == account_id else None

    async def cancel_if_queued(self, account_id: str, job_id: str, now: int) -> Job | None:
        s = self._write()
        job = self._owned(account_id, job_id)
        if job is None or job.state is not JobState.QUEUED:
            return None
        if job.lease_owner is not None and not (
            job.lease_expires_at is not None and job.lease_expires_at < now
        ):
            return None
        canceled = replace(
            job,
            state=JobState.CANCELED,
            completed_at=now,
            next_run_at=None,
            updated_at=now,
            units_consumed=0,
            cost=0,
            event_seq=job.event_seq + 1,
        )
        s.jobs[job_id] = canceled
        return canceled

    async def mark_cancel_requested(self, account_id: str, job_id: str, now: int) -> None:
        s = self._write()
        job = self._owned(account_id, job_id)
        if job is None or job.state not in ACTIVE_STATES or job.completed_at is not None:
            return
        s.jobs[job_id] = replace(job, cancel_requested=True, next_run_at=now, updated_at=now)

    async def hide_job(self, account_id: str, job_id: str, now: int) -> None:
        s = self._write()
        job = self._owned(account_id, job_id)
        if job is None or (job.completed_at is None and job.next_run_at is not None):
            return
        state = JobState.COMPLETED if job.state is JobState.MIRRORING else job.state
        s.jobs[job_id] = replace(job, deleted_at=now, updated_at=now, next_run_at=None, state=state)

    async def set_pinned(self, account_id: str, job_id: str, pinned: bool, now: int) -> bool:
        s = self._write()
        job = self._owned(account_id, job_id)
        if job is None or job.completed_at is None or job.expired_at is not None:
            return False
        s.jobs[job_id] = replace(job, pinned_at=now if pinned else None, updated_at=now)
        return True

    async def restart_mirror(self, job: Job, result: JobResult, now: int) -> bool:
        s = self._write()
        current = s.jobs.get(job.id)
        if (
            current is None
            or current.state not in (JobState.COMPLETED, JobState.MIRRORING)
            or current.updated_at != job.updated_at
            or current.expired_at is not None
        ):
            return False
        s.jobs[job.id] = replace(
            current,
            state=JobState.MIRRORING,
            retries=0,
            next_run_at=now,
            updated_at=now,
            result=result,
        )
        return True

    async def in_flight_totals(self, account_id: str) -> tuple[int, int]:
        mine = [
            j
            for j in self.s.jobs.values()
            if j.account_id == account_id and j.next_run_at is not None
        ]
        return len(mine), sum(j.params.duration_seconds for j in mine)

    async def lock_provider(self, provider: str) -> None:
        self._write()  # transactions already run one at a time

    async def count_occupying(self, provider: str, except_job: str) -> int:
        return sum(
            1 for j in self.s.jobs.values() if j.active_provider == provider and j.id != except_job
        )

    async def count_submitting(self, provider: str, except_job: str) -> int:
        return sum(
            1
            for j in self.s.jobs.values()
            if j.active_provider == provider
            and j.state is JobState.SUBMITTING
            and j.id != except_job
        )

    async def active_upstream_ids(self, provider: str) -> set[str]:
        return {
            j.upstream_id
            for j in self.s.jobs.values()
            if j.active_provider == provider and j.upstream_id is not None
        }

    async def known_upstream_ids(self, upstream_ids: Sequence[str]) -> set[str]:
        wanted = set(upstream_ids)
        used = {j.upstream_id for j in self.s.jobs.values() if j.upstream_id in wanted}
        listed = {r.upstream_id for r in self.s.ambiguous if r.upstream_id in wanted}
        return {u for u in used | listed if u is not None}

    async def list_jobs(
        self,
        account_id: str,
        *,
        limit: int,
        after: str | None = None,
        status: PublicStatus | None = None,
        model: str | None = None,
        order: str = "desc",
        include_deleted: bool = False,
    ) -> list[Job]:
        ascending = order == "asc"
        found = [
            j
            for j in self.s.jobs.values()
            if j.account_id == account_id
            and (include_deleted or j.deleted_at is None)
            and (status is None or j.status is status)
            and (model is None or model in (j.model, j.delivered_by))
            and (after is None or (j.id > after if ascending else j.id < after))
        ]
        return sorted(found, key=lambda j: j.id, reverse=not ascending)[:limit]

    async def daily_usage(self, account_id: str, start_ms: int, end_ms: int) -> list[UsageDay]:
        totals: dict[tuple[int, str | None, str | None], list[int]] = {}
        for j in self.s.jobs.values():
            if j.account_id != account_id or j.status is not PublicStatus.COMPLETED:
                continue
            if j.completed_at is None or not start_ms <= j.completed_at < end_ms:
                continue
            key = (j.completed_at // DAY_MS, j.delivered_by, j.delivered_route)
            row = totals.setdefault(key, [0, 0, 0, 0, 0, 0])
            row[0] += 1
            row[1] += j.units_consumed or 0
            row[2] += j.cost or 0
            row[3] += j.upstream_cost or 0
            row[4] += int(j.upstream_cost is not None)
            row[5] += (j.cost or 0) if j.upstream_cost is not None else 0
        return [
            UsageDay(
                day=day,
                model=model,
                jobs=n,
                seconds=seconds,
                cost=cost,
                route=route,
                upstream_cost=upstream,
                costed=costed,
                costed_revenue=revenue,
            )
            for (day, model, route), (n, seconds, cost, upstream, costed, revenue) in sorted(
                totals.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2] or "")
            )
        ]

    # ── events and wake-ups ──

    async def record_event(self, job_id: str, seq: int, event: Event, now: int) -> None:
        s = self._write()
        rows = s.events.setdefault(job_id, [])
        if any(row.seq == seq for row in rows):
            raise ValueError(f"event {seq} of job {job_id} exists")
        rows.append(StoredEvent(seq=seq, event=event, created_at=now))

    async def events_after(self, job_id: str, seq: int) -> list[StoredEvent]:
        return sorted(
            (e for e in self.s.events.get(job_id, ()) if e.seq > seq), key=lambda e: e.seq
        )

    async def wake(self, job_id: str) -> None:
        self.woken.append(job_id)

    async def record_delivery(self, delivery_id: str, provider: str, job_id: str, now: int) -> bool:
        s = self._write()
        for seen, at in list(s.deliveries.items()):
            if at < now - hooks.KEEP_MS:
                del s.deliveries[seen]
        key = delivery_id[:200]
        if key in s.deliveries:
            return False
        s.deliveries[key] = now
        return True

    async def running_job_for(self, upstream_id: str) -> str | None:
        for job in self.s.jobs.values():
            if job.upstream_id == upstream_id and job.state is JobState.RUNNING:
                return job.id
        return None

    async def poll_now(
        self, job_id: str, upstream_id: str, now: int, pushed: JobResult | None = None
    ) -> bool:
        s = self._write()
        job = s.jobs.get(job_id)
        if (
            job is None
            or job.upstream_id != upstream_id
            or job.state is not JobState.RUNNING
            or job.cancel_requested
            or job.next_run_at is None
        ):
            return False
        s.jobs[job_id] = replace(job, next_run_at=now, result=pushed or job.result)
        return True

    # ── credits ──

    def _move(
        self, account_id: str, kind: str, balance: int, held: int, hold_id: str | None
    ) -> None:
        s = self.s
        current = s.accounts[account_id]
        s.accounts[account_id] = Balance(current.balance + balance, current.held + held)
        s.ledger.append(LedgerEntry(account_id, kind, balance, held, hold_id))

    async def get_balance(self, account_id: str) -> Balance:
        current = self.s.accounts.get(account_id)
        if current is None:
            raise NotFound(f"No account {account_id!r}.", param="account_id")
        return current

    async def place_hold(self, account_id: str, job_id: str, amount: int) -> str:
        s = self._write()
        current = s.accounts.get(account_id)
        if current is None:
            raise NotFound(f"No account {account_id!r}.", param="account_id")
        if current.available < amount:
            raise not_enough(current, amount)
        hold_id = new_id("hold")
        s.holds[hold_id] = Hold(hold_id, account_id, job_id, amount)
        self._move(account_id, "hold", 0, amount, hold_id)
        return hold_id

    def _resolve(self, hold_id: str, status: str, captured: int) -> bool:
        s = self._write()
        hold = s.holds.get(hold_id)
        if hold is None or hold.status != "open":
            return False
        s.holds[hold_id] = replace(hold, status=status, captured=captured)
        if captured:
            self._move(hold.account_id, "capture", -captured, -hold.amount, hold_id)
            if captured < hold.amount:
                self._move(hold.account_id, "release", 0, 0, hold_id)
        else:
            self._move(hold.account_id, "release", 0, -hold.amount, hold_id)
        return True

    async def capture_hold(self, hold_id: str, amount: int) -> bool:
        hold = self.s.holds.get(hold_id)
        if hold is None:
            return False
        return self._resolve(hold_id, "captured", min(amount, hold.amount))

    async def release_hold(self, hold_id: str) -> bool:
        return self._resolve(hold_id, "released", 0)

    # ── operators ──

    async def create_account(self, name: str, account_id: str | None = None) -> str:
        s = self._write()
        account_id = account_id or new_id("acct")
        if account_id in s.accounts:
            raise ValueError(f"account {account_id} exists")
        s.accounts[account_id] = Balance(balance=0, held=0)
        s.names[account_id] = name
        s.flags[account_id] = {}
        return account_id

    async def ensure_account(self, account_id: str, name: str) -> bool:
        if account_id in self.s.accounts:
            return False
        await self.create_account(name, account_id)
        return True

    async def account_exists(self, account_id: str) -> bool:
        return account_id in self.s.accounts

    async def set_flags(self, account_id: str, flags: Mapping[str, Any]) -> dict[str, Any]:
        s = self._write()
        merged = {**s.flags.get(account_id, {}), **flags}
        if account_id in s.accounts:
            s.flags[account_id] = merged
        return dict(merged)

    async def grant(self, account_id: str, amount: int, note: str) -> Balance:
        current = await self.get_balance(account_id)
        check_grant(current, amount)
        self._write()
        self._move(account_id, "grant", amount, 0, None)
        return self.s.accounts[account_id]

    async def create_key(
        self,
        account_id: str,
        *,
        key: str | None = None,
        scopes: Sequence[str] = ALL_SCOPES,
        name: str = "",
        expires_at: int | None = None,
    ) -> str:
        s = self._write()
        key = key or new_key()
        if hash_key(key) in s.keys:
            raise ValueError("this key is stored already")
        s.keys[hash_key(key)] = KeyRow(
            id=new_id("key"),
            account_id=account_id,
            name=name,
            prefix=key[:10],
            scopes=list(scopes),
            created_at=self.clock(),
            expires_at=expires_at,
            revoked_at=None,
        )
        return key

    async def ensure_key(self, account_id: str, key: str, name: str) -> None:
        if hash_key(key) not in self.s.keys:
            await self.create_key(account_id, key=key, name=name)

    async def key_row(self, key: str) -> KeyRow:
        return self.s.keys[hash_key(key)]

    async def key_rows(self, account_id: str) -> list[KeyRow]:
        rows = [r for r in self.s.keys.values() if r.account_id == account_id]
        return sorted(rows, key=lambda r: (r.created_at, r.id))

    async def revoke_key(self, key_id: str, account_id: str | None, now: int) -> bool | None:
        s = self._write()
        for key_hash, row in s.keys.items():
            if row.id != key_id:
                continue
            if row.revoked_at is not None or account_id not in (None, row.account_id):
                return False
            s.keys[key_hash] = replace(row, revoked_at=now)
            return True
        return None

    async def record_ambiguous(self, record: AmbiguousRecord, now: int) -> None:
        self._write().ambiguous.append(
            AmbiguousCreate(
                id=new_id("amb"),
                job_id=record.job_id,
                attempt_no=record.attempt_no,
                model=record.model,
                provider=record.provider,
                upstream_id=record.upstream_id,
                sent_at=record.sent_at,
                outcome=record.outcome,
                note=record.note[:500],
                created_at=now,
                resolved_at=None,
                resolution=None,
            )
        )

    async def list_ambiguous(
        self, *, include_resolved: bool = False, limit: int = 100
    ) -> list[AmbiguousCreate]:
        rows = [r for r in self.s.ambiguous if include_resolved or r.resolved_at is None]
        return sorted(rows, key=lambda r: r.id, reverse=True)[:limit]

    async def resolve_ambiguous(self, row_id: str, resolution: str, now: int) -> bool:
        s = self._write()
        for i, row in enumerate(s.ambiguous):
            if row.id == row_id and row.resolved_at is None:
                s.ambiguous[i] = replace(row, resolved_at=now, resolution=resolution[:500])
                return True
        return False

    # ── the API's Idempotency-Key records ──

    async def claim_idempotency(
        self,
        account_id: str,
        key: str,
        request_hash: str,
        *,
        owner: str,
        now: int,
        lease_ms: int,
        ttl_ms: int,
    ) -> KeyRecord | None:
        s = self._write()
        this = (account_id, key)
        current = s.idempotency.get(this)
        if current is not None and current.created_at < now - ttl_ms:
            current = None
        if current is None:
            s.idempotency[this] = _KeyState(request_hash, now, owner, now + lease_ms)
            return None
        lapsed = current.lease_expires_at is not None and current.lease_expires_at < now
        if current.owner is not None and current.request_hash == request_hash and lapsed:
            s.idempotency[this] = replace(current, owner=owner, lease_expires_at=now + lease_ms)
            return None
        return KeyRecord(
            request_hash=current.request_hash,
            state="in_flight" if current.owner is not None else "done",
            response_status=current.status,
            response_body=current.body,
            lease_expires_at=current.lease_expires_at,
        )

    async def complete_idempotency(
        self, account_id: str, key: str, owner: str, status: int, body: Any
    ) -> bool:
        s = self._write()
        current = s.idempotency.get((account_id, key))
        if current is None or current.owner != owner:
            return False
        done = replace(current, owner=None, lease_expires_at=None, status=status, body=body)
        s.idempotency[(account_id, key)] = done
        return True

    async def release_idempotency(self, account_id: str, key: str, owner: str) -> None:
        s = self._write()
        current = s.idempotency.get((account_id, key))
        if current is not None and current.owner == owner:
            s.idempotency[(account_id, key)] = replace(current, lease_expires_at=0)

    # ── accounts ──

    async def lookup_key(self, key: str, now: int) -> KeyInfo | None:
        row = self.s.keys.get(hash_key(key))
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        return KeyInfo(
            key_id=row.id,
            account_id=row.account_id,
            scopes=tuple(row.scopes),
            expires_at=row.expires_at,
        )

    async def get_flags(self, account_id: str) -> dict[str, Any]:
        return dict(self.s.flags.get(account_id, {}))


class MemoryStore:
    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self.clock = clock
        self.state = _State()
        self._lock = asyncio.Lock()
        self.woken: list[str] = []
        """Every job a committed transaction asked to wake workers for."""

    # ── inspection (tests) ──

    def balance(self, account_id: str) -> Balance:
        return self.state.accounts[account_id]

    def job(self, job_id: str) -> Job:
        return self.state.jobs[job_id]

    def events(self, job_id: str) -> list[StoredEvent]:
        return list(self.state.events.get(job_id, ()))

    def ambiguous(self) -> list[AmbiguousCreate]:
        return list(self.state.ambiguous)

    def holds(self) -> list[Hold]:
        return list(self.state.holds.values())

    def ledger(self) -> list[LedgerEntry]:
        return list(self.state.ledger)

    # ── the interface ──

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[MemoryTx]:
        async with self._lock:
            tx = MemoryTx(self.state.copy(), self.clock, writable=True)
            yield tx  # an exception here leaves self.state as it was: rolled back
            self.state = tx.s
            self.woken.extend(tx.woken)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[MemoryTx]:
        yield MemoryTx(self.state, self.clock, writable=False)

    async def submit(self, sub: JobSubmission) -> SubmitResult:
        job = sub.job
        assert job.hold_id is not None, "a submitted job carries its hold's id"
        async with self.begin() as tx:
            current = tx.s.accounts.get(job.account_id)
            if current is None:
                return SubmitResult(SubmitOutcome.NO_ACCOUNT, Balance(0, 0), 0, 0)
            n, seconds = await tx.in_flight_totals(job.account_id)
            outcome = check_submission(sub, current.balance, current.held, n, seconds)
            answer = sub.answer
            if outcome is SubmitOutcome.OK and answer is not None:
                stored = await tx.complete_idempotency(
                    job.account_id, answer.key, answer.owner, answer.status, answer.body
                )
                if not stored:
                    outcome = SubmitOutcome.KEY_TAKEN
            if outcome is not SubmitOutcome.OK:
                return SubmitResult(outcome, current, n, seconds)
            tx.s.holds[job.hold_id] = Hold(job.hold_id, job.account_id, job.id, sub.hold_amount)
            tx._move(job.account_id, "hold", 0, sub.hold_amount, job.hold_id)
            await tx.insert_job(job)
            await tx.record_event(job.id, job.event_seq, sub.event, job.created_at)
            await tx.wake(job.id)
        after = Balance(current.balance, current.held + sub.hold_amount)
        return SubmitResult(outcome, after, n + 1, seconds + job.params.duration_seconds)

    async def record_step(self, step: StepWrite) -> bool:
        async with self.begin() as tx:
            return await record_step_in(tx, step)

    async def claim_due(
        self,
        worker_id: str,
        *,
        limit: int,
        lease_ms: int,
        now: int,
        in_hand: Sequence[str] = (),
    ) -> list[Job]:
        async with self._lock:
            skip = set(in_hand)
            due = sorted(
                (
                    j
                    for j in self.state.jobs.values()
                    if j.next_run_at is not None
                    and j.next_run_at <= now
                    and (j.lease_expires_at is None or j.lease_expires_at < now)
                    and j.id not in skip
                ),
                key=lambda j: (j.next_run_at or 0, j.id),
            )[:limit]
            claimed = [
                replace(j, lease_owner=worker_id, lease_expires_at=now + lease_ms) for j in due
            ]
            for job in claimed:
                self.state.jobs[job.id] = job
            return claimed

    async def renew_leases(
        self, worker_id: str, job_ids: Sequence[str], lease_ms: int, now: int
    ) -> int:
        async with self._lock:
            renewed = 0
            for job_id in job_ids:
                job = self.state.jobs.get(job_id)
                if job is not None and job.lease_owner == worker_id:
                    self.state.jobs[job_id] = replace(job, lease_expires_at=now + lease_ms)
                    renewed += 1
            return renewed

    async def release_leases(self, worker_id: str) -> int:
        async with self._lock:
            held = [j for j in self.state.jobs.values() if j.lease_owner == worker_id]
            for job in held:
                self.state.jobs[job.id] = replace(job, lease_owner=None, lease_expires_at=None)
            return len(held)

    async def next_wakeup(self) -> int | None:
        times = [
            j.next_run_at if j.lease_owner is None else j.lease_expires_at
            for j in self.state.jobs.values()
            if j.next_run_at is not None
        ]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    async def count_active(self) -> int:
        return sum(1 for j in self.state.jobs.values() if j.next_run_at is not None)

    async def start_cooldown(self, deployment: str, until: int, reason: str, now: int) -> None:
        async with self._lock:
            current = self.state.cooldowns.get(deployment)
            end = max(until, current[0]) if current is not None else until
            self.state.cooldowns[deployment] = (end, reason[:500])

    async def list_cooling(self, now: int) -> dict[str, int]:
        return {k: until for k, (until, _) in self.state.cooldowns.items() if until > now}

    async def mark_unavailable(self, record: Unavailable) -> None:
        async with self._lock:
            self.state.unavailable[record.deployment] = replace(record, reason=record.reason[:500])

    async def list_unavailable(self, now: int) -> list[Unavailable]:
        marks = [u for u in self.state.unavailable.values() if u.until > now]
        return sorted(marks, key=lambda u: u.deployment)

    async def clear_unavailable(self, deployment: str) -> bool:
        async with self._lock:
            return self.state.unavailable.pop(deployment, None) is not None


def _is_a_store(store: MemoryStore) -> Store:
    return store  # mypy holds the twin to the interface
