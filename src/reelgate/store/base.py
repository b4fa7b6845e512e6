"""The store's interface: what the engine may ask of the database, as typed values.

Two implementations are held to one contract (tests/contract_store.py):
``store.sql.SqlStore`` (SQLite and PostgreSQL through SQLAlchemy) and
``store.memory.MemoryStore`` (dicts, for engine tests without a database).

A :class:`Tx` is one transaction: everything written through it commits
together or not at all (a job's step, its event, its hold's settlement and the
operators' record of an ambiguous create). The :class:`Store` methods outside
a transaction are the worker's bookkeeping (claims, leases, cooldowns), each
atomic on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from reelgate.catalog.lifecycle import Unavailable
from reelgate.job import Event, Job, JobResult, PublicStatus
from reelgate.store.accounts import ALL_SCOPES, KeyInfo, KeyRow
from reelgate.store.ambiguous import AmbiguousCreate
from reelgate.store.events import StoredEvent
from reelgate.store.idempotency import KeyRecord
from reelgate.store.ledger import Balance
from reelgate.store.step import StepWrite
from reelgate.store.submit import JobSubmission, SubmitResult
from reelgate.store.usage import UsageDay

__all__ = ["AmbiguousRecord", "Store", "Tx"]


@dataclass(frozen=True)
class AmbiguousRecord:
    """A create whose outcome is unknown, listed for operators (``ambiguous_creates``)."""

    job_id: str
    attempt_no: int
    model: str
    provider: str
    upstream_id: str | None
    sent_at: int | None
    outcome: str
    note: str


class Tx(Protocol):
    # ── jobs ──
    async def get_job(
        self, job_id: str, account_id: str | None = None, *, include_deleted: bool = False
    ) -> Job | None:
        """A job; with ``account_id``, only that account's (another's reads as missing)."""
        ...

    async def insert_job(self, job: Job) -> None: ...

    async def write_step(
        self, before: Job, after: Job, worker_id: str, *, release: bool, now: int | None = None
    ) -> bool:
        """Write the fields ``after`` changed, only while ``worker_id`` holds the lease
        (the fence); ``release`` drops the lease in the same write. ``now``: the
        ``updated_at`` to write (default: the store's clock). False: not written."""
        ...

    async def cancel_if_queued(self, account_id: str, job_id: str, now: int) -> Job | None:
        """Cancel a queued job no worker holds, on the spot (None: not such a job)."""
        ...

    async def mark_cancel_requested(self, account_id: str, job_id: str, now: int) -> None:
        """Mark an undelivered unfinished job for cancel and make it due."""
        ...

    async def hide_job(self, account_id: str, job_id: str, now: int) -> None:
        """Hide a finished or delivered job (its row stays for usage and the ledger)."""
        ...

    async def set_pinned(self, account_id: str, job_id: str, pinned: bool, now: int) -> bool:
        """Pin or unpin a delivered video that has not expired (False: nothing changed)."""
        ...

    async def restart_mirror(self, job: Job, result: JobResult, now: int) -> bool:
        """Make a delivered job's copy due again, only if unchanged since ``job`` was read."""
        ...

    async def in_flight_totals(self, account_id: str) -> tuple[int, int]:
        """An account's unfinished jobs: how many, and their seconds of video."""
        ...

    async def lock_provider(self, provider: str) -> None:
        """Serialise slot-taking on ``provider`` until this transaction ends."""
        ...

    async def count_occupying(self, provider: str, except_job: str) -> int:
        """Jobs holding a slot of ``provider`` (``active_provider``), but one."""
        ...

    async def count_submitting(self, provider: str, except_job: str) -> int:
        """Jobs of ``provider`` in ``submitting`` (a create may be in flight), but one."""
        ...

    async def active_upstream_ids(self, provider: str) -> set[str]:
        """The upstream jobs that jobs in flight on ``provider`` follow."""
        ...

    async def known_upstream_ids(self, upstream_ids: Sequence[str]) -> set[str]:
        """Which of these a job already uses or an operator was told of."""
        ...

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
        """An account's jobs by id (creation order), newest first unless ``order`` is
        "asc"; ``after`` is the cursor (the last id seen); ``model`` matches the requested
        or the delivering model."""
        ...

    async def daily_usage(self, account_id: str, start_ms: int, end_ms: int) -> list[UsageDay]:
        """Delivered jobs completed in ``[start_ms, end_ms)`` per UTC day and model."""
        ...

    # ── events and wake-ups ──
    async def record_event(self, job_id: str, seq: int, event: Event, now: int) -> None: ...

    async def events_after(self, job_id: str, seq: int) -> list[StoredEvent]:
        """A job's events after number ``seq``, oldest first (the SSE stream)."""
        ...

    async def wake(self, job_id: str) -> None:
        """Wake the workers of every process when this transaction commits."""
        ...

    async def record_delivery(self, delivery_id: str, provider: str, job_id: str, now: int) -> bool:
        """Remember an inbound webhook delivery; False when it was seen already (a
        replay). Ids are kept for ``store.hooks.KEEP_MS``."""
        ...

    async def running_job_for(self, upstream_id: str) -> str | None:
        """The running job whose current upstream job is ``upstream_id`` (a provider's
        project-wide call names only its own id); None when no job runs it now."""
        ...

    async def poll_now(
        self, job_id: str, upstream_id: str, now: int, pushed: JobResult | None = None
    ) -> bool:
        """Make a running job due now if ``upstream_id`` is still its upstream job (a
        provider said it changed); False otherwise. ``pushed``: the finished video the
        provider's signed call named, kept as the job's result until its worker takes
        it (instead of polling)."""
        ...

    # ── accounts ──
    async def lookup_key(self, key: str, now: int) -> KeyInfo | None:
        """The key's account and scopes; None if unknown, revoked or expired by ``now``."""
        ...

    async def get_flags(self, account_id: str) -> dict[str, Any]: ...

    # ── credits ──
    async def get_balance(self, account_id: str) -> Balance:
        """Raises ``NotFound`` for an unknown account."""
        ...

    async def place_hold(self, account_id: str, job_id: str, amount: int) -> str:
        """Reserve ``amount`` millicredits or raise ``PaymentRequired`` with the numbers."""
        ...

    async def capture_hold(self, hold_id: str, amount: int) -> bool:
        """Charge ``amount`` (capped by the hold), release the rest; False if settled."""
        ...

    async def release_hold(self, hold_id: str) -> bool:
        """Release the whole hold; False if already settled."""
        ...

    # ── operators: accounts, keys, grants, ambiguous creates ──
    async def create_account(self, name: str, account_id: str | None = None) -> str:
        """A new account with no credits and no flags; returns its id."""
        ...

    async def ensure_account(self, account_id: str, name: str) -> bool:
        """Create the account if missing; True if it was created now."""
        ...

    async def account_exists(self, account_id: str) -> bool: ...

    async def set_flags(self, account_id: str, flags: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``flags`` into the account's flags; returns them all."""
        ...

    async def grant(self, account_id: str, amount: int, note: str) -> Balance:
        """Add millicredits (negative: remove, never below what is held); ``NotFound``
        for an unknown account."""
        ...

    async def create_key(
        self,
        account_id: str,
        *,
        key: str | None = None,
        scopes: Sequence[str] = ALL_SCOPES,
        name: str = "",
        expires_at: int | None = None,
    ) -> str:
        """Store a key (a new random one unless given) by its hash and return it: the
        only time it is seen."""
        ...

    async def ensure_key(self, account_id: str, key: str, name: str) -> None:
        """Store ``key`` for the account unless it is stored already."""
        ...

    async def key_row(self, key: str) -> KeyRow:
        """The listing row of a stored key (found by its hash)."""
        ...

    async def key_rows(self, account_id: str) -> list[KeyRow]:
        """An account's keys, oldest first, revoked ones included."""
        ...

    async def revoke_key(self, key_id: str, account_id: str | None, now: int) -> bool | None:
        """Revoke a key (only ``account_id``'s, when given). True: revoked now; False:
        already revoked (or another account's); None: no such key."""
        ...

    async def record_ambiguous(self, record: AmbiguousRecord, now: int) -> None: ...

    async def list_ambiguous(
        self, *, include_resolved: bool = False, limit: int = 100
    ) -> list[AmbiguousCreate]:
        """Newest first; by default only those no operator has resolved."""
        ...

    async def resolve_ambiguous(self, row_id: str, resolution: str, now: int) -> bool:
        """Close an open record; False: unknown or already resolved."""
        ...

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
        """Take the key for ``owner`` (None: ours now, new or taken over after its lease
        ran out); otherwise the record as it stands (done, or in flight elsewhere)."""
        ...

    async def release_idempotency(self, account_id: str, key: str, owner: str) -> None:
        """End ``owner``'s lease at once (its work never committed)."""
        ...

    async def complete_idempotency(
        self, account_id: str, key: str, owner: str, status: int, body: Any
    ) -> bool:
        """Store a key's response with the work it describes, if ``owner`` still holds
        the key; False: a retry took it over (the work must roll back)."""
        ...


class Store(Protocol):
    def begin(self) -> AbstractAsyncContextManager[Tx]:
        """A read-write transaction."""
        ...

    def reading(self) -> AbstractAsyncContextManager[Tx]:
        """Reads only (never takes SQLite's write lock); writing through it is a bug."""
        ...

    async def submit(self, sub: JobSubmission) -> SubmitResult:
        """A new job in one transaction, sent as one call (``store.submit``): lock the
        account, check its credits and in-flight caps, store the Idempotency-Key's answer,
        write the hold, its ledger line, the job and its first event, wake the workers.
        A refusal writes nothing and says why, with the account's numbers."""
        ...

    async def record_step(self, step: StepWrite) -> bool:
        """A step's write in one transaction, sent as one call (``store.step``): the
        job's changed columns only while ``step.worker_id`` holds its lease, its event,
        its hold's settlement. False: the lease was lost and nothing was written."""
        ...

    async def claim_due(
        self,
        worker_id: str,
        *,
        limit: int,
        lease_ms: int,
        now: int,
        in_hand: Sequence[str] = (),
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs that are free (or whose lease ran out), most
        overdue first, never one in ``in_hand``; no two claimers get the same job."""
        ...

    async def renew_leases(
        self, worker_id: str, job_ids: Sequence[str], lease_ms: int, now: int
    ) -> int: ...

    async def release_leases(self, worker_id: str) -> int: ...

    async def next_wakeup(self) -> int | None:
        """The earliest time a job may need a worker (a free job's wake-up, or a held
        job's lease running out)."""
        ...

    async def count_active(self) -> int:
        """Jobs not finished yet (with a wake-up)."""
        ...

    async def start_cooldown(self, deployment: str, until: int, reason: str, now: int) -> None:
        """Cool ``deployment`` down until ``until``; a later end wins over an earlier one."""
        ...

    async def list_cooling(self, now: int) -> dict[str, int]:
        """Every deployment cooling down at ``now``, with when its cooldown ends."""
        ...

    async def mark_unavailable(self, record: Unavailable) -> None:
        """Mark a model its provider no longer serves there (the latest mark wins)."""
        ...

    async def list_unavailable(self, now: int) -> list[Unavailable]:
        """The marks in force at ``now``, by deployment."""
        ...

    async def clear_unavailable(self, deployment: str) -> bool:
        """Lift a mark; False: there was none."""
        ...
