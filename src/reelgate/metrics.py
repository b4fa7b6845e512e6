"""Prometheus metrics (``GET /metrics``), right across several API and worker processes.

Two sources, each where it is true:

- **What happened in a process** (upstream calls and their outcome class, step and
  mirror time, jobs finished, credits captured, webhook attempts, refusals):
  prometheus-client counters and histograms in its multiprocess mode. Every process
  of a host writes its own files in one directory (``metrics_dir``, default
  ``<data_dir>/metrics``); a scrape of any API process sums them all, the files of
  processes that have exited included, so a count survives a restart. Processes on
  other hosts are scraped on their host.
- **What is true now** (jobs in flight by state, model and provider; the queue's depth
  and oldest due job; the webhook backlog; credits held): read from the database at
  scrape time, the same answer whichever process is asked (``snapshot``).

prometheus-client picks its multiprocess mode when first imported, from the
``PROMETHEUS_MULTIPROC_DIR`` environment variable; ``enable`` sets it and has the
library choose again before making any metric. With ``metrics = "off"``
every recording function here does nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.store.db import reading
from reelgate.store.schema import accounts, jobs

if TYPE_CHECKING:
    from reelgate.job import Job

__all__ = [
    "Snapshot",
    "enable",
    "enabled",
    "exposition",
    "job_changed",
    "mirror_done",
    "refusal",
    "snapshot",
    "step_done",
    "upstream_call",
    "webhook_attempt",
]

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _Metrics:
    """The process's metric objects, made once multiprocess mode is on."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.upstream_calls = Counter(
            "reelgate_upstream_calls",
            "Calls to providers by operation and outcome class (ok, quota, refused, "
            "transient, invalid_request, timeout, model_gone, ...).",
            ["provider", "operation", "outcome"],
        )
        self.upstream_seconds = Histogram(
            "reelgate_upstream_call_seconds",
            "Time of one call to a provider.",
            ["provider", "operation"],
            buckets=_SECONDS,
        )
        self.step_seconds = Histogram(
            "reelgate_step_seconds",
            "Time of one worker step, by the state the job was in.",
            ["state"],
            buckets=_SECONDS,
        )
        self.jobs_finished = Counter(
            "reelgate_jobs_finished",
            "Jobs that reached a final status, by status, requested model and provider.",
            ["status", "model", "provider"],
        )
        self.credits_captured = Counter(
            "reelgate_credits_captured_millicredits",
            "Millicredits captured for delivered video, by model that delivered it.",
            ["model"],
        )
        self.mirror_bytes = Counter(
            "reelgate_mirror_bytes", "Bytes of video copied into reelgate's storage."
        )
        self.mirror_seconds = Histogram(
            "reelgate_mirror_seconds",
            "Time to copy one video into storage, by outcome.",
            ["outcome"],
            buckets=_SECONDS,
        )
        self.webhook_attempts = Counter(
            "reelgate_webhook_attempts",
            "Outbound webhook attempts by outcome (delivered, retry, failed, gone).",
            ["outcome"],
        )
        self.refusals = Counter(
            "reelgate_refusals",
            "Requests refused for rate limits, credits or in-flight caps, by error code.",
            ["code"],
        )


_m: _Metrics | None = None
_dir: Path | None = None


def enable(directory: Path) -> None:
    """Turn metrics on for this process, its files in ``directory`` (shared by every
    process of the host). Once per process; later calls keep the first directory."""
    global _m, _dir
    if _m is not None:
        return
    directory = Path(os.environ.setdefault(_ENV, str(directory)))
    directory.mkdir(parents=True, exist_ok=True)
    from prometheus_client import values

    # Imported before the variable was set (a library, a test), the library chose its
    # in-memory values; metrics made from now on take the multiprocess ones.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _dir = directory
    _m = _Metrics()


def enabled() -> bool:
    return _m is not None


# ── recording (each does nothing with metrics off) ──


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    error_class = getattr(exc, "error_class", None)
    value = getattr(error_class, "value", None)
    return str(value or getattr(exc, "code", None) or type(exc).__name__)


@contextmanager
def upstream_call(provider: str, operation: str) -> Iterator[None]:
    """Time a call to a provider and count it by its outcome class."""
    if _m is None:
        yield
        return
    started = time.monotonic()
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        _m.upstream_seconds.labels(provider, operation).observe(time.monotonic() - started)
        _m.upstream_calls.labels(provider, operation, _outcome(failure)).inc()


def step_done(state: str, seconds: float) -> None:
    if _m is not None:
        _m.step_seconds.labels(state).observe(seconds)


def job_changed(before: Job, after: Job) -> None:
    """Count a job reaching a final status, and the credits its delivery captured."""
    if _m is None or after.state is before.state:
        return
    if after.is_final and not before.is_final:
        provider = next((a.provider for a in reversed(after.attempts) if a.provider), None)
        _m.jobs_finished.labels(after.status.value, after.model, provider or "").inc()
    if after.delivered and not before.delivered and after.cost:
        _m.credits_captured.labels(after.delivered_by or after.model).inc(after.cost)


def mirror_done(outcome: str, seconds: float, size: int = 0) -> None:
    if _m is not None:
        _m.mirror_seconds.labels(outcome).observe(seconds)
        if size:
            _m.mirror_bytes.inc(size)


def webhook_attempt(outcome: str) -> None:
    if _m is not None:
        _m.webhook_attempts.labels(outcome).inc()


REFUSAL_CODES = frozenset(
    {
        "rate_limited",
        "insufficient_credits",
        "too_many_jobs_in_flight",
        "too_many_seconds_in_flight",
        "budget_exceeded",
    }
)


def refusal(code: str) -> None:
    if _m is not None and code in REFUSAL_CODES:
        _m.refusals.labels(code).inc()


# ── scrape time ──


@dataclass(frozen=True)
class Snapshot:
    """What the database says now (one scrape's reads)."""

    in_flight: list[tuple[str, str, str, int]] = field(default_factory=list)
    """(state, model, provider, jobs) for unfinished jobs."""
    due: int = 0
    oldest_due_age_seconds: float = 0.0
    webhook_outbox: int = 0
    webhook_pending: int = 0
    webhook_oldest_due_age_seconds: float = 0.0
    credits_held: int = 0


async def snapshot(db: AsyncEngine, now: int) -> Snapshot:
    from reelgate.webhooks.store import backlog

    async with reading(db) as conn:
        grouped = (
            await conn.execute(
                sa.select(jobs.c.state, jobs.c.model, jobs.c.active_provider, sa.func.count())
                .where(jobs.c.next_run_at.is_not(None))
                .group_by(jobs.c.state, jobs.c.model, jobs.c.active_provider)
            )
        ).all()
        due, oldest = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.min(jobs.c.next_run_at)).where(
                    jobs.c.next_run_at <= now
                )
            )
        ).one()
        outbox, pending, hook_age = await backlog(conn, now)
        held = (
            await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(accounts.c.held), 0)))
        ).scalar_one()
    return Snapshot(
        in_flight=[(s, m, p or "", int(n)) for s, m, p, n in grouped],
        due=int(due),
        oldest_due_age_seconds=(now - int(oldest)) / 1000 if oldest is not None else 0.0,
        webhook_outbox=outbox,
        webhook_pending=pending,
        webhook_oldest_due_age_seconds=(hook_age or 0) / 1000,
        credits_held=int(held),
    )


class _SnapshotCollector:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        s = self.snap
        jobs_gauge = GaugeMetricFamily(
            "reelgate_jobs_in_flight",
            "Unfinished jobs by state, requested model and the provider they occupy.",
            labels=["state", "model", "provider"],
        )
        for state, model, provider, n in s.in_flight:
            jobs_gauge.add_metric([state, model, provider], n)
        yield jobs_gauge
        yield GaugeMetricFamily(
            "reelgate_queue_due", "Jobs due for a step now (waiting for a worker).", value=s.due
        )
        yield GaugeMetricFamily(
            "reelgate_queue_oldest_due_age_seconds",
            "How long the longest-waiting due job has waited (0: none waits).",
            value=s.oldest_due_age_seconds,
        )
        yield GaugeMetricFamily(
            "reelgate_webhook_outbox", "Job events not yet fanned out.", value=s.webhook_outbox
        )
        yield GaugeMetricFamily(
            "reelgate_webhook_pending", "Deliveries not yet settled.", value=s.webhook_pending
        )
        yield GaugeMetricFamily(
            "reelgate_webhook_oldest_due_age_seconds",
            "How long the longest-waiting due delivery has waited.",
            value=s.webhook_oldest_due_age_seconds,
        )
        yield GaugeMetricFamily(
            "reelgate_credits_held_millicredits",
            "Millicredits held for unfinished jobs, all accounts.",
            value=s.credits_held,
        )


def exposition(snap: Snapshot) -> tuple[bytes, str]:
    """The text format: every process's counters and histograms, summed, and the
    database's gauges."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if _dir is not None:
        MultiProcessCollector(registry, path=str(_dir))  # type: ignore[no-untyped-call]
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry), CONTENT_TYPE_LATEST
