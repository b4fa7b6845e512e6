"""The worker side of webhooks: fan the outbox out into deliveries, send what is due.

Two loops beside the job loop of each worker process (``engine.worker``), never in it:
a delivery waits on its receiver in its own task, with its own connection and a 15 s
deadline, so a slow or dead receiver costs the engine nothing. At most
``webhook_concurrency`` deliveries are in flight per process.

At least once: a claimed delivery is leased (its ``next_attempt_at`` moved past the
attempt's deadline); a process that dies mid-attempt leaves it to come due again for
any worker, with the same ``webhook-id`` and body. Receivers dedupe on that id.

Failures wait ``webhook_retry_base_seconds`` times 4^n (±20 % jitter, at most 8 h): from
5 s, ten attempts span about 23.6 hours. A 410 Gone disables the endpoint (a request's
own ``webhook_url`` just stops); a redirect is a failure, never followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from reelgate import metrics
from reelgate.netsafe import UrlError, post
from reelgate.store.db import is_unavailable
from reelgate.store.jobs import get_job, now_ms
from reelgate.webhooks import signing
from reelgate.webhooks.payload import account_event_body, event_body
from reelgate.webhooks.store import (
    Delivery,
    Endpoint,
    OutboxRow,
    claim_due,
    default_secret,
    delivery_id,
    event_id,
    insert_deliveries,
    last_progress_sent,
    list_endpoints,
    set_endpoint_enabled,
    settle,
    take_outbox,
)

if TYPE_CHECKING:
    from reelgate.job import Job
    from reelgate.runtime import Runtime

__all__ = ["FANOUT_BATCH", "Dispatcher", "retry_delay_seconds"]

log = logging.getLogger(__name__)

FANOUT_BATCH = 200
MAX_WAIT_SECONDS = 8 * 3600.0
REQUEST_TARGET = "request"
"""The target key of a request's own ``webhook_url`` (endpoints use their ids)."""


def retry_delay_seconds(base: float, attempts: int) -> float:
    """The wait after ``attempts`` failed attempts, before jitter."""
    return min(MAX_WAIT_SECONDS, base * 4.0 ** (attempts - 1))


def _host(url: str) -> str:
    """For logs: the host only; a receiver's URL may carry a token in its path or query."""
    try:
        return httpx.URL(url).host or "?"
    except (httpx.InvalidURL, ValueError):
        return "?"


def _delivery_row(
    row_id: str,
    account_id: str,
    job_id: str,
    eid: str,
    event_type: str,
    seq: int,
    endpoint_id: str | None,
    url: str,
    payload: str,
    now: int,
) -> dict[str, Any]:
    """A new pending delivery, due now."""
    return {
        "id": row_id,
        "account_id": account_id,
        "job_id": job_id,
        "event_id": eid,
        "event_type": event_type,
        "event_seq": seq,
        "endpoint_id": endpoint_id,
        "url": url,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_status": None,
        "last_error": None,
        "history": [],
        "created_at": now,
        "updated_at": now,
        "delivered_at": None,
    }


class Dispatcher:
    def __init__(self, rt: Runtime, *, clock: Callable[[], int] = now_ms) -> None:
        s = rt.settings
        self.rt = rt
        self.clock = clock
        self.policy = s.net_policy()
        self.timeout = s.webhook_timeout_seconds
        self.max_attempts = s.webhook_max_attempts
        self.base = s.webhook_retry_base_seconds
        self.concurrency = s.webhook_concurrency
        self.poll = s.webhook_poll_seconds
        self.progress_ms = int(s.webhook_progress_interval_seconds * 1000)
        self.lease_ms = int((self.timeout + 30.0) * 1000)
        self._stopping = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._sent = asyncio.Event()
        self.attempts = 0
        """Attempts made by this process (for tests and metrics)."""

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until ``stop()``; then the attempts in flight get a few seconds to finish (one
        cut short is sent again by a worker when its lease ends)."""
        loops = [
            asyncio.create_task(self._forever("fan-out", self.fan_out_once), name="webhook-fanout"),
            asyncio.create_task(self._send_forever(), name="webhook-sender"),
        ]
        try:
            await self._stopping.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if self._sending:
                _done, pending = await asyncio.wait(list(self._sending), timeout=5.0)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _failed(self, what: str, exc: Exception, failures: int) -> float:
        delay: float = min(15.0, self.poll * 2**failures)
        if not is_unavailable(exc):
            log.exception("webhooks: %s failed; retrying in %.1fs", what, delay)
        elif failures == 1 or failures % 10 == 0:
            log.warning("webhooks: %s: database unavailable; retrying in %.1fs", what, delay)
        return delay

    async def _forever(self, what: str, once: Callable[[], Awaitable[int]]) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                done = await once()
                failures = 0
            except Exception as exc:
                failures += 1
                await self._pause(self._failed(what, exc, failures))
                continue
            if done < FANOUT_BATCH:
                await self._pause(self.poll)

    # ── fan-out ──

    async def fan_out_once(self) -> int:
        """Turn up to a batch of outbox rows into deliveries, in one transaction (rows
        are deleted only with their deliveries written). Returns the rows taken."""
        now = self.clock()
        async with self.rt.db.begin() as conn:
            taken = await take_outbox(conn, FANOUT_BATCH)
            if not taken:
                return 0
            rows = [r for r in taken if r.payload is None]
            deliveries = await self._account_events(
                conn, [r for r in taken if r.payload is not None], now
            )
            jobs: dict[str, Job] = {}
            for job_id in {r.job_id for r in rows}:
                found = await get_job(conn, job_id, include_deleted=True)
                if found is not None:
                    jobs[job_id] = found
            endpoints: dict[str, list[Endpoint]] = {}
            for account_id in {j.account_id for j in jobs.values()}:
                endpoints[account_id] = await list_endpoints(conn, account_id, enabled_only=True)
            last_seq: dict[str, int] = {}
            for r in rows:
                last_seq[r.job_id] = max(last_seq.get(r.job_id, 0), r.seq)
            progress_sent = await last_progress_sent(
                conn, [r.job_id for r in rows if r.type == "video.progress"]
            )
            for row in rows:
                job = jobs.get(row.job_id)
                if job is None:
                    continue
                targets = [(e.id, e.url) for e in endpoints[job.account_id] if e.wants(row.type)]
                if job.webhook_url:
                    targets.append((REQUEST_TARGET, job.webhook_url))
                if row.type == "video.progress":
                    targets = self._throttled(row, targets, last_seq, progress_sent, now)
                if targets:
                    deliveries += await self._deliveries(job, row, targets, now)
            await insert_deliveries(conn, deliveries)
        return len(taken)

    async def _account_events(
        self, conn: Any, rows: list[OutboxRow], now: int
    ) -> list[dict[str, Any]]:
        """An account's events (a budget's threshold) go to its endpoints that want them;
        a request's own ``webhook_url`` hears only of its job."""
        deliveries: list[dict[str, Any]] = []
        for row in rows:
            if row.account_id is None or row.payload is None:
                continue
            endpoints = await list_endpoints(conn, row.account_id, enabled_only=True)
            targets = [e for e in endpoints if e.wants(row.type)]
            if not targets:
                continue
            eid, payload = account_event_body(
                self.rt, row.account_id, row.job_id, row.type, row.created_at, row.payload
            )
            for endpoint in targets:
                deliveries.append(
                    _delivery_row(
                        delivery_id(eid, 0, endpoint.id),
                        row.account_id,
                        row.job_id,
                        eid,
                        row.type,
                        0,
                        endpoint.id,
                        endpoint.url,
                        payload,
                        now,
                    )
                )
        return deliveries

    def _throttled(
        self,
        row: OutboxRow,
        targets: list[tuple[str, str]],
        last_seq: dict[str, int],
        sent: dict[str, int],
        now: int,
    ) -> list[tuple[str, str]]:
        """Progress is news only if nothing newer is in hand and the target has not had
        progress within the interval."""
        if row.seq < last_seq[row.job_id]:
            return []
        kept = []
        for key, url in targets:
            seen = f"{row.job_id}:{key}"
            if now - sent.get(seen, -self.progress_ms) >= self.progress_ms:
                kept.append((key, url))
                sent[seen] = now
        return kept

    async def _deliveries(
        self, job: Job, row: OutboxRow, targets: list[tuple[str, str]], now: int
    ) -> list[dict[str, Any]]:
        payload = await event_body(self.rt, job, row.seq, row.type, row.created_at)
        return [
            _delivery_row(
                delivery_id(job.id, row.seq, key),
                job.account_id,
                job.id,
                event_id(job.id, row.seq),
                row.type,
                row.seq,
                None if key == REQUEST_TARGET else key,
                url,
                payload,
                now,
            )
            for key, url in targets
        ]

    # ── sending ──

    async def _send_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._sending)
            claimed = 0
            if free > 0:
                try:
                    claimed = await self.send_due_once(free)
                    failures = 0
                except Exception as exc:
                    failures += 1
                    await self._pause(self._failed("claim", exc, failures))
                    continue
                if claimed == free:
                    continue  # maybe more is due
            self._sent.clear()
            waits = [
                asyncio.create_task(self._sent.wait()),
                asyncio.create_task(self._pause(self.poll)),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
                await asyncio.gather(*waits, return_exceptions=True)

    async def send_due_once(self, limit: int) -> int:
        """Claim up to ``limit`` due deliveries and start an attempt for each."""
        now = self.clock()
        async with self.rt.db.begin() as conn:
            claimed = await claim_due(conn, now, self.lease_ms, limit)
            secrets: dict[str, list[str]] = {}
            for delivery, endpoint in claimed:
                if endpoint is None and delivery.account_id not in secrets:
                    secrets[delivery.account_id] = await default_secret(
                        conn, delivery.account_id, now
                    )
        # one task per job and target, its events in order: a receiver sees a job's
        # events in the order they happened (retries aside: see docs/webhooks.md)
        groups: dict[tuple[str, str | None], list[tuple[Delivery, Endpoint | None]]] = {}
        for delivery, endpoint in claimed:
            groups.setdefault((delivery.job_id, delivery.endpoint_id), []).append(
                (delivery, endpoint)
            )
        for group in groups.values():
            group.sort(key=lambda pair: pair[0].event_seq)
            task = asyncio.create_task(
                self._attempt_in_order(group, secrets, now), name=f"webhook-{group[0][0].id}"
            )
            self._sending.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    async def _attempt_in_order(
        self,
        group: list[tuple[Delivery, Endpoint | None]],
        secrets: dict[str, list[str]],
        now: int,
    ) -> None:
        for delivery, endpoint in group:
            keys = endpoint.signing(now) if endpoint is not None else secrets[delivery.account_id]
            await self._attempt(delivery, endpoint, keys)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._sent.set()

    async def _attempt(
        self, delivery: Delivery, endpoint: Endpoint | None, keys: list[str]
    ) -> None:
        try:
            if endpoint is not None and endpoint.disabled_at is not None:
                await self._settle(delivery, "disabled", None, None, "the endpoint is disabled", 0)
                return
            await self._send(delivery, endpoint, keys)
        except Exception as exc:
            # the lease runs out and the delivery is tried again: never lost
            if is_unavailable(exc):
                log.warning(
                    "webhook %s: could not record the attempt: database unavailable", delivery.id
                )
            else:
                log.exception("webhook %s: attempt failed", delivery.id)

    async def _send(self, delivery: Delivery, endpoint: Endpoint | None, keys: list[str]) -> None:
        body = delivery.payload.encode()
        now = self.clock()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "reelgate-webhooks/1",
            **signing.headers(keys, delivery.id, now // 1000, body),
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            posted = await post(
                delivery.url, body, policy=self.policy, timeout=self.timeout, headers=headers
            )
            status = posted.status
        except UrlError as exc:
            error = exc.message
        self.attempts += 1
        ms = int((time.monotonic() - started) * 1000)
        if status is not None and 200 <= status < 300:
            metrics.webhook_attempt("delivered")
            await self._settle(delivery, "delivered", None, status, None, ms)
            return
        if status is not None:
            error = f"answered HTTP {status}"
            if 300 <= status < 400:
                error += " (a redirect: webhooks never follow one; give the final URL)"
        log.warning(
            "webhook %s (%s, job %s) to %s: %s",
            delivery.id,
            delivery.event_type,
            delivery.job_id,
            _host(delivery.url),
            error,
        )
        if status == 410:
            metrics.webhook_attempt("gone")
            await self._settle(delivery, "gone", None, status, error, ms, endpoint=endpoint)
            return
        tried = delivery.attempts + 1
        if tried >= self.max_attempts:
            metrics.webhook_attempt("failed")
            await self._settle(delivery, "failed", None, status, error, ms)
            return
        metrics.webhook_attempt("retry")
        jitter = random.uniform(0.8, 1.2)  # noqa: S311
        wait = min(MAX_WAIT_SECONDS, retry_delay_seconds(self.base, tried) * jitter)
        await self._settle(delivery, "pending", self.clock() + int(wait * 1000), status, error, ms)

    async def _settle(
        self,
        delivery: Delivery,
        status: str,
        next_at: int | None,
        http_status: int | None,
        error: str | None,
        ms: int,
        *,
        endpoint: Endpoint | None = None,
    ) -> None:
        now = self.clock()
        attempt = {"at": now // 1000, "status": http_status, "error": error, "ms": ms}
        async with self.rt.db.begin() as conn:
            held = await settle(
                conn,
                delivery,
                status=status,
                next_attempt_at=next_at,
                http_status=http_status,
                error=error,
                attempt=attempt,
                now=now,
            )
            if held and endpoint is not None and status == "gone":
                await set_endpoint_enabled(
                    conn,
                    endpoint.id,
                    enabled=False,
                    reason="the endpoint answered 410 Gone",
                    now=now,
                )
        if not held:
            log.info(
                "webhook %s: taken over or redelivered meanwhile; its new state stands", delivery.id
            )
        elif status == "gone" and endpoint is not None:
            log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint.id)
