"""Usage queries: what an account was billed for, per delivering model and UTC day."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.job import PublicStatus
from reelgate.store.jobs import status_is
from reelgate.store.schema import jobs

__all__ = ["DAY_MS", "UsageDay", "daily_usage"]

DAY_MS = 86_400_000


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

    @property
    def margin(self) -> int:
        return self.costed_revenue - self.upstream_cost


async def daily_usage(
    conn: AsyncConnection, account_id: str, start_ms: int, end_ms: int
) -> list[UsageDay]:
    """Delivered jobs completed in ``[start_ms, end_ms)``, grouped by day and model. A
    delivered video whose copy is still retried counts: it was billed."""
    day = (jobs.c.completed_at // DAY_MS).label("day")
    query = (
        sa.select(
            day,
            jobs.c.delivered_by,
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
            jobs.c.account_id == account_id,
            status_is(PublicStatus.COMPLETED),
            jobs.c.completed_at >= start_ms,
            jobs.c.completed_at < end_ms,
        )
        .group_by(day, jobs.c.delivered_by, jobs.c.delivered_route)
        .order_by(day, jobs.c.delivered_by, jobs.c.delivered_route)
    )
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
        )
        for r in rows
    ]
