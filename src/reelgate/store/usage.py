"""Usage queries: what an account was billed for, per delivering model and UTC day."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.job import JobState, PublicStatus, public_status
from reelgate.store.jobs import status_is
from reelgate.store.schema import jobs

__all__ = [
    "DAY_MS",
    "ChartJob",
    "UsageDay",
    "UsageLoss",
    "chart_jobs",
    "daily_usage",
    "loss_usage",
]

DAY_MS = 86_400_000


@dataclass(frozen=True)
class UsageLoss:
    """Failed or canceled jobs the provider billed anyway (a render xAI's moderation
    withheld, say), per UTC day of the failure, model and route: a loss."""

    day: int
    model: str
    route: str | None
    jobs: int
    upstream_cost: int
    account_id: str | None = None


async def loss_usage(
    conn: AsyncConnection, account_id: str | None, start_ms: int, end_ms: int
) -> list[UsageLoss]:
    """Billed failures in [start, end), for one account or (None) every account."""
    keys = [(jobs.c.updated_at // DAY_MS).label("day"), jobs.c.model, jobs.c.delivered_route]
    if account_id is None:
        keys.append(jobs.c.account_id)
    query = (
        sa.select(
            *keys,
            sa.func.count().label("jobs"),
            sa.func.sum(jobs.c.upstream_cost).label("upstream_cost"),
        )
        .where(
            jobs.c.state.in_(("failed", "canceled")),
            jobs.c.upstream_cost.is_not(None),
            jobs.c.updated_at >= start_ms,
            jobs.c.updated_at < end_ms,
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    if account_id is not None:
        query = query.where(jobs.c.account_id == account_id)
    return [
        UsageLoss(
            day=int(r.day),
            model=r.model,
            route=r.delivered_route,
            jobs=int(r.jobs),
            upstream_cost=int(r.upstream_cost or 0),
            account_id=r.account_id if account_id is None else account_id,
        )
        for r in (await conn.execute(query)).all()
    ]


@dataclass(frozen=True)
class UsageDay:
    day: int
    """Days since 1970-01-01 (UTC)."""
    model: str | None
    """The delivering model."""
    jobs: int
    seconds: int
    cost: int
    """Millicredits."""
    route: str | None = None
    """The delivering route (None for jobs from before routes were recorded)."""
    upstream_cost: int = 0
    """Millicredits the routes cost upstream, summed over ``costed`` of the jobs."""
    costed: int = 0
    """How many of the jobs have a known upstream cost."""
    costed_revenue: int = 0
    """Millicredits charged for those jobs (margin = this - ``upstream_cost``)."""

    account_id: str | None = None

    @property
    def margin(self) -> int:
        return self.costed_revenue - self.upstream_cost


async def daily_usage(
    conn: AsyncConnection, account_id: str | None, start_ms: int, end_ms: int
) -> list[UsageDay]:
    """Delivered jobs completed in ``[start_ms, end_ms)``, grouped by day and model (and
    account, with ``account_id`` None: every account's, for the operator). A delivered
    video whose copy is still retried counts: it was billed."""
    day = (jobs.c.completed_at // DAY_MS).label("day")
    keys: list[Any] = [day, jobs.c.delivered_by, jobs.c.delivered_route]
    if account_id is None:
        keys.append(jobs.c.account_id)
    query = (
        sa.select(
            *keys[:2],
            sa.func.count().label("jobs"),
            sa.func.sum(jobs.c.units_consumed).label("seconds"),
            sa.func.sum(jobs.c.cost).label("cost"),
            jobs.c.delivered_route,
            sa.func.sum(jobs.c.upstream_cost).label("upstream_cost"),
            sa.func.count(jobs.c.upstream_cost).label("costed"),
            sa.func.sum(sa.case((jobs.c.upstream_cost.is_not(None), jobs.c.cost), else_=0)).label(
                "costed_revenue"
            ),
        )
        .where(
            status_is(PublicStatus.COMPLETED),
            jobs.c.completed_at >= start_ms,
            jobs.c.completed_at < end_ms,
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    if account_id is None:
        query = query.add_columns(jobs.c.account_id)
    else:
        query = query.where(jobs.c.account_id == account_id)
    rows = (await conn.execute(query)).all()
    return [
        UsageDay(
            day=int(r.day),
            model=r.delivered_by,
            jobs=int(r.jobs),
            seconds=int(r.seconds or 0),
            cost=int(r.cost or 0),
            route=r.delivered_route,
            upstream_cost=int(r.upstream_cost or 0),
            costed=int(r.costed or 0),
            costed_revenue=int(r.costed_revenue or 0),
            account_id=r.account_id if account_id is None else account_id,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class ChartJob:
    """What the usage charts need of one job."""

    created_at: int
    completed_at: int | None
    status: PublicStatus
    model: str
    """The delivering model when there is one, else the requested one."""
    cost: int


async def chart_jobs(
    conn: AsyncConnection, account_id: str, start_ms: int, end_ms: int, limit: int
) -> list[ChartJob]:
    """The account's jobs created in [start, end) or completed in it, newest first, at most
    ``limit`` (the charts of a busy account read a bounded sample)."""
    query = (
        sa.select(
            jobs.c.created_at,
            jobs.c.completed_at,
            jobs.c.state,
            jobs.c.model,
            jobs.c.delivered_by,
            jobs.c.cost,
        )
        .where(
            jobs.c.account_id == account_id,
            sa.or_(
                sa.and_(jobs.c.created_at >= start_ms, jobs.c.created_at < end_ms),
                sa.and_(jobs.c.completed_at >= start_ms, jobs.c.completed_at < end_ms),
            ),
        )
        .order_by(jobs.c.created_at.desc())
        .limit(limit)
    )
    return [
        ChartJob(
            created_at=int(r.created_at),
            completed_at=int(r.completed_at) if r.completed_at is not None else None,
            status=public_status(JobState(r.state), r.completed_at),
            model=r.delivered_by or r.model,
            cost=int(r.cost or 0),
        )
        for r in (await conn.execute(query)).all()
    ]
